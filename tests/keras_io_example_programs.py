"""Three keras.io code examples, written once for both libraries (``lib`` is ``gpu_dl`` or ``keras``), at a scale
that runs in seconds on a CPU: "Image classification from scratch" on a generated folder of PNG and JPEG files,
"Timeseries classification from scratch" on generated series written as FordA's TSV files, and "Character-level
text generation with LSTM" on a generated text. Where an example takes sizes (image size, widths, epochs, text
length), they are arguments whose defaults are the example's."""
import numpy


# ------------------------------------------------------------------ Image classification from scratch
def write_image_folder(root, per_class=10, size=(28, 28), seed=0):
    """A ``root/Cat`` and ``root/Dog`` folder of ``per_class`` noisy images each (PNG and JPEG alternating): cats
    reddish, dogs bluish, so that flips and small rotations keep the class. Returns ``root``."""
    from PIL import Image
    rng = numpy.random.default_rng(seed)
    for label, name in enumerate(("Cat", "Dog")):
        folder = root / name
        folder.mkdir(parents=True)
        tint = numpy.array([150.0, 90.0, 60.0]) if label == 0 else numpy.array([60.0, 90.0, 150.0])
        for i in range(per_class):
            pixels = numpy.clip(tint + rng.normal(0.0, 25.0, size + (3,)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def image_datasets(lib, directory, image_size=(180, 180), batch_size=128):
    """The example's training and validation data sets: a 20% split of the folder under seed 1337."""
    return lib.utils.image_dataset_from_directory(directory, validation_split=0.2, subset="both", seed=1337,
                                                  image_size=image_size, batch_size=batch_size)


def data_augmentation_layers(lib):
    layers = lib.layers
    return [layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)]


def data_augmentation(images, augmentation_layers):
    for layer in augmentation_layers:
        images = layer(images)
    return images


def augment_and_prefetch(train_ds, val_ds, augmentation_layers):
    """The example's second option: augmentation applied to the training batches as they are read (a
    ``tf.data`` pipeline in Keras, so gpu_dl only here), both data sets prefetched."""
    train_ds = train_ds.map(lambda img, label: (data_augmentation(img, augmentation_layers), label),
                            num_parallel_calls=-1)
    return train_ds.prefetch(-1), val_ds.prefetch(-1)


def first_images(train_ds, count=9):
    """The images and labels the example shows: the first ``count`` of the first batch."""
    for images, labels in train_ds.take(1):
        return images[:count], labels[:count]


def make_image_model(lib, input_shape, num_classes, entry=128, sizes=(256, 512, 728), last=1024, dropout=0.25,
                     augmentation=True):
    """The example's small Xception-like network; the augmentation layers at its start (the example's first
    option: on the device, active in training only) unless ``augmentation`` is false."""
    layers = lib.layers
    inputs = lib.Input(shape=input_shape)
    x = data_augmentation(inputs, data_augmentation_layers(lib)) if augmentation else inputs

    # Entry block
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Conv2D(entry, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)

    previous_block_activation = x  # Set aside residual

    for size in sizes:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)

        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)

        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)

        # Project residual
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous_block_activation)
        x = layers.add([x, residual])  # Add back residual
        previous_block_activation = x  # Set aside next residual

    x = layers.SeparableConv2D(last, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)

    x = layers.GlobalAveragePooling2D()(x)
    units = 1 if num_classes == 2 else num_classes

    x = layers.Dropout(dropout)(x)
    # We specify activation=None so as to return logits
    outputs = layers.Dense(units, activation=None)(x)
    return lib.Model(inputs, outputs)


def compile_image_model(lib, model, learning_rate=3e-4):
    model.compile(optimizer=lib.optimizers.Adam(learning_rate), loss=lib.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[lib.metrics.BinaryAccuracy(name="acc")])
    return model


def image_callbacks(lib, folder):
    return [lib.callbacks.ModelCheckpoint(str(folder / "save_at_{epoch}.keras"))]


def dog_score(lib, model, path, image_size=(180, 180)):
    """The example's inference on one file: the model's sigmoid score that the image is a dog."""
    img = lib.utils.load_img(path, target_size=image_size)
    img_array = lib.utils.img_to_array(img)
    img_array = lib.ops.expand_dims(img_array, 0)  # Create batch axis

    predictions = model.predict(img_array, verbose=0)
    return float(lib.ops.sigmoid(predictions[0][0]))


# ------------------------------------------------------------------ Timeseries classification from scratch
def write_ucr_files(folder, train=60, test=30, length=32, seed=0):
    """FordA-like TSV files (label -1 or 1 in the first column, then a z-normalized series): class 1 oscillates
    three times as fast as class -1, with random phase and noise. Returns (train path, test path)."""
    rng = numpy.random.default_rng(seed)
    paths = []
    for name, count in (("TRAIN", train), ("TEST", test)):
        labels = numpy.where(numpy.arange(count) % 2 == 0, -1, 1)
        t = numpy.linspace(0.0, 2 * numpy.pi, length)
        frequency = numpy.where(labels == 1, 3.0, 1.0)[:, None]
        series = numpy.sin(frequency * t + rng.uniform(0, 2 * numpy.pi, (count, 1)))
        series = series + rng.normal(0.0, 0.3, series.shape)
        series = (series - series.mean(axis=1, keepdims=True)) / series.std(axis=1, keepdims=True)
        path = folder / f"FordA_{name}.tsv"
        numpy.savetxt(path, numpy.concatenate([labels[:, None], series], axis=1), delimiter="\t")
        paths.append(path)
    return tuple(paths)


def readucr(filename):
    data = numpy.loadtxt(filename, delimiter="\t")
    y = data[:, 0]
    x = data[:, 1:]
    return x, y.astype(int)


def prepare_series(train_path, test_path, seed=0):
    """The example's preparation: one channel, the training set shuffled (by a seeded generator where the
    example uses NumPy's global one), labels -1 as 0. Returns (x_train, y_train, x_test, y_test, num_classes)."""
    x_train, y_train = readucr(train_path)
    x_test, y_test = readucr(test_path)
    x_train = x_train.reshape((x_train.shape[0], x_train.shape[1], 1))
    x_test = x_test.reshape((x_test.shape[0], x_test.shape[1], 1))
    num_classes = len(numpy.unique(y_train))
    idx = numpy.random.default_rng(seed).permutation(len(x_train))
    x_train = x_train[idx]
    y_train = y_train[idx]
    y_train[y_train == -1] = 0
    y_test[y_test == -1] = 0
    return x_train, y_train, x_test, y_test, num_classes


def make_series_model(lib, input_shape, num_classes, filters=64):
    """The example's fully convolutional network: three Conv1D + BatchNormalization + ReLU blocks."""
    keras_layers = lib.layers
    input_layer = keras_layers.Input(input_shape)

    conv1 = keras_layers.Conv1D(filters=filters, kernel_size=3, padding="same")(input_layer)
    conv1 = keras_layers.BatchNormalization()(conv1)
    conv1 = keras_layers.ReLU()(conv1)

    conv2 = keras_layers.Conv1D(filters=filters, kernel_size=3, padding="same")(conv1)
    conv2 = keras_layers.BatchNormalization()(conv2)
    conv2 = keras_layers.ReLU()(conv2)

    conv3 = keras_layers.Conv1D(filters=filters, kernel_size=3, padding="same")(conv2)
    conv3 = keras_layers.BatchNormalization()(conv3)
    conv3 = keras_layers.ReLU()(conv3)

    gap = keras_layers.GlobalAveragePooling1D()(conv3)

    output_layer = keras_layers.Dense(num_classes, activation="softmax")(gap)

    return lib.models.Model(inputs=input_layer, outputs=output_layer)


def series_callbacks(lib, path, lr_patience=20, stop_patience=50, min_lr=0.0001):
    return [
        lib.callbacks.ModelCheckpoint(str(path), save_best_only=True, monitor="val_loss"),
        lib.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=lr_patience, min_lr=min_lr),
        lib.callbacks.EarlyStopping(monitor="val_loss", patience=stop_patience, verbose=0),
    ]


def train_series_model(lib, model, x_train, y_train, path, epochs=500, batch_size=32, shuffle=True, **patience):
    """Compile and fit as the example does (validation on the last 20%); returns the History."""
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    return model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
                     callbacks=series_callbacks(lib, path, **patience), validation_split=0.2, verbose=0,
                     shuffle=shuffle)


def evaluate_best_series_model(lib, path, x_test, y_test):
    """Load the checkpoint the example keeps and evaluate it: (the model, [test loss, test accuracy])."""
    model = lib.models.load_model(str(path))
    return model, model.evaluate(x_test, y_test, verbose=0)


# ------------------------------------------------------------------ Character-level text generation with LSTM
def generated_text(length=3000, seed=0):
    """A lower-case text of a few words in random order: which character follows which is learnable."""
    words = ("the ", "cat ", "sat ", "on ", "mat. ", "a ", "dog ", "ran ")
    picks = numpy.random.default_rng(seed).integers(0, len(words), length // 3)
    return "".join(words[i] for i in picks)[:length]


def vectorize_text(text, maxlen=40, step=3):
    """The example's one-hot windows: (x bool (N, maxlen, chars), y bool (N, chars), chars, char_indices)."""
    chars = sorted(list(set(text)))
    char_indices = dict((c, i) for i, c in enumerate(chars))
    sentences = [text[i: i + maxlen] for i in range(0, len(text) - maxlen, step)]
    next_chars = [text[i + maxlen] for i in range(0, len(text) - maxlen, step)]
    # One-hot encoding by fancy indexing, where the example loops over the characters.
    codes = numpy.array([[char_indices[c] for c in sentence] for sentence in sentences]).reshape(-1, maxlen)
    x = numpy.zeros((len(sentences), maxlen, len(chars)), dtype="bool")
    y = numpy.zeros((len(sentences), len(chars)), dtype="bool")
    x[numpy.arange(len(sentences))[:, None], numpy.arange(maxlen), codes] = True
    y[numpy.arange(len(sentences)), [char_indices[c] for c in next_chars]] = True
    return x, y, chars, char_indices


def make_text_model(lib, maxlen, num_chars, units=128, learning_rate=0.01):
    layers = lib.layers
    model = lib.Sequential([lib.Input(shape=(maxlen, num_chars)), layers.LSTM(units),
                            layers.Dense(num_chars, activation="softmax")])
    optimizer = lib.optimizers.RMSprop(learning_rate=learning_rate)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer)
    return model


def sample(preds, temperature=1.0, rng=numpy.random):
    # helper function to sample an index from a probability array
    preds = numpy.asarray(preds).astype("float64")
    preds = numpy.log(preds) / temperature
    exp_preds = numpy.exp(preds)
    preds = exp_preds / numpy.sum(exp_preds)
    probas = rng.multinomial(1, preds, 1)
    return numpy.argmax(probas)


def generate(model, sentence, chars, char_indices, length=20, diversity=1.0, rng=numpy.random):
    """The example's generation loop: ``length`` characters after ``sentence``, each sampled at temperature
    ``diversity`` from the model's prediction on the last ``maxlen`` characters."""
    maxlen = len(sentence)
    generated = ""
    for _ in range(length):
        x_pred = numpy.zeros((1, maxlen, len(chars)))
        x_pred[0, numpy.arange(maxlen), [char_indices[char] for char in sentence]] = 1.0
        preds = model.predict(x_pred, verbose=0)[0]
        next_char = chars[sample(preds, diversity, rng)]
        sentence = sentence[1:] + next_char
        generated += next_char
    return generated
