"""Layers and a model with weights of their own (``add_weight``), as Keras's guide "Making new layers and models via
subclassing" writes them, each class written once as a function of the library module (gpu_dl or keras), so that
the tests and the Keras-oracle tests build the same classes in both libraries."""


def linear(lib):
    ops = lib.ops

    class Linear(lib.layers.Layer):
        """The guide's first example: weights made in build() from the input's last size."""

        def __init__(self, units=32, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal",
                                     trainable=True)
            self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True)

        def call(self, inputs):
            return ops.matmul(inputs, self.w) + self.b

    return Linear


def linear_made_in_init(lib):
    ops = lib.ops

    class LinearMadeInInit(lib.layers.Layer):
        """The guide's variant that knows its input size: weights made in __init__."""

        def __init__(self, units=32, input_dim=32, **kwargs):
            super().__init__(**kwargs)
            self.w = self.add_weight(shape=(input_dim, units), initializer="random_normal", trainable=True)
            self.b = self.add_weight(shape=(units,), initializer="zeros", trainable=True)

        def call(self, inputs):
            return ops.matmul(inputs, self.w) + self.b

    return LinearMadeInInit


def mlp_block(lib):
    ops = lib.ops
    Linear = linear(lib)

    class MLPBlock(lib.layers.Layer):
        """Linear, relu, Linear: composite layers of own-weight layers."""

        def __init__(self, hidden=8, units=3, **kwargs):
            super().__init__(**kwargs)
            self.linear_1 = Linear(hidden, dtype=self.dtype)
            self.linear_2 = Linear(units, dtype=self.dtype)

        def call(self, inputs):
            return self.linear_2(ops.relu(self.linear_1(inputs)))

    return MLPBlock


def compute_sum(lib):
    ops = lib.ops

    class ComputeSum(lib.layers.Layer):
        """The guide's non-trainable weight: the running sum of its inputs over the batch axis."""

        def __init__(self, input_dim, **kwargs):
            super().__init__(**kwargs)
            self.total = self.add_weight(initializer="zeros", shape=(input_dim,), trainable=False)

        def call(self, inputs):
            self.total.assign_add(ops.sum(inputs, axis=0))
            return self.total

    return ComputeSum


def mixed(lib):
    ops = lib.ops
    Linear = linear(lib)

    class Mixed(lib.layers.Layer):
        """Own weights (a non-trainable one made first) beside sublayers; a counter no output depends on."""

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.dense = lib.layers.Dense(units, dtype=self.dtype)
            self.inner = Linear(units, dtype=self.dtype)

        def build(self, input_shape):
            self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False, name="calls")
            self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

        def call(self, x):
            self.calls.assign_add(1.0)
            return self.inner(ops.tanh(self.dense(x * self.scale)))

    return Mixed


def scaled_classifier(lib):
    ops = lib.ops
    MLPBlock = mlp_block(lib)

    class ScaledClassifier(lib.Model):
        """A subclassed model with a weight of its own beside a block of own-weight layers."""

        def __init__(self, hidden=8, classes=3, **kwargs):
            super().__init__(**kwargs)
            self.block = MLPBlock(hidden, classes)

        def build(self, input_shape):
            self.temperature = self.add_weight(shape=(), initializer="ones", name="temperature")

        def call(self, x):
            return ops.softmax(self.block(x) / self.temperature)

    return ScaledClassifier
