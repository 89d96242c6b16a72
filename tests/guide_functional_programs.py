"""The programs of Keras's guide "The Functional API", written once for both libraries: ``lib`` is ``gpu_dl`` or
``keras`` (``tf.matmul``, ``tf.zeros`` and ``tf.stack`` written with the library's ``ops``)."""


def mnist_model(lib):
    layers = lib.layers
    inputs = lib.Input(shape=(784,))
    x = layers.Dense(64, activation="relu")(inputs)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(10)(x)
    return lib.Model(inputs=inputs, outputs=outputs, name="mnist_model")


def _encoder_layers(lib, encoder_input):
    layers = lib.layers
    x = layers.Conv2D(16, 3, activation="relu")(encoder_input)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D(3)(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    return layers.GlobalMaxPooling2D()(x)


def _decoder_layers(lib, x):
    layers = lib.layers
    x = layers.Reshape((4, 4, 1))(x)
    x = layers.Conv2DTranspose(16, 3, activation="relu")(x)
    x = layers.Conv2DTranspose(32, 3, activation="relu")(x)
    x = layers.UpSampling2D(3)(x)
    x = layers.Conv2DTranspose(16, 3, activation="relu")(x)
    return layers.Conv2DTranspose(1, 3, activation="relu")(x)


def autoencoders(lib):
    """(encoder, autoencoder on the same graph of layers, autoencoder of nested encoder and decoder models)."""
    encoder_input = lib.Input(shape=(28, 28, 1), name="img")
    encoder_output = _encoder_layers(lib, encoder_input)
    encoder = lib.Model(encoder_input, encoder_output, name="encoder")
    autoencoder = lib.Model(encoder_input, _decoder_layers(lib, encoder_output), name="autoencoder")

    original = lib.Input(shape=(28, 28, 1), name="original_img")
    nested_encoder = lib.Model(original, _encoder_layers(lib, original), name="encoder")
    decoder_input = lib.Input(shape=(16,), name="encoded_img")
    decoder = lib.Model(decoder_input, _decoder_layers(lib, decoder_input), name="decoder")
    autoencoder_input = lib.Input(shape=(28, 28, 1), name="img")
    nested = lib.Model(autoencoder_input, decoder(nested_encoder(autoencoder_input)), name="autoencoder")
    return encoder, autoencoder, nested


def ensemble(lib):
    def get_model():
        inputs = lib.Input(shape=(128,))
        outputs = lib.layers.Dense(1)(inputs)
        return lib.Model(inputs, outputs)

    model1, model2, model3 = get_model(), get_model(), get_model()
    inputs = lib.Input(shape=(128,))
    outputs = lib.layers.average([model1(inputs), model2(inputs), model3(inputs)])
    return lib.Model(inputs=inputs, outputs=outputs)


def ticket_model(lib, num_tags=12, num_words=10000, num_departments=4):
    layers = lib.layers
    title_input = lib.Input(shape=(None,), name="title")
    body_input = lib.Input(shape=(None,), name="body")
    tags_input = lib.Input(shape=(num_tags,), name="tags")
    title_features = layers.LSTM(128)(layers.Embedding(num_words, 64)(title_input))
    body_features = layers.LSTM(32)(layers.Embedding(num_words, 64)(body_input))
    x = layers.concatenate([title_features, body_features, tags_input])
    priority_pred = layers.Dense(1, name="priority")(x)
    department_pred = layers.Dense(num_departments, name="department")(x)
    model = lib.Model(inputs=[title_input, body_input, tags_input], outputs=[priority_pred, department_pred])
    model.compile(optimizer=lib.optimizers.RMSprop(1e-3),
                  loss={"priority": lib.losses.BinaryCrossentropy(from_logits=True),
                        "department": lib.losses.CategoricalCrossentropy(from_logits=True)},
                  loss_weights={"priority": 1.0, "department": 0.2})
    return model


def toy_resnet(lib):
    layers = lib.layers
    inputs = lib.Input(shape=(32, 32, 3), name="img")
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    block_1_output = layers.MaxPooling2D(3)(x)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_1_output)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    block_2_output = layers.add([x, block_1_output])
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_2_output)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    block_3_output = layers.add([x, block_2_output])
    x = layers.Conv2D(64, 3, activation="relu")(block_3_output)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(10)(x)
    return lib.Model(inputs, outputs, name="toy_resnet")


def custom_dense_class(lib):
    class CustomDense(lib.layers.Layer):
        def __init__(self, units=32):
            super().__init__()
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal",
                                     trainable=True)
            self.b = self.add_weight(shape=(self.units,), initializer="random_normal", trainable=True)

        def call(self, inputs):
            return lib.ops.matmul(inputs, self.w) + self.b

        def get_config(self):
            return {"units": self.units}
    return CustomDense


def custom_rnn_class(lib, units=32):
    """The guide's CustomRNN: a Python loop over the steps from a zero state of the input's batch size; its
    classifier is a Dense layer, or the model given."""
    class CustomRNN(lib.layers.Layer):
        def __init__(self, classifier=None):
            super().__init__()
            self.units = units
            self.projection_1 = lib.layers.Dense(units=units, activation="tanh")
            self.projection_2 = lib.layers.Dense(units=units, activation="tanh")
            self.classifier = lib.layers.Dense(1) if classifier is None else classifier

        def call(self, inputs):
            outputs = []
            state = lib.ops.zeros(shape=(inputs.shape[0], self.units))
            for t in range(inputs.shape[1]):
                x = inputs[:, t, :]
                h = self.projection_1(x)
                y = h + self.projection_2(state)
                state = y
                outputs.append(y)
            features = lib.ops.stack(outputs, axis=1)
            return self.classifier(features)
    return CustomRNN


def rnn_in_a_functional_model(lib, batch_size=16, timesteps=10, input_dim=5):
    inputs = lib.Input(batch_shape=(batch_size, timesteps, input_dim))
    x = lib.layers.Conv1D(32, 3)(inputs)
    outputs = custom_rnn_class(lib)()(x)
    return lib.Model(inputs, outputs)
