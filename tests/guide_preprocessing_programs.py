"""The programs of Keras's guide "Working with preprocessing layers", written once for both libraries: ``lib`` is
``gpu_dl`` or ``keras``. The guide's ``tf.constant`` inputs are NumPy arrays here, its ``tf.data`` pipelines are
the layers applied to arrays before ``fit`` (preprocessing in the data pipeline rather than in the model), CIFAR-10
is random images of its shape, and the image recipe's ResNet50 also comes as a small convolutional network."""
import numpy

NUMBERS = numpy.array([[0.1, 0.2, 0.3], [0.8, 0.9, 1.0], [1.5, 1.6, 1.7]])

GREEK = [
    "ξεῖν᾽, ἦ τοι μὲν ὄνειροι ἀμήχανοι ἀκριτόμυθοι",
    "γίγνοντ᾽, οὐδέ τι πάντα τελείεται ἀνθρώποισι.",
    "δοιαὶ γάρ τε πύλαι ἀμενηνῶν εἰσὶν ὀνείρων:",
    "αἱ μὲν γὰρ κεράεσσι τετεύχαται, αἱ δ᾽ ἐλέφαντι:",
    "τῶν οἳ μέν κ᾽ ἔλθωσι διὰ πριστοῦ ἐλέφαντος,",
    "οἵ ῥ᾽ ἐλεφαίρονται, ἔπε᾽ ἀκράαντα φέροντες:",
    "οἱ δὲ διὰ ξεστῶν κεράων ἔλθωσι θύραζε,",
    "οἵ ῥ᾽ ἔτυμα κραίνουσι, βροτῶν ὅτε κέν τις ἴδηται.",
]

POEM = numpy.array(["The Brain is wider than the Sky", "For put them side by side", "The one the other will contain",
                    "With ease and You beside"])
TRAIN_TEXT = numpy.array(["The Brain is deeper than the sea", "for if they are held Blue to Blue"])
TRAIN_LABELS = numpy.array([1, 0])
TEST_TEXT = numpy.array(["The one the other will absorb"])


def adapted_normalization(lib, data=NUMBERS):
    layer = lib.layers.Normalization()
    layer.adapt(data)
    return layer


def adapted_text_vectorization(lib, data=GREEK, **kwargs):
    layer = lib.layers.TextVectorization(**kwargs)
    layer.adapt(data)
    return layer


def string_lookup_with_vocabulary(lib):
    """(layer, its output on the guide's data with an unknown "z")."""
    layer = lib.layers.StringLookup(vocabulary=["a", "b", "c", "d"])
    return layer, layer(numpy.array([["a", "c", "d"], ["d", "z", "b"]]))


def one_hot_string_lookup(lib):
    lookup = lib.layers.StringLookup(output_mode="one_hot")
    lookup.adapt(numpy.array([["a"], ["b"], ["c"], ["b"], ["c"], ["a"]]))
    return lookup, lookup(numpy.array([["a"], ["b"], ["c"], ["d"], ["e"], [""]]))


def one_hot_integer_lookup(lib):
    lookup = lib.layers.IntegerLookup(output_mode="one_hot")
    lookup.adapt(numpy.array([[10], [20], [20], [10], [30], [0]]))
    return lookup, lookup(numpy.array([[10], [10], [20], [50], [60], [0]]))


def hashed_multi_hot(lib, data):
    """The hashing trick: Hashing(64 bins, salt 1337) then a multi-hot CategoryEncoding."""
    hasher = lib.layers.Hashing(num_bins=64, salt=1337)
    encoder = lib.layers.CategoryEncoding(num_tokens=64, output_mode="multi_hot")
    return encoder(hasher(data))


def data_augmentation(lib):
    layers = lib.layers
    return lib.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1), layers.RandomZoom(0.1)])


def image_model(lib, input_shape, classes, augmentation=False):
    """Rescaling(1/255) in the model, then (for the guide's ResNet50) a small convolutional network; with
    ``augmentation``, the augmentation stage first, inside the model (the guide's option 1)."""
    layers = lib.layers
    inputs = lib.Input(shape=input_shape)
    x = data_augmentation(lib)(inputs) if augmentation else inputs
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Conv2D(8, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    model = lib.Model(inputs, outputs)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    return model


def resnet_image_model(lib, input_shape, classes):
    """The guide's image recipe: Rescaling(1/255) in the model, then ResNet50 without weights."""
    inputs = lib.Input(shape=input_shape)
    x = lib.layers.Rescaling(1.0 / 255)(inputs)
    outputs = lib.applications.ResNet50(weights=None, input_shape=input_shape, classes=classes)(x)
    model = lib.Model(inputs, outputs)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    return model


def preprocessed_batches(lib, preprocessing_layer, x, y, batch_size, **kwargs):
    """The guide's ``dataset.batch(n).map(lambda x, y: (preprocessing_layer(x), y))`` as a ``PyDataset``: the
    preprocessing runs in the data pipeline, batch by batch."""
    class PreprocessedBatches(lib.utils.PyDataset):
        def __len__(self):
            return -(-len(x) // batch_size)

        def __getitem__(self, index):
            part = slice(index * batch_size, (index + 1) * batch_size)
            return lib.ops.convert_to_numpy(preprocessing_layer(x[part], **kwargs)), y[part]

    return PreprocessedBatches()


def normalized_classifier(lib, x_train, classes=10):
    """A Normalization adapted on the flattened training images, inside the model before Dense(classes)."""
    normalizer = lib.layers.Normalization()
    normalizer.adapt(x_train)
    inputs = lib.Input(shape=x_train.shape[1:])
    x = normalizer(inputs)
    outputs = lib.layers.Dense(classes, activation="softmax")(x)
    model = lib.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def sequence_model(lib, vocabulary_size):
    """The text recipe's model on token ids: Embedding, GRU(8), Dense(1)."""
    layers = lib.layers
    inputs = lib.Input(shape=(None,), dtype="int64")
    x = layers.Embedding(input_dim=vocabulary_size, output_dim=16)(inputs)
    x = layers.GRU(8)(x)
    outputs = layers.Dense(1)(x)
    model = lib.Model(inputs, outputs)
    model.compile(optimizer="rmsprop", loss="mse")
    return model


def dense_model(lib, vocabulary_size):
    """The n-gram recipes' model on a multi-hot or TF-IDF vector: Dense(1)."""
    inputs = lib.Input(shape=(vocabulary_size,))
    model = lib.Model(inputs, lib.layers.Dense(1)(inputs))
    model.compile(optimizer="rmsprop", loss="mse")
    return model


def end_to_end(lib, text_vectorizer, model):
    """For inference: a model taking strings, the vectorizer then the trained model."""
    inputs = lib.Input(shape=(1,), dtype="string")
    return lib.Model(inputs, model(text_vectorizer(inputs)))
