"""The programs of Keras's guide "Transfer learning & fine-tuning", written once for both libraries: ``lib`` is
``gpu_dl`` or ``keras``. The guide's ImageNet Xception becomes a small functional base built the same way
(convolutions, batch normalization, separable convolutions, a residual branch) with random weights, and its cats
and dogs become small random images; its custom training loop is written as the PyTorch guides write theirs
(``loss.backward()``, ``optimizer.apply``), through ``custom_step_classes``."""
import custom_step_classes as steps

IMAGE_SHAPE = (20, 20, 3)


def weight_counts(lib):
    """(weights, trainable, non-trainable) of a built Dense, a built BatchNormalization and a frozen Dense."""
    counts = []
    for make, freeze in ((lambda: lib.layers.Dense(3), False), (lib.layers.BatchNormalization, False),
                         (lambda: lib.layers.Dense(3), True)):
        layer = make()
        layer.build((None, 4))
        if freeze:
            layer.trainable = False
        counts.append((len(layer.weights), len(layer.trainable_weights), len(layer.non_trainable_weights)))
    return counts


def frozen_first_layer(lib):
    """The guide's two-layer model whose first layer is frozen before compile: (model, its first layer)."""
    layer1 = lib.layers.Dense(3, activation="relu")
    layer2 = lib.layers.Dense(3, activation="sigmoid")
    model = lib.Sequential([lib.Input(shape=(3,)), layer1, layer2])
    layer1.trainable = False
    model.compile(optimizer="adam", loss="mse")
    return model, layer1


def nested_frozen(lib):
    """The guide's model holding an inner Sequential, frozen from the outside: (outer, inner)."""
    inner_model = lib.Sequential([lib.Input(shape=(3,)), lib.layers.Dense(3, activation="relu"),
                                  lib.layers.Dense(3, activation="relu")])
    model = lib.Sequential([lib.Input(shape=(3,)), inner_model, lib.layers.Dense(3, activation="sigmoid")])
    model.trainable = False
    return model, inner_model


def small_base(lib, input_shape=IMAGE_SHAPE):
    """A small stand-in for ``Xception(include_top=False)``: an entry flow of Xception's kind."""
    layers = lib.layers
    inputs = lib.Input(shape=input_shape)
    x = layers.Conv2D(8, 3, strides=2, use_bias=False, name="block1_conv1")(inputs)
    x = layers.BatchNormalization(name="block1_conv1_bn")(x)
    x = layers.Activation("relu", name="block1_conv1_act")(x)
    residual = layers.Conv2D(16, 1, strides=2, padding="same", use_bias=False)(x)
    residual = layers.BatchNormalization()(residual)
    x = layers.SeparableConv2D(16, 3, padding="same", use_bias=False, name="block2_sepconv1")(x)
    x = layers.BatchNormalization(name="block2_sepconv1_bn")(x)
    x = layers.Activation("relu", name="block2_sepconv2_act")(x)
    x = layers.SeparableConv2D(16, 3, padding="same", use_bias=False, name="block2_sepconv2")(x)
    x = layers.BatchNormalization(name="block2_sepconv2_bn")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="block2_pool")(x)
    x = layers.add([x, residual])
    return lib.Model(inputs, x, name="small_base")


def classifier_on(lib, base_model, augment=True, dropout=True, input_shape=IMAGE_SHAPE):
    """The guide's model: random augmentation, rescaling to [-1, 1], the frozen base called in inference mode,
    global average pooling, dropout and a one-logit Dense head. ``augment`` and ``dropout`` leave out the random
    layers (whose draws differ between the libraries) for comparisons of training."""
    layers = lib.layers
    inputs = lib.Input(shape=input_shape)
    x = inputs
    if augment:
        data_augmentation = lib.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)])
        x = data_augmentation(x)
    scale_layer = layers.Rescaling(scale=1 / 127.5, offset=-1)
    x = scale_layer(x)
    x = base_model(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    if dropout:
        x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(1)(x)
    return lib.Model(inputs, outputs)


def compile_top(lib, model, learning_rate=None):
    """compile as the guide does: Adam (at ``learning_rate`` for fine-tuning), logits' binary cross-entropy,
    binary accuracy."""
    optimizer = lib.optimizers.Adam() if learning_rate is None else lib.optimizers.Adam(learning_rate)
    model.compile(optimizer=optimizer, loss=lib.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[lib.metrics.BinaryAccuracy()])


def custom_loop(lib, model, batches):
    """The guide's custom training loop over (inputs, targets) batches, updating ``model.trainable_weights``
    only; returns the losses."""
    loss_fn = lib.losses.BinaryCrossentropy(from_logits=True)
    optimizer = lib.optimizers.Adam()
    losses = []
    for inputs, targets in batches:
        model.zero_grad()
        predictions = model(inputs, training=True)
        loss_value = loss_fn(targets, predictions)
        loss_value.backward()
        weights = list(model.trainable_weights)
        steps.apply(lib, optimizer, steps.gradients(lib, weights), weights)
        losses.append(float(lib.ops.convert_to_numpy(loss_value)))
    return losses
