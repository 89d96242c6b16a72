"""The programs of Keras 3's guide "Working with RNNs", written once for both libraries: ``lib`` is ``gpu_dl`` or
``keras``. MNIST's rows are random arrays of the same shapes here."""
import numpy


def embedding_lstm(lib):
    """The guide's first model: Embedding, LSTM(128), Dense(10), not built."""
    layers = lib.layers
    model = lib.Sequential()
    model.add(layers.Embedding(input_dim=1000, output_dim=64))
    model.add(layers.LSTM(128))
    model.add(layers.Dense(10))
    return model


def gru_simple_rnn(lib):
    """Outputs and states: a GRU returning sequences into a SimpleRNN, not built."""
    layers = lib.layers
    model = lib.Sequential()
    model.add(layers.Embedding(input_dim=1000, output_dim=64))
    model.add(layers.GRU(256, return_sequences=True))
    model.add(layers.SimpleRNN(128))
    model.add(layers.Dense(10))
    return model


def encoder_decoder(lib):
    """The encoder's final states as the decoder's initial state."""
    layers = lib.layers
    encoder_input = layers.Input(shape=(None,))
    encoder_embedded = layers.Embedding(input_dim=1000, output_dim=64)(encoder_input)
    output, state_h, state_c = layers.LSTM(64, return_state=True, name="encoder")(encoder_embedded)
    encoder_state = [state_h, state_c]
    decoder_input = layers.Input(shape=(None,))
    decoder_embedded = layers.Embedding(input_dim=2000, output_dim=64)(decoder_input)
    decoder_output = layers.LSTM(64, name="decoder")(decoder_embedded, initial_state=encoder_state)
    output = layers.Dense(10)(decoder_output)
    return lib.Model([encoder_input, decoder_input], output)


def bidirectional(lib):
    layers = lib.layers
    model = lib.Sequential()
    model.add(layers.Bidirectional(layers.LSTM(64, return_sequences=True), input_shape=(5, 10)))
    model.add(layers.Bidirectional(layers.LSTM(32)))
    model.add(layers.Dense(10))
    return model


def build_model(lib, allow_cudnn_kernel=True, units=64, input_dim=28, output_size=10):
    """The guide's MNIST-rows model: LSTM(units), or RNN(LSTMCell(units)), then BatchNormalization and Dense."""
    if allow_cudnn_kernel:
        lstm_layer = lib.layers.LSTM(units, input_shape=(None, input_dim))
    else:
        lstm_layer = lib.layers.RNN(lib.layers.LSTMCell(units), input_shape=(None, input_dim))
    return lib.models.Sequential([lstm_layer, lib.layers.BatchNormalization(), lib.layers.Dense(output_size)])


def compile_for_digits(lib, model):
    model.compile(loss=lib.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="sgd",
                  metrics=["accuracy"])
    return model


def paragraphs(seed=0):
    rng = numpy.random.default_rng(seed)
    return [rng.random((20, 10, 50)).astype(numpy.float32) for _ in range(3)]


def minimal_rnn_cell_class(lib):
    """The MinimalRNNCell of Keras's RNN documentation and guide: one state, its output, of ``units``."""
    class MinimalRNNCell(lib.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="uniform", name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), initializer="uniform",
                                                    name="recurrent_kernel")

        def call(self, inputs, states):
            prev_output = states[0]
            h = lib.ops.matmul(inputs, self.kernel)
            output = h + lib.ops.matmul(prev_output, self.recurrent_kernel)
            return output, [output]

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    return MinimalRNNCell


def nested_cell_class(lib):
    """The guide's NestedCell, with the library's ops for TensorFlow's (``tf.nest.flatten``, ``tf.matmul``,
    ``tf.einsum``) and shape tuples for ``tf.TensorShape``."""
    class NestedCell(lib.layers.Layer):
        def __init__(self, unit_1, unit_2, unit_3, **kwargs):
            self.unit_1 = unit_1
            self.unit_2 = unit_2
            self.unit_3 = unit_3
            self.state_size = [(unit_1,), (unit_2, unit_3)]
            self.output_size = [(unit_1,), (unit_2, unit_3)]
            super().__init__(**kwargs)

        def build(self, input_shapes):
            i1, i2, i3 = input_shapes[0][1], input_shapes[1][1], input_shapes[1][2]
            self.kernel_1 = self.add_weight(shape=(i1, self.unit_1), initializer="uniform", name="kernel_1")
            self.kernel_2_3 = self.add_weight(shape=(i2, i3, self.unit_2, self.unit_3), initializer="uniform",
                                              name="kernel_2_3")

        def call(self, inputs, states):
            input_1, input_2 = inputs
            s1, s2 = states
            output_1 = lib.ops.matmul(input_1, self.kernel_1)
            output_2_3 = lib.ops.einsum("bij,ijkl->bkl", input_2, self.kernel_2_3)
            return (output_1, output_2_3), (s1 + output_1, s2 + output_2_3)

        def get_config(self):
            return {"unit_1": self.unit_1, "unit_2": self.unit_2, "unit_3": self.unit_3}
    return NestedCell
