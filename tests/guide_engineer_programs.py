"""The programs of Keras 3's guide "Introduction to Keras for engineers", written once for both libraries: ``lib`` is
``gpu_dl`` or ``keras``. MNIST is random arrays of its shapes here, fewer of them."""
import numpy


def digits(seed=0, train=48, test=16):
    """((x_train, y_train), (x_test, y_test)): images (n, 28, 28, 1) in [0, 1), labels 0..9 as uint8."""
    rng = numpy.random.default_rng(seed)

    def split(n):
        return rng.random((n, 28, 28, 1)).astype("float32"), rng.integers(0, 10, n).astype("uint8")
    return split(train), split(test)


def convnet(lib, num_classes=10, input_shape=(28, 28, 1)):
    return lib.Sequential([
        lib.layers.Input(shape=input_shape),
        lib.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        lib.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        lib.layers.MaxPooling2D(pool_size=(2, 2)),
        lib.layers.Conv2D(128, kernel_size=(3, 3), activation="relu"),
        lib.layers.Conv2D(128, kernel_size=(3, 3), activation="relu"),
        lib.layers.GlobalAveragePooling2D(),
        lib.layers.Dropout(0.5),
        lib.layers.Dense(num_classes, activation="softmax"),
    ])


def compile_model(lib, model):
    model.compile(loss=lib.losses.SparseCategoricalCrossentropy(),
                  optimizer=lib.optimizers.Adam(learning_rate=1e-3),
                  metrics=[lib.metrics.SparseCategoricalAccuracy(name="acc")])
    return model


def custom_classes(lib):
    """(MyDense, MyDropout, MyModel) as the guide writes them."""
    class MyDense(lib.layers.Layer):
        def __init__(self, units, activation=None, name=None):
            super().__init__(name=name)
            self.units = units
            self.activation = lib.activations.get(activation)

        def build(self, input_shape):
            input_dim = input_shape[-1]
            self.w = self.add_weight(shape=(input_dim, self.units), initializer=lib.initializers.GlorotNormal(),
                                     name="kernel", trainable=True)
            self.b = self.add_weight(shape=(self.units,), initializer=lib.initializers.Zeros(), name="bias",
                                     trainable=True)

        def call(self, inputs):
            x = lib.ops.matmul(inputs, self.w) + self.b
            return self.activation(x)

    class MyDropout(lib.layers.Layer):
        def __init__(self, rate, name=None):
            super().__init__(name=name)
            self.rate = rate
            self.seed_generator = lib.random.SeedGenerator(1337)

        def call(self, inputs):
            return lib.random.dropout(inputs, self.rate, seed=self.seed_generator)

    class MyModel(lib.Model):
        def __init__(self, num_classes):
            super().__init__()
            self.conv_base = lib.Sequential([
                lib.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
                lib.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
                lib.layers.MaxPooling2D(pool_size=(2, 2)),
                lib.layers.Conv2D(128, kernel_size=(3, 3), activation="relu"),
                lib.layers.Conv2D(128, kernel_size=(3, 3), activation="relu"),
                lib.layers.GlobalAveragePooling2D(),
            ])
            self.dp = MyDropout(0.5)
            self.dense = MyDense(num_classes, activation="softmax")

        def call(self, x):
            x = self.conv_base(x)
            x = self.dp(x)
            return self.dense(x)

    return MyDense, MyDropout, MyModel
