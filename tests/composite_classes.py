"""Composite layers and a subclassed model, each class written once as a function of the library module (gpu_dl
or keras), so that the tests and the Keras-oracle tests build the same classes in both libraries."""


def residual(lib):
    L = lib.layers

    class Residual(L.Layer):
        """LayerNormalization(x + Dense(Dense(x))): Keras allows a call that does not name `training`."""

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.d1 = L.Dense(units, activation="tanh", dtype=self.dtype)
            self.d2 = L.Dense(units, dtype=self.dtype)
            self.norm = L.LayerNormalization(dtype=self.dtype)

        def call(self, x):
            return self.norm(x + self.d2(self.d1(x)))

    return Residual


def shared(lib):
    L = lib.layers

    class Shared(L.Layer):
        """One Dense called twice, and the operators between the calls."""

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.dense = L.Dense(units, activation="tanh", dtype=self.dtype)

        def call(self, x, training=None):
            h = self.dense(x)
            return 0.5 * self.dense(h) - h * h

    return Shared


def stack(lib):
    L = lib.layers
    Residual = residual(lib)

    class Stack(L.Layer):
        """A list of sublayers (composite ones among them) and a dict of them, applied in turn."""

        def __init__(self, units, depth=2, **kwargs):
            super().__init__(**kwargs)
            self.inp = L.Dense(units, dtype=self.dtype)
            self.blocks = [Residual(units, dtype=self.dtype) for _ in range(depth)]
            self.heads = {"out": L.Dense(2, dtype=self.dtype)}

        def call(self, x, training=None):
            x = self.inp(x)
            for block in self.blocks:
                x = block(x)
            return self.heads["out"](x)

    return Stack


def branching(lib):
    L = lib.layers

    class Branching(L.Layer):
        """A body that branches on `training` in Python: Dropout only when training."""

        def __init__(self, units, rate=0.5, seed=3, **kwargs):
            super().__init__(**kwargs)
            self.dense = L.Dense(units, activation="tanh", dtype=self.dtype)
            self.drop = L.Dropout(rate, seed=seed, dtype=self.dtype)
            self.out = L.Dense(units, dtype=self.dtype)

        def call(self, x, training=None):
            h = self.dense(x)
            if training:
                h = self.drop(h, training=training)
            return self.out(h) + x

    return Branching


def classifier(lib):
    """A subclassed model: a composite block, a branch on training, and a softmax head."""
    L = lib.layers
    Residual = residual(lib)

    class Classifier(lib.Model):
        def __init__(self, units=6, classes=3, **kwargs):
            super().__init__(**kwargs)
            self.stem = L.Dense(units, activation="relu")
            self.block = Residual(units)
            self.drop = L.Dropout(0.25)
            self.head = L.Dense(classes, activation="softmax")

        def call(self, inputs, training=None):
            h = self.block(self.stem(inputs))
            if training:
                h = self.drop(h, training=training)
            return self.head(h)

    return Classifier
