"""Models whose steps leave weights without a gradient, and models whose layers read one variable, written once for
both libraries (``lib`` is ``gpu_dl`` or ``keras``): tests/test_step_gradients.py and
tests/test_keras_oracle_step_gradients.py."""


def branchy(lib):
    """A subclassed model whose call takes its `extra` layer only for sequences longer than 4 steps."""
    layers = lib.layers

    class Branchy(lib.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.first = layers.Dense(3, activation="tanh", name="first")
            self.extra = layers.Dense(3, activation="tanh", name="extra")
            self.last = layers.Dense(2, name="last")

        def call(self, x):
            h = self.first(x)
            if x.shape[1] > 4:
                h = self.extra(h)
            return self.last(h)

    return Branchy


def shared_kernel_dense(lib):
    """A Dense whose build takes the kernel of another Dense, ``source``, instead of its own (its own stays among its
    weights, unused, as Keras keeps it)."""

    class SharedKernelDense(lib.layers.Dense):
        def __init__(self, source, units, **kwargs):
            super().__init__(units, **kwargs)
            self.source = source

        def build(self, input_shape):
            super().build(input_shape)
            # Keras's Dense reads its kernel through a property over `_kernel`; gpu_dl's holds it as `kernel`.
            own = "_kernel" if isinstance(getattr(type(self), "kernel", None), property) else "kernel"
            setattr(self, own, self.source.kernel)

    return SharedKernelDense


def tied_output(lib):
    """The output projection of a language model, tied to an Embedding's table through ops."""

    class TiedOutput(lib.layers.Layer):
        def __init__(self, embedding, **kwargs):
            super().__init__(**kwargs)
            self.embedding = embedding

        def call(self, h):
            return lib.ops.matmul(h, lib.ops.transpose(self.embedding.embeddings))

    return TiedOutput


def tied_language_model(lib):
    """A composite layer that looks ids up in an Embedding and projects back onto the same table."""
    layers, ops = lib.layers, lib.ops

    class TiedLanguageModel(layers.Layer):
        def __init__(self, vocabulary, width, **kwargs):
            super().__init__(**kwargs)
            self.embedding = layers.Embedding(vocabulary, width)
            self.hidden = layers.Dense(width, activation="tanh")

        def call(self, ids):
            return ops.matmul(self.hidden(self.embedding(ids)), ops.transpose(self.embedding.embeddings))

    return TiedLanguageModel


def subclassed_tied(lib):
    """A subclassed model of an Embedding, a Dense and a TiedOutput of the Embedding."""
    layers, TiedOutput = lib.layers, tied_output(lib)

    class SubclassedTied(lib.Model):
        def __init__(self, vocabulary, width, **kwargs):
            super().__init__(**kwargs)
            self.embedding = layers.Embedding(vocabulary, width)
            self.hidden = layers.Dense(width, activation="tanh")
            self.out = TiedOutput(self.embedding)

        def call(self, ids):
            return self.out(self.hidden(self.embedding(ids)))

    return SubclassedTied


VOCABULARY, WIDTH, STEPS = 7, 4, 5


def sharing_models(lib):
    """``{name: (make, takes ids)}``: models in which two calls read one variable, in each form Keras takes."""
    layers = lib.layers
    SharedKernelDense, TiedOutput = shared_kernel_dense(lib), tied_output(lib)
    TiedLanguageModel, SubclassedTied = tied_language_model(lib), subclassed_tied(lib)

    def repeated():
        block = layers.Dense(WIDTH, activation="tanh", name="block")
        return lib.Sequential([lib.Input((WIDTH,)), block, layers.Dense(WIDTH, name="mid"), block])

    def kernel_taken():
        first = layers.Dense(WIDTH, activation="tanh", name="first")
        return lib.Sequential([lib.Input((WIDTH,)), first, SharedKernelDense(first, WIDTH, name="second")])

    def tied_in_sequential():
        embedding = layers.Embedding(VOCABULARY, WIDTH, name="embedding")
        return lib.Sequential([lib.Input((STEPS,), dtype="int32"), embedding,
                               layers.Dense(WIDTH, activation="tanh", name="hidden"), TiedOutput(embedding)])

    def tied_in_composite():
        return lib.Sequential([lib.Input((STEPS,), dtype="int32"), TiedLanguageModel(VOCABULARY, WIDTH)])

    def tied_subclassed():
        model = SubclassedTied(VOCABULARY, WIDTH)
        model(lib.ops.zeros((2, STEPS), dtype="int32"))      # built by a first call, as in Keras
        return model

    return {"repeated": (repeated, False), "kernel_taken": (kernel_taken, False),
            "tied_in_sequential": (tied_in_sequential, True), "tied_in_composite": (tied_in_composite, True),
            "tied_subclassed": (tied_subclassed, True)}
