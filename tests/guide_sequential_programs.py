"""The programs of Keras's guide "The Sequential model", written once for both libraries: ``lib`` is ``gpu_dl`` or
``keras`` (``tf.ones`` written with the library's ``ops``). Its pretrained Xception becomes a small functional
base ending in global average pooling, with random weights."""


def named_stack(lib):
    """The guide's first model: three named Dense layers."""
    layers = lib.layers
    return lib.Sequential([layers.Dense(2, activation="relu", name="layer1"),
                           layers.Dense(3, activation="relu", name="layer2"),
                           layers.Dense(4, name="layer3")])


def named_layers(lib):
    """The same three layers, to be called one after the other."""
    layers = lib.layers
    return (layers.Dense(2, activation="relu", name="layer1"), layers.Dense(3, activation="relu", name="layer2"),
            layers.Dense(4, name="layer3"))


def added_then_popped(lib):
    """The stack built with add(), its last layer popped."""
    layers = lib.layers
    model = lib.Sequential()
    model.add(layers.Dense(2, activation="relu"))
    model.add(layers.Dense(3, activation="relu"))
    model.add(layers.Dense(4))
    model.pop()
    return model


def my_sequential(lib):
    layers = lib.layers
    model = lib.Sequential(name="my_sequential")
    model.add(layers.Dense(2, activation="relu", name="layer1"))
    model.add(layers.Dense(3, activation="relu", name="layer2"))
    model.add(layers.Dense(4, name="layer3"))
    return model


def with_input(lib):
    model = lib.Sequential()
    model.add(lib.Input(shape=(4,)))
    model.add(lib.layers.Dense(2, activation="relu"))
    return model


def with_input_shape(lib):
    model = lib.Sequential()
    model.add(lib.layers.Dense(2, activation="relu", input_shape=(4,)))
    return model


def debugging_stack(lib, summaries):
    """The guide's add() + summary() workflow: ``summaries(model)`` at its two summary() calls; returns the
    finished model."""
    layers = lib.layers
    model = lib.Sequential()
    model.add(lib.Input(shape=(250, 250, 3)))
    model.add(layers.Conv2D(32, 5, strides=2, activation="relu"))
    model.add(layers.Conv2D(32, 3, activation="relu"))
    model.add(layers.MaxPooling2D(3))
    summaries(model)
    model.add(layers.Conv2D(32, 3, activation="relu"))
    model.add(layers.Conv2D(32, 3, activation="relu"))
    model.add(layers.MaxPooling2D(3))
    model.add(layers.Conv2D(32, 3, activation="relu"))
    model.add(layers.Conv2D(32, 3, activation="relu"))
    model.add(layers.MaxPooling2D(2))
    summaries(model)
    model.add(layers.GlobalMaxPooling2D())
    model.add(layers.Dense(10))
    return model


def feature_extractors(lib, size=250):
    """(initial model, extractor of every layer's output, model with a named middle layer, extractor of that
    layer's output)."""
    layers = lib.layers
    initial_model = lib.Sequential([lib.Input(shape=(size, size, 3)),
                                    layers.Conv2D(32, 5, strides=2, activation="relu"),
                                    layers.Conv2D(32, 3, activation="relu"),
                                    layers.Conv2D(32, 3, activation="relu")])
    every_layer = lib.Model(inputs=initial_model.inputs, outputs=[layer.output for layer in initial_model.layers])
    named_model = lib.Sequential([lib.Input(shape=(size, size, 3)),
                                  layers.Conv2D(32, 5, strides=2, activation="relu"),
                                  layers.Conv2D(32, 3, activation="relu", name="my_intermediate_layer"),
                                  layers.Conv2D(32, 3, activation="relu")])
    one_layer = lib.Model(inputs=named_model.inputs,
                          outputs=named_model.get_layer(name="my_intermediate_layer").output)
    return initial_model, every_layer, named_model, one_layer


def mlp(lib):
    """The first transfer blueprint's model (``keras.Input(shape=(784))`` in the guide, a tuple here)."""
    layers = lib.layers
    return lib.Sequential([lib.Input(shape=(784,)), layers.Dense(32, activation="relu"),
                           layers.Dense(32, activation="relu"), layers.Dense(32, activation="relu"),
                           layers.Dense(10)])


def freeze_all_but_last(model):
    for layer in model.layers[:-1]:
        layer.trainable = False


def pooled_base(lib, input_shape=(16, 16, 3)):
    """A small stand-in for ``Xception(include_top=False, pooling="avg")``."""
    layers = lib.layers
    inputs = lib.Input(shape=input_shape)
    x = layers.Conv2D(8, 3, strides=2, use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.SeparableConv2D(16, 3, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return lib.Model(inputs, x, name="pooled_base")


def classifier_on_base(lib, base_model, classes=1000):
    """The second blueprint: the frozen base under a new Dense head, in a Sequential."""
    base_model.trainable = False
    return lib.Sequential([base_model, lib.layers.Dense(classes)])
