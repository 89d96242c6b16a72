"""Keras 3's Layer attributes beyond the weights: ``trainable_variables``, ``non_trainable_variables``,
``metrics_variables``, ``add_variable``, ``path``, ``compute_output_spec``, ``call_signature_parameters``,
``supports_jit`` and ``Variable.synchronization``: plain expectations, then Keras 3 (torch backend) as the oracle
on the same layers."""
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import layers


@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _paths(variables):
    return [v.path for v in variables]


def _unnumbered(path):
    """``path`` without the counters of automatic names, which each library counts on its own."""
    return None if path is None else "/".join(part.rstrip("_0123456789") for part in path.split("/"))


def _nested(lib):
    """A layer holding a BatchNormalization, a RandomFlip (a SeedGenerator's state) and a weight of its own."""
    class Nested(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.norm = lib.layers.BatchNormalization(name="norm")
            self.flip = lib.layers.RandomFlip(seed=3, name="flip")

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")
            self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="count")

        def call(self, x, training=False):
            return self.norm(self.flip(x, training=training), training=training) * self.scale

    return Nested(name="nested")


def _tracking(lib):
    class Running(lib.metrics.Metric):
        def __init__(self, name="running"):
            super().__init__(name=name)
            self.total = self.add_variable((), "zeros", name="total")
            self.count = self.add_variable((), "zeros", name="count")

        def update_state(self, values):
            self.total.assign_add(lib.ops.sum(values))
            self.count.assign_add(lib.ops.cast(lib.ops.size(values), "float32"))

        def result(self):
            return self.total / self.count

    class Tracking(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.mean = Running()
            self.dense = lib.layers.Dense(2, name="inner")

        def call(self, x):
            self.mean.update_state(x)
            return self.dense(x)

    return Tracking(name="tracking")


# ---------------------------------------------------------------- plain expectations

def test_trainable_and_non_trainable_variables_split_variables():
    layer = _nested(gpu_dl)
    layer(numpy.ones((2, 4, 4, 3), dtype="float32"))
    trainable = _paths(layer.trainable_variables)
    non_trainable = _paths(layer.non_trainable_variables)
    assert trainable == ["nested/scale", "nested/norm/gamma", "nested/norm/beta"]
    assert non_trainable[:3] == ["nested/count", "nested/norm/moving_mean", "nested/norm/moving_variance"]
    assert non_trainable[-1].endswith("seed_generator_state")       # not a weight: variables only
    assert len(trainable) + len(non_trainable) == len(layer.variables) == len(layer.weights) + 1
    assert _paths(layer.trainable_variables) == _paths(layer.trainable_weights)
    layer.trainable = False
    assert layer.trainable_variables == []
    assert _paths(layer.non_trainable_variables) == _paths(layer.variables)


def test_metrics_variables_are_the_metrics_states():
    layer = _tracking(gpu_dl)
    x = numpy.arange(6, dtype="float32").reshape(3, 2)
    layer(x)
    values = {v.path: float(v.numpy()) for v in layer.metrics_variables}
    assert values == {"running/total": pytest.approx(x.sum()), "running/count": pytest.approx(x.size)}
    assert layers.Dense(2).metrics_variables == []


def test_add_variable_takes_shape_then_initializer():
    layer = layers.Layer(name="holder")
    v = layer.add_variable((2, 3), "ones", "float64", False, name="w")
    numpy.testing.assert_array_equal(v.numpy(), numpy.ones((2, 3)))
    assert (v.dtype, v.trainable, v.path) == (numpy.float64, False, "holder/w")
    assert layer.non_trainable_weights == [v]
    with pytest.raises(TypeError):
        layer.add_variable((2,))        # the initializer is required, as in Keras
    with pytest.raises(ValueError, match="add_weight"):
        layer.add_variable((2,), "no_such_initializer")


def test_path_is_recorded_at_build():
    dense = layers.Dense(2, name="d")
    assert dense.path is None
    dense.build((None, 3))
    assert dense.path == "d"
    dense.name = "renamed"
    assert dense.path == "d"        # as Keras's: the path of the build
    model = gpu_dl.Sequential([gpu_dl.Input((3,)), layers.Dense(2, name="a"), layers.Dropout(0.1)], name="m")
    assert model.path == "m"
    assert [layer.path for layer in model.layers] == ["m/a", None]        # Dropout: built when made


def test_compute_output_spec_records_nothing():
    dense = layers.Dense(4, dtype="float64")
    spec = dense.compute_output_spec(gpu_dl.Input((3,)))
    assert isinstance(spec, gpu_dl.KerasTensor)
    assert (spec.shape, spec.dtype) == ((None, 4), "float64")
    assert not dense.built and dense._inbound_nodes == []
    assert dense.compute_output_spec(numpy.zeros((5, 3), dtype="float32")).shape == (5, 4)
    merged = layers.Concatenate().compute_output_spec([gpu_dl.Input((2,)), gpu_dl.Input((3,))])
    assert merged.shape == (None, 5)
    with pytest.raises(TypeError, match="compute_output_spec"):
        dense.compute_output_spec("not a tensor")
    with pytest.raises(TypeError, match="compute_output_spec"):
        dense.compute_output_spec()


def test_call_signature_parameters_and_supports_jit():
    class Custom(layers.Layer):
        def call(self, features, mask=None, training=None):
            return features

    assert Custom().call_signature_parameters == ["features", "mask", "training"]
    assert layers.Dense(2).call_signature_parameters[0] == "inputs"
    assert layers.Dense(2).supports_jit
    for host in (layers.StringLookup(), layers.IntegerLookup(), layers.Hashing(3), layers.TextVectorization()):
        assert host.supports_jit is False
    layer = layers.Dense(2)
    layer.supports_jit = False          # an attribute, as in Keras
    assert not layer.supports_jit and layers.Dense(2).supports_jit


def test_variable_synchronization():
    assert gpu_dl.Variable(1.0).synchronization == "auto"
    assert gpu_dl.Variable(1.0, synchronization=None).synchronization == "none"
    assert gpu_dl.Variable(1.0, synchronization="on_read").synchronization == "on_read"
    with pytest.raises(ValueError, match="synchronization"):
        gpu_dl.Variable(1.0, synchronization="sometimes")


# ---------------------------------------------------------------- Keras 3 as the oracle

def test_variables_split_as_keras(keras):
    x = numpy.random.default_rng(0).standard_normal((2, 4, 4, 3)).astype("float32")
    ours, theirs = _nested(gpu_dl), _nested(keras)
    ours(x)
    theirs(x)
    for attribute in ("trainable_variables", "non_trainable_variables", "variables"):
        assert [_unnumbered(p) for p in _paths(getattr(ours, attribute))] == \
            [_unnumbered(p) for p in _paths(getattr(theirs, attribute))], attribute
    ours.trainable = theirs.trainable = False
    assert [_unnumbered(p) for p in _paths(ours.non_trainable_variables)] == \
        [_unnumbered(p) for p in _paths(theirs.non_trainable_variables)]
    assert ours.trainable_variables == theirs.trainable_variables == []


def test_metrics_variables_as_keras(keras):
    x = numpy.random.default_rng(1).standard_normal((4, 2)).astype("float32")
    ours, theirs = _tracking(gpu_dl), _tracking(keras)
    ours(x)
    theirs(x)
    assert _paths(ours.metrics_variables) == _paths(theirs.metrics_variables)
    numpy.testing.assert_allclose([v.numpy() for v in ours.metrics_variables],
                                  [keras.ops.convert_to_numpy(v) for v in theirs.metrics_variables], rtol=1e-6)


def test_add_variable_as_keras(keras):
    made = []
    for lib in (gpu_dl, keras):
        layer = lib.layers.Layer(name="holder")
        v = layer.add_variable((3,), "ones", None, False, True, None, None, "v")
        made.append((v.path, tuple(v.shape), str(numpy.dtype(v.dtype)), v.trainable, v.numpy().tolist(),
                     [w.path for w in layer.non_trainable_weights]))
    assert made[0] == made[1]


def _path_cases(lib):
    built = []
    model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3), lib.layers.Dropout(0.1), lib.layers.Reshape((3, 1)),
                            lib.layers.Conv1D(2, 1)], name="s")
    built.append([layer.path for layer in model.layers] + [model.path])
    inputs = lib.Input((4,))
    dense = lib.layers.Dense(2)
    functional = lib.Model(inputs, dense(inputs), name="f")
    built.append([dense.path, functional.path, functional.layers[0].path])

    class Sub(lib.Model):
        def __init__(self):
            super().__init__(name="sub")
            self.first = lib.layers.Dense(2)
            self.second = lib.layers.Dense(2, name="e")

        def call(self, x):
            return self.second(self.first(x))

    sub = Sub()
    sub(numpy.ones((2, 3), dtype="float32"))
    built.append([sub.path, sub.first.path, sub.second.path, sub.first.kernel.path])
    lazy = lib.Sequential([lib.layers.Dense(2)], name="lazy")
    lazy(numpy.ones((2, 3), dtype="float32"))
    built.append([lazy.path, lazy.layers[0].path])

    class Own(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = lib.layers.Dense(2, name="inner")

        def build(self, input_shape):
            self.inner.build(input_shape)
            self.scale = self.add_weight(shape=(2,), name="scale")

        def call(self, x):
            return self.inner(x) * self.scale

    own = Own(name="own")
    own.build((None, 3))        # called directly: the sublayer is built inside the layer's name scope all the same
    built.append([own.path, own.inner.path] + [v.path for v in own.weights])
    return built


def test_path_as_keras(keras):
    ours, theirs = _path_cases(gpu_dl), _path_cases(keras)
    assert [[_unnumbered(p) for p in case] for case in ours] == [[_unnumbered(p) for p in case] for case in theirs]


def test_compute_output_spec_as_keras(keras):
    def specs(lib):
        L = lib.layers
        out = [L.Dense(3).compute_output_spec(lib.Input((5,))),
               L.Dense(3, dtype="float64").compute_output_spec(lib.Input((2, 5))),
               L.Concatenate().compute_output_spec([lib.Input((2,)), lib.Input((3,))]),
               L.Conv2D(4, 3, padding="valid").compute_output_spec(lib.Input((7, 6, 2))),
               L.Embedding(10, 3).compute_output_spec(lib.Input((4,), dtype="int32")),
               L.MultiHeadAttention(2, 4).compute_output_spec(lib.Input((3, 5)), lib.Input((6, 5))),
               L.MultiHeadAttention(2, 4, output_shape=(7,)).compute_output_spec(
                   lib.Input((3, 5)), lib.Input((6, 5)), key=lib.Input((6, 7))),
               L.GroupQueryAttention(4, 2, 1).compute_output_spec(lib.Input((3, 5)), lib.Input((6, 5))),
               L.Attention().compute_output_spec([lib.Input((3, 5)), lib.Input((6, 5))]),
               L.GRU(3, return_sequences=True).compute_output_spec(lib.Input((3, 5))),
               L.Dropout(0.5).compute_output_spec(lib.Input((3, 5)), training=True)]
        return [(tuple(s.shape), str(s.dtype)) for s in out]

    assert specs(gpu_dl) == specs(keras)


def test_call_signature_parameters_and_supports_jit_as_keras(keras):
    def custom(lib):
        class Custom(lib.layers.Layer):
            def call(self, inputs, mask=None, training=None, scale=1.0):
                return inputs * scale

        return Custom()

    assert custom(gpu_dl).call_signature_parameters == custom(keras).call_signature_parameters
    assert layers.Dense(2).call_signature_parameters == keras.layers.Dense(2).call_signature_parameters
    for name, args in (("Dense", (2,)), ("RandomZoom", (0.1,)), ("RandomRotation", (0.1,)), ("RandomCrop", (2, 2)),
                       ("RandomTranslation", (0.1, 0.1)), ("RandomShear", (0.1,)), ("RandomPerspective", ()),
                       ("RandomFlip", ()), ("Conv2D", (2, 3)), ("LSTM", (2,))):
        assert getattr(layers, name)(*args).supports_jit == getattr(keras.layers, name)(*args).supports_jit, name


def test_variable_synchronization_as_keras(keras):
    for given in ("auto", None, "none", "on_read", "on_write"):
        assert gpu_dl.Variable(1.0, synchronization=given).synchronization == \
            keras.Variable(1.0, synchronization=given).synchronization
    dense = layers.Dense(2)
    dense.build((None, 3))
    theirs = keras.layers.Dense(2)
    theirs.build((None, 3))
    assert [v.synchronization for v in dense.weights] == [v.synchronization for v in theirs.weights]


def test_model_variables_as_keras(keras):
    def models(lib):
        L = lib.layers
        sequential = lib.Sequential([lib.Input((4,)), L.Dense(3, name="a"), L.Dropout(0.2), L.GaussianNoise(0.1),
                                     L.BatchNormalization(), L.Dense(2, name="b")], name="s")
        inputs = lib.Input((4,))
        functional = lib.Model(inputs, L.Dense(2, name="z")(L.Dropout(0.3)(L.Dense(3, name="y")(inputs))), name="fn")
        return sequential, functional

    for ours, theirs in zip(models(gpu_dl), models(keras)):
        for attribute in ("trainable_variables", "non_trainable_variables", "variables"):
            assert [_unnumbered(p) for p in _paths(getattr(ours, attribute))] == \
                [_unnumbered(p) for p in _paths(getattr(theirs, attribute))], attribute


def test_stateless_call_takes_the_seed_states_among_non_trainable_variables():
    model = gpu_dl.Sequential([gpu_dl.Input((4,)), layers.Dense(3), layers.Dropout(0.5, seed=1),
                               layers.BatchNormalization()])
    x = numpy.linspace(-1, 1, 24, dtype="float32").reshape(6, 4)
    trainable = [v.numpy() for v in model.trainable_variables]
    non_trainable = [v.numpy() for v in model.non_trainable_variables]
    assert len(non_trainable) == 3          # the Dropout's seed state, then the moving statistics
    out, values = model.stateless_call(trainable, non_trainable, x, training=True)
    for v, before in zip(model.non_trainable_variables, non_trainable):
        numpy.testing.assert_array_equal(v.numpy(), before)        # nothing written
    stateful = model(x, training=True)       # the same draws from the same seed state
    numpy.testing.assert_allclose(numpy.asarray(out), numpy.asarray(stateful), rtol=1e-6)
    for value, v in zip(values, model.non_trainable_variables):
        numpy.testing.assert_allclose(numpy.asarray(value), v.numpy(), rtol=1e-6)
    assert not numpy.array_equal(numpy.asarray(values[0]), non_trainable[0])        # the seed state moved on
    with pytest.raises(ValueError, match="non_trainable_variables"):
        model.stateless_call(trainable, non_trainable[1:], x)
