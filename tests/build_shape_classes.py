"""Layers whose call takes several tensors, with builds of each form Keras 3 maps call arguments onto, written once
for both libraries (``lib`` is ``gpu_dl`` or ``keras``): tests/test_build_shapes.py and
tests/test_keras_oracle_build_shapes.py. Each build keeps the shapes it was given in ``seen``."""


def query_value(lib):
    """``build(self, query_shape, value_shape)`` for ``call(self, query, value)``."""
    ops = lib.ops

    class QueryValue(lib.layers.Layer):
        def build(self, query_shape, value_shape):
            self.seen = {"query_shape": tuple(query_shape), "value_shape": tuple(value_shape)}
            self.query_kernel = self.add_weight(shape=(query_shape[-1], 3), name="query_kernel")
            self.value_kernel = self.add_weight(shape=(value_shape[-1], 3), name="value_kernel")

        def call(self, query, value):
            summary = ops.mean(ops.matmul(value, self.value_kernel), axis=1, keepdims=True)
            return ops.matmul(query, self.query_kernel) + summary

    return QueryValue


def optional_key(lib):
    """``build(self, query_shape, value_shape, key_shape=None)`` for ``call(self, query, value, key=None)``."""
    ops = lib.ops

    class OptionalKey(lib.layers.Layer):
        def build(self, query_shape, value_shape, key_shape=None):
            self.seen = {"query_shape": tuple(query_shape), "value_shape": tuple(value_shape),
                         "key_shape": None if key_shape is None else tuple(key_shape)}
            self.kernel = self.add_weight(shape=((key_shape or value_shape)[-1], query_shape[-1]), name="kernel")

        def call(self, query, value, key=None):
            keys = value if key is None else key
            return query + ops.matmul(ops.mean(keys, axis=1, keepdims=True), self.kernel)

    return OptionalKey


def first_shape_only(lib):
    """``build(self, input_shape)`` for ``call(self, targets, logits)``: Keras gives the targets' shape."""
    ops = lib.ops

    class FirstShapeOnly(lib.layers.Layer):
        def build(self, input_shape):
            self.seen = {"input_shape": tuple(input_shape)}
            self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

        def call(self, targets, logits):
            return ops.square(logits - targets) * self.scale

    return FirstShapeOnly


def holding_query_value(lib):
    """A composite layer whose call projects its input and calls a QueryValue on it and the projection."""
    QueryValue = query_value(lib)

    class HoldingQueryValue(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.project = lib.layers.Dense(7, name="project")
            self.inner = QueryValue(name="inner")

        def call(self, x):
            return self.inner(x, self.project(x))

    return HoldingQueryValue


def two_input_model(lib):
    """A functional model of a QueryValue on two inputs."""
    query, value = lib.Input((4, 5), name="query"), lib.Input((6, 7), name="value")
    return lib.Model([query, value], query_value(lib)(name="query_value")(query, value))


def bad_builds(lib):
    """Builds of several arguments that do not name the call's: ``{"not_shapes": a build of `a, b`, "unknown": one
    of `a_shape, c_shape`, "missing": one of `a_shape, b_shape` for a call whose `b` defaults to None}``."""
    Layer = lib.layers.Layer

    class NotShapes(Layer):
        def build(self, a, b):
            pass

        def call(self, a, b):
            return a

    class Unknown(Layer):
        def build(self, a_shape, c_shape):
            pass

        def call(self, a, b):
            return a

    class Missing(Layer):
        def build(self, a_shape, b_shape):
            pass

        def call(self, a, b=None):
            return a

    return {"not_shapes": NotShapes, "unknown": Unknown, "missing": Missing}
