"""The programs of Keras's guide "Training & evaluation with the built-in methods", written once for both
libraries: ``lib`` is ``gpu_dl`` or ``keras``. The guide's TensorFlow calls are written with Keras 3's ``ops``
(``tf.square`` as ``ops.square``, ``tf.one_hot`` as ``ops.one_hot``), its ``tf.data`` datasets as
``keras.utils.PyDataset`` subclasses yielding the same batches, and its MNIST digits as small random arrays."""


def get_uncompiled_model(lib, softmax=True):
    layers = lib.layers
    inputs = lib.Input(shape=(784,), name="digits")
    x = layers.Dense(64, activation="relu", name="dense_1")(inputs)
    x = layers.Dense(64, activation="relu", name="dense_2")(x)
    outputs = layers.Dense(10, activation="softmax" if softmax else None, name="predictions")(x)
    return lib.Model(inputs=inputs, outputs=outputs)


def compile_default(lib, model):
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
                  metrics=["sparse_categorical_accuracy"])
    return model


def get_compiled_model(lib):
    return compile_default(lib, get_uncompiled_model(lib))


def custom_mean_squared_error(lib):
    ops = lib.ops

    def custom_mean_squared_error(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred))
    return custom_mean_squared_error


def custom_mse_class(lib):
    ops = lib.ops

    class CustomMSE(lib.losses.Loss):
        def __init__(self, regularization_factor=0.1, name="custom_mse"):
            super().__init__(name=name)
            self.regularization_factor = regularization_factor

        def call(self, y_true, y_pred):
            mse = ops.mean(ops.square(y_true - y_pred))
            reg = ops.mean(ops.square(0.5 - y_pred))
            return mse + reg * self.regularization_factor
    return CustomMSE


def categorical_true_positives_class(lib):
    ops = lib.ops

    class CategoricalTruePositives(lib.metrics.Metric):
        def __init__(self, name="categorical_true_positives", **kwargs):
            super().__init__(name=name, **kwargs)
            self.true_positives = self.add_variable(shape=(), name="ctp", initializer="zeros")

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_pred = ops.reshape(ops.argmax(y_pred, axis=1), (-1, 1))
            values = ops.cast(y_true, "int32") == ops.cast(y_pred, "int32")
            values = ops.cast(values, "float32")
            if sample_weight is not None:
                sample_weight = ops.cast(sample_weight, "float32")
                values = ops.multiply(values, sample_weight)
            self.true_positives.assign_add(ops.sum(values))

        def result(self):
            return self.true_positives.value

        def reset_state(self):
            # The state of the metric will be reset at the start of each epoch.
            self.true_positives.assign(0.0)
    return CategoricalTruePositives


def activity_regularization_model(lib):
    """The functional model with the guide's pass-through layer that adds a loss of its input's sum."""
    layers, ops = lib.layers, lib.ops

    class ActivityRegularizationLayer(layers.Layer):
        def call(self, inputs):
            self.add_loss(ops.sum(inputs) * 0.1)
            return inputs  # Pass-through layer.

    inputs = lib.Input(shape=(784,), name="digits")
    x = layers.Dense(64, activation="relu", name="dense_1")(inputs)
    x = ActivityRegularizationLayer()(x)
    x = layers.Dense(64, activation="relu", name="dense_2")(x)
    outputs = layers.Dense(10, name="predictions")(x)
    model = lib.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=lib.optimizers.RMSprop(learning_rate=1e-3),
                  loss=lib.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def logistic_endpoint_model(lib, as_written=True):
    """The two-input model whose LogisticEndpoint adds its own loss, compiled without one. As the guide writes
    it, the layer is called on (logits, targets), which its call takes as (targets, logits): the loss's targets
    are the Dense layer's logits. ``as_written=False`` calls it on (targets, logits)."""
    ops = lib.ops

    class LogisticEndpoint(lib.layers.Layer):
        def __init__(self, name=None):
            super().__init__(name=name)
            self.loss_fn = lib.losses.BinaryCrossentropy(from_logits=True)

        def call(self, targets, logits, sample_weights=None):
            # Compute the training-time loss value and add it to the layer using `self.add_loss()`.
            loss = self.loss_fn(targets, logits, sample_weights)
            self.add_loss(loss)
            # Return the inference-time prediction tensor (for `.predict()`).
            return ops.softmax(logits)

    inputs = lib.Input(shape=(3,), name="inputs")
    targets = lib.Input(shape=(10,), name="targets")
    logits = lib.layers.Dense(10)(inputs)
    endpoint = LogisticEndpoint(name="predictions")
    predictions = endpoint(logits, targets) if as_written else endpoint(targets, logits)
    model = lib.Model(inputs=[inputs, targets], outputs=predictions)
    model.compile(optimizer="adam")  # No loss argument!
    return model


def batches_class(lib):
    """A ``PyDataset`` of the batches a ``tf.data`` dataset sliced from arrays and batched gives (unshuffled): the
    tuple of arrays, or of dicts of arrays, cut into batches of ``batch_size``."""
    import numpy

    def take(part, start, stop):
        if isinstance(part, dict):
            return {k: v[start:stop] for k, v in part.items()}
        return part[start:stop]

    class Batches(lib.utils.PyDataset):
        def __init__(self, parts, batch_size=64, **kwargs):
            super().__init__(**kwargs)
            self.parts, self.batch_size = parts, batch_size
            first = parts[0]
            self.size = len(next(iter(first.values()))) if isinstance(first, dict) else len(first)

        def __len__(self):
            return int(numpy.ceil(self.size / self.batch_size))

        def __getitem__(self, index):
            start, stop = index * self.batch_size, (index + 1) * self.batch_size
            return tuple(take(part, start, stop) for part in self.parts)
    return Batches


def sequence_class(lib):
    """The guide's ``keras.utils.Sequence`` example (its images read from files become rows of an array): a
    subclass that, as written there, does not call ``super().__init__()``."""
    import numpy

    class CIFAR10Sequence(lib.utils.Sequence):
        def __init__(self, filenames, labels, batch_size):
            self.filenames, self.labels = filenames, labels
            self.batch_size = batch_size

        def __len__(self):
            return int(numpy.ceil(len(self.filenames) / float(self.batch_size)))

        def __getitem__(self, idx):
            batch_x = self.filenames[idx * self.batch_size:(idx + 1) * self.batch_size]
            batch_y = self.labels[idx * self.batch_size:(idx + 1) * self.batch_size]
            return numpy.array(batch_x), numpy.array(batch_y)
    return CIFAR10Sequence


def multi_io_model(lib):
    layers = lib.layers
    image_input = lib.Input(shape=(32, 32, 3), name="img_input")
    timeseries_input = lib.Input(shape=(None, 10), name="ts_input")
    x1 = layers.Conv2D(3, 3)(image_input)
    x1 = layers.GlobalMaxPooling2D()(x1)
    x2 = layers.Conv1D(3, 3)(timeseries_input)
    x2 = layers.GlobalMaxPooling1D()(x2)
    x = layers.concatenate([x1, x2])
    score_output = layers.Dense(1, name="score_output")(x)
    class_output = layers.Dense(5, name="class_output")(x)
    return lib.Model(inputs=[image_input, timeseries_input], outputs=[score_output, class_output])


def multi_io_compiles(lib):
    """The guide's compile() arguments for the multi-output model, in its order."""
    losses, metrics = lib.losses, lib.metrics
    return [
        dict(loss=[losses.MeanSquaredError(), losses.CategoricalCrossentropy()]),
        dict(loss=[losses.MeanSquaredError(), losses.CategoricalCrossentropy()],
             metrics=[[metrics.MeanAbsolutePercentageError(), metrics.MeanAbsoluteError()],
                      [metrics.CategoricalAccuracy()]]),
        dict(loss={"score_output": losses.MeanSquaredError(), "class_output": losses.CategoricalCrossentropy()},
             metrics={"score_output": [metrics.MeanAbsolutePercentageError(), metrics.MeanAbsoluteError()],
                      "class_output": [metrics.CategoricalAccuracy()]}),
        dict(loss={"score_output": losses.MeanSquaredError(), "class_output": losses.CategoricalCrossentropy()},
             metrics={"score_output": [metrics.MeanAbsolutePercentageError(), metrics.MeanAbsoluteError()],
                      "class_output": [metrics.CategoricalAccuracy()]},
             loss_weights={"score_output": 2.0, "class_output": 1.0}),
        dict(loss=[None, losses.CategoricalCrossentropy()]),
        dict(loss={"class_output": losses.CategoricalCrossentropy()}),
    ]


def loss_history_class(lib):
    class LossHistory(lib.callbacks.Callback):
        def on_train_begin(self, logs):
            self.per_batch_losses = []

        def on_batch_end(self, batch, logs):
            self.per_batch_losses.append(logs.get("loss"))
    return LossHistory


def make_or_restore_model(lib, checkpoint_dir, make):
    """Either restore the latest model of ``checkpoint_dir``, or create a fresh one with ``make()``."""
    import os
    checkpoints = [os.path.join(checkpoint_dir, name) for name in os.listdir(checkpoint_dir)]
    if checkpoints:
        latest_checkpoint = max(checkpoints, key=os.path.getctime)
        return lib.models.load_model(latest_checkpoint), latest_checkpoint
    return make(), None


def exponential_decay_rmsprop(lib, initial_learning_rate=0.1, decay_steps=100000):
    lr_schedule = lib.optimizers.schedules.ExponentialDecay(initial_learning_rate, decay_steps=decay_steps,
                                                            decay_rate=0.96, staircase=True)
    return lib.optimizers.RMSprop(learning_rate=lr_schedule)
