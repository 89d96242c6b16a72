"""The programs of Keras 3's guides "Save, serialize, and export models" and "Customizing Saving and
Serialization", written once for both libraries: ``lib`` is ``gpu_dl`` or ``keras``. The guides train on random
arrays already; here they are seeded, and the models start from the same weights in both libraries. Where a
guide's own code fails in Keras 3.15 itself, the program is the nearest one that runs there (each says how)."""
import os

import numpy


def same_start(model, scale=0.3):
    """Give ``model`` the same weights in both libraries (a fixed function of each weight's shape)."""
    model.set_weights([scale * numpy.sin(numpy.arange(w.size, dtype="float32") + 1.0).reshape(w.shape)
                       for w in model.get_weights()])
    return model


# ---------------------------------------------------------------- "Save, serialize, and export models"
def get_model(lib):
    inputs = lib.Input(shape=(32,))
    outputs = lib.layers.Dense(1)(inputs)
    model = lib.Model(inputs, outputs)
    same_start(model)
    model.compile(optimizer="adam", loss="mean_squared_error")
    return model


def guide_data(seed=0):
    rng = numpy.random.default_rng(seed)
    return rng.random((128, 32)).astype("float32"), rng.random((128, 1)).astype("float32")


def registered_objects(lib):
    """The guide's registered ``custom_fn`` and ``CustomLayer`` (package "my_package" and "MyLayers")."""
    @lib.saving.register_keras_serializable(package="MyLayers")
    class CustomLayer(lib.layers.Layer):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return {"factor": self.factor}

    @lib.saving.register_keras_serializable(package="my_package", name="custom_fn")
    def custom_fn(x):
        return x**2

    return CustomLayer, custom_fn


def custom_model(lib):
    """The guide's model of a registered layer and a registered activation function, compiled with RMSprop."""
    CustomLayer, custom_fn = registered_objects(lib)
    inputs = lib.Input(shape=(4,))
    mid = CustomLayer(0.5)(inputs)
    outputs = lib.layers.Dense(1, activation=custom_fn)(mid)
    model = same_start(lib.Model(inputs, outputs))
    model.compile(optimizer="rmsprop", loss="mean_squared_error")
    return model


def sublayer_class(lib):
    """The guide's layer that serializes the layer it wraps in its config."""
    class CustomLayer(lib.layers.Layer):
        def __init__(self, sublayer, **kwargs):
            super().__init__(**kwargs)
            self.sublayer = sublayer

        def call(self, x):
            return self.sublayer(x)

        def get_config(self):
            base_config = super().get_config()
            config = {"sublayer": lib.saving.serialize_keras_object(self.sublayer)}
            return {**base_config, **config}

        @classmethod
        def from_config(cls, config):
            sublayer_config = config.pop("sublayer")
            sublayer = lib.saving.deserialize_keras_object(sublayer_config)
            return cls(sublayer, **config)

    return CustomLayer


def simple_mlp(lib, dropout=False):
    """The guide's "3_layer_mlp" for transfer learning (with a Dropout before its head where asked)."""
    inputs = lib.Input(shape=(784,), name="digits")
    x = lib.layers.Dense(64, activation="relu", name="dense_1")(inputs)
    x = lib.layers.Dense(64, activation="relu", name="dense_2")(x)
    if dropout:
        x = lib.layers.Dropout(0.5)(x)
    outputs = lib.layers.Dense(10, name="predictions")(x)
    return lib.Model(inputs=inputs, outputs=outputs, name="3_layer_mlp")


def subclassed_mlp(lib):
    class SubclassedModel(lib.Model):
        def __init__(self, output_dim, name=None):
            super().__init__(name=name)
            self.output_dim = output_dim
            self.dense_1 = lib.layers.Dense(64, activation="relu", name="dense_1")
            self.dense_2 = lib.layers.Dense(64, activation="relu", name="dense_2")
            self.dense_3 = lib.layers.Dense(output_dim, name="predictions")

        def call(self, inputs):
            return self.dense_3(self.dense_2(self.dense_1(inputs)))

        def get_config(self):
            return {"output_dim": self.output_dim, "name": self.name}

    return SubclassedModel


# ---------------------------------------------------------------- "Customizing Saving and Serialization"
def custom_variable_layer(lib):
    """The guide's layer that saves a variable of its own beside its weights. The guide's subclasses Dense, whose
    ``save_own_variables`` in Keras 3.15 writes the kernel and bias only while ``self.weights`` lists the tracked
    variable first, so its ``load_own_variables`` fails in Keras itself; this one makes its kernel itself."""
    @lib.saving.register_keras_serializable(package="my_custom_package")
    class LayerWithCustomVariable(lib.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.my_variable = lib.Variable(numpy.linspace(0, 1, units), name="my_variable", dtype="float32")

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")

        def save_own_variables(self, store):
            super().save_own_variables(store)
            store["variables"] = numpy.array(self.my_variable)

        def load_own_variables(self, store):
            self.my_variable.assign(store["variables"])
            for i, v in enumerate(self.weights):
                v.assign(store[f"{i}"])

        def call(self, inputs):
            return lib.ops.matmul(inputs, self.kernel) + self.my_variable

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    return LayerWithCustomVariable


def custom_assets_layer(lib):
    @lib.saving.register_keras_serializable(package="my_custom_package")
    class LayerWithCustomAssets(lib.layers.Dense):
        def __init__(self, vocab=None, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.vocab = vocab

        def save_assets(self, inner_path):
            with open(os.path.join(inner_path, "vocabulary.txt"), "w") as f:
                f.write(self.vocab)

        def load_assets(self, inner_path):
            with open(os.path.join(inner_path, "vocabulary.txt"), "r") as f:
                text = f.read()
            self.vocab = text.replace("<unk>", "little")

    return LayerWithCustomAssets


def custom_build_layer(lib):
    """The guide's layer built with an argument of its own. As the guide writes it, Keras 3.15 fails to load it:
    a build of two arguments has the build config ``{"shapes_dict": {...}}``, not ``input_shape``; this one
    reads the shape there (and is built for a batch axis, which the guide leaves out)."""
    @lib.saving.register_keras_serializable(package="my_custom_package")
    class LayerWithCustomBuild(lib.layers.Layer):
        def __init__(self, units=32, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def call(self, inputs):
            return lib.ops.matmul(inputs, self.w) + self.b

        def get_config(self):
            return dict(units=self.units, **super().get_config())

        def build(self, input_shape, layer_init):
            super().build(input_shape)
            self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer=layer_init, trainable=True)
            self.b = self.add_weight(shape=(self.units,), initializer=layer_init, trainable=True)
            self.layer_init = layer_init

        def get_build_config(self):
            build_config = super().get_build_config()
            build_config.update({"layer_init": self.layer_init})
            return build_config

        def build_from_config(self, config):
            self.build(config["shapes_dict"]["input_shape"], config["layer_init"])

    return LayerWithCustomBuild


def compile_objects(lib):
    """The guide's registered loss and metric functions."""
    @lib.saving.register_keras_serializable(package="my_custom_package")
    def small_square_sum_loss(y_true, y_pred):
        loss = lib.ops.square(y_pred - y_true)
        loss = loss / 10.0
        loss = lib.ops.sum(loss, axis=1)
        return loss

    @lib.saving.register_keras_serializable(package="my_custom_package")
    def mean_pred(y_true, y_pred):
        return lib.ops.mean(y_pred)

    return small_square_sum_loss, mean_pred


def model_with_custom_compile(lib):
    """The guide's subclassed model with its own compile config. As the guide writes it (an ``__init__`` of no
    arguments) Keras 3.15 cannot rebuild it: the config it writes holds the base arguments (``trainable``,
    ``dtype``), which that ``__init__`` refuses; this one passes them on."""
    @lib.saving.register_keras_serializable(package="my_custom_package")
    class ModelWithCustomCompile(lib.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense1 = lib.layers.Dense(8, activation="relu")
            self.dense2 = lib.layers.Dense(4, activation="softmax")

        def call(self, inputs):
            x = self.dense1(inputs)
            return self.dense2(x)

        def compile(self, optimizer, loss_fn, metrics):
            super().compile(optimizer=optimizer, loss=loss_fn, metrics=metrics)
            self.model_optimizer = optimizer
            self.loss_fn = loss_fn
            self.loss_metrics = metrics

        def get_compile_config(self):
            return {"model_optimizer": self.model_optimizer, "loss_fn": self.loss_fn, "metric": self.loss_metrics}

        def compile_from_config(self, config):
            optimizer = lib.utils.deserialize_keras_object(config["model_optimizer"])
            loss_fn = lib.utils.deserialize_keras_object(config["loss_fn"])
            metrics = lib.utils.deserialize_keras_object(config["metric"])
            self.compile(optimizer=optimizer, loss_fn=loss_fn, metrics=metrics)

    return ModelWithCustomCompile


def three_layer_mlp(lib):
    """The guide's subclassed model with a config of its own."""
    @lib.saving.register_keras_serializable(package="my_package")
    class ThreeLayerMLP(lib.Model):
        def __init__(self, hidden_units, **kwargs):
            super().__init__(**kwargs)
            self.hidden_units = hidden_units
            self.dense_layers = [lib.layers.Dense(u) for u in hidden_units]

        def call(self, inputs):
            x = inputs
            for layer in self.dense_layers:
                x = layer(x)
            return x

        def get_config(self):
            return {"hidden_units": self.hidden_units}

    return ThreeLayerMLP
