"""The programs of Keras's guide "Understanding masking & padding", written once for both libraries: ``lib`` is
``gpu_dl`` or ``keras`` (TensorFlow's ``tf.split``, ``tf.not_equal``, ``tf.nn.relu``, ``tf.exp``... written with the
library's ``ops``, ``tf.keras.preprocessing.sequence.pad_sequences`` as ``utils.pad_sequences``)."""
import numpy

import custom_mask_classes

# The guide's TemporalSplit and CustomEmbedding, shared with the custom-mask tests.
temporal_split_class = custom_mask_classes.temporal_split
custom_embedding_class = custom_mask_classes.custom_embedding

RAW_INPUTS = [[711, 632, 71], [73, 8, 3215, 55, 927], [83, 91, 1, 645, 1253, 927]]


def padded_inputs(lib):
    """The guide's three sequences padded at the end with zeros."""
    return lib.utils.pad_sequences(RAW_INPUTS, padding="post")


def unmasked_embedding(lib, padded):
    """The padded ids repeated along a new last axis of 10, as float32: an embedding lookup stand-in."""
    ops = lib.ops
    return ops.cast(ops.tile(ops.expand_dims(padded, axis=-1), [1, 1, 10]), "float32")


def eager_mask(lib, layer, inputs, output, previous_mask=None):
    """The mask of ``layer``'s eager ``output``: Keras attaches it to the tensor (``_keras_mask``); gpu_dl's arrays
    are NumPy's or CuPy's, which take no attributes, so there it is ``layer.compute_mask`` of the inputs."""
    if lib.__name__ == "keras":
        return output._keras_mask
    return layer.compute_mask(inputs, previous_mask)


def embedding_lstm_sequential(lib):
    layers = lib.layers
    return lib.Sequential([layers.Embedding(input_dim=5000, output_dim=16, mask_zero=True), layers.LSTM(32)])


def embedding_lstm_functional(lib):
    layers = lib.layers
    inputs = lib.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(input_dim=5000, output_dim=16, mask_zero=True)(inputs)
    outputs = layers.LSTM(32)(x)
    return lib.Model(inputs, outputs)


def my_layer_class(lib):
    """The guide's MyLayer: an Embedding's compute_mask passed by hand to an LSTM."""
    layers = lib.layers

    class MyLayer(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.embedding = layers.Embedding(input_dim=5000, output_dim=16, mask_zero=True)
            self.lstm = layers.LSTM(32)

        def call(self, inputs):
            x = self.embedding(inputs)
            mask = self.embedding.compute_mask(inputs)
            return self.lstm(x, mask=mask)

    return MyLayer


def my_activation_class(lib):
    class MyActivation(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            # Signal that the layer is safe for mask propagation
            self.supports_masking = True

        def call(self, inputs):
            return lib.ops.relu(inputs)

    return MyActivation


def activation_model(lib):
    """Embedding(mask_zero), MyActivation passing the mask on, LSTM: (the mask after MyActivation, the model)."""
    layers = lib.layers
    inputs = lib.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(input_dim=5000, output_dim=16, mask_zero=True)(inputs)
    x = my_activation_class(lib)()(x)
    found = x._keras_mask
    outputs = layers.LSTM(32)(x)
    return found, lib.Model(inputs, outputs)


def temporal_softmax_class(lib):
    ops = lib.ops

    class TemporalSoftmax(lib.layers.Layer):
        def call(self, inputs, mask=None):
            broadcast_float_mask = ops.expand_dims(ops.cast(mask, "float32"), -1)
            inputs_exp = ops.exp(inputs) * broadcast_float_mask
            inputs_sum = ops.sum(inputs * broadcast_float_mask, axis=1, keepdims=True)
            return inputs_exp / inputs_sum

    return TemporalSoftmax


def temporal_softmax_model(lib):
    layers = lib.layers
    inputs = lib.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(input_dim=10, output_dim=32, mask_zero=True)(inputs)
    x = layers.Dense(1)(x)
    outputs = temporal_softmax_class(lib)()(x)
    return lib.Model(inputs, outputs)


def masked_classifier(lib, rnn="LSTM", bidirectional=False):
    """The guide's Embedding(mask_zero=True) into a recurrent layer (``rnn``: "LSTM" or "GRU", in a Bidirectional
    where asked), a Dense(3) softmax head to train: the recurrent layer skips the padded steps."""
    layers = lib.layers
    inputs = lib.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(input_dim=50, output_dim=8, mask_zero=True)(inputs)
    recurrent = getattr(layers, rnn)(6)
    x = (layers.Bidirectional(recurrent) if bidirectional else recurrent)(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    return lib.Model(inputs, outputs)


def time_distributed_sequences(lib):
    """Masking, a TimeDistributed Dense (the mask passes through it), an LSTM returning sequences, and the mask
    after each: (model, [masks of the three outputs])."""
    layers = lib.layers
    inputs = lib.Input(shape=(None, 4))
    x = layers.Masking(mask_value=0.0)(inputs)
    y = layers.TimeDistributed(layers.Dense(5))(x)
    z = layers.LSTM(3, return_sequences=True)(y)
    return lib.Model(inputs, z), [x._keras_mask, y._keras_mask, z._keras_mask]


def sequence_tagger(lib):
    """Masking, a Bidirectional LSTM returning sequences and a TimeDistributed softmax: one class per step, the
    mask reaching the outputs (and the loss)."""
    layers = lib.layers
    inputs = lib.Input(shape=(None, 4))
    x = layers.Masking(mask_value=0.0)(inputs)
    x = layers.Bidirectional(layers.LSTM(5, return_sequences=True))(x)
    outputs = layers.TimeDistributed(layers.Dense(3, activation="softmax"))(x)
    return lib.Model(inputs, outputs)


def padded_steps(rng, batch, steps=6, features=4):
    """Random sequences of random lengths (at least one step), padded at the end with zero steps."""
    lengths = rng.integers(1, steps + 1, batch)
    x = rng.standard_normal((batch, steps, features)).astype("float32")
    return numpy.where((numpy.arange(steps) < lengths[:, None])[..., None], x, 0).astype("float32")


def padded_ids(rng, batch, steps=7, vocabulary=50):
    """Random ids of sequences of random lengths (at least one step), padded at the end with zeros."""
    lengths = rng.integers(1, steps + 1, batch)
    ids = rng.integers(1, vocabulary, (batch, steps))
    return numpy.where(numpy.arange(steps) < lengths[:, None], ids, 0).astype("int32")
