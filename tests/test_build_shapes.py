"""What the build of a layer whose call takes several tensors is given (layers/build_shapes.py), on both backends:
the shapes of its call's tensors by name (``build(self, query_shape, value_shape)``), the first tensor's for a build
of one argument, defaults for tensors not given; in calls on arrays, in functional models (and their files, whose
``build_config`` holds the shapes as Keras writes them), in the traced call of a composite layer and in a
subclassed model; outputs against NumPy, gradients through the traced call against float64 finite differences,
and clear errors for builds that name no call argument. Against Keras itself:
tests/test_keras_oracle_build_shapes.py."""
import json
import zipfile

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers, ops
from gpu_dl.backend import to_numpy

from build_shape_classes import (bad_builds, first_shape_only, holding_query_value, optional_key, query_value,
                                 two_input_model)
from gradcheck import assert_gradient

QueryValue, OptionalKey, FirstShapeOnly = query_value(gpu_dl), optional_key(gpu_dl), first_shape_only(gpu_dl)
HoldingQueryValue = holding_query_value(gpu_dl)
CUSTOM = {"QueryValue": QueryValue}


def _expected_query_value(layer, query, value):
    wq, wv = layer.get_weights()
    return query @ wq + (value @ wv).mean(axis=1, keepdims=True)


def test_a_call_on_arrays_builds_for_each_tensor_by_name(xp, rng):
    query, value = rng.standard_normal((2, 4, 5)).astype("float32"), rng.standard_normal((2, 6, 7)).astype("float32")
    for call in (lambda layer: layer(xp.asarray(query), xp.asarray(value)),
                 lambda layer: layer(xp.asarray(query), value=xp.asarray(value))):
        layer = QueryValue()
        y = call(layer)
        assert layer.seen == {"query_shape": (2, 4, 5), "value_shape": (2, 6, 7)}     # with the batch, as Keras
        assert [w.shape for w in layer.weights] == [(5, 3), (7, 3)]
        numpy.testing.assert_allclose(to_numpy(y), _expected_query_value(layer, query, value), rtol=1e-5, atol=1e-6)


def test_a_tensor_not_given_keeps_its_default_shape(xp, rng):
    query, value = rng.standard_normal((2, 4, 5)).astype("float32"), rng.standard_normal((2, 6, 7)).astype("float32")
    key = rng.standard_normal((2, 3, 2)).astype("float32")
    without, with_key = OptionalKey(), OptionalKey()
    y = without(xp.asarray(query), xp.asarray(value))
    assert without.seen == {"query_shape": (2, 4, 5), "value_shape": (2, 6, 7), "key_shape": None}
    numpy.testing.assert_allclose(to_numpy(y), query + value.mean(axis=1, keepdims=True) @ without.get_weights()[0],
                                  rtol=1e-5, atol=1e-6)
    with_key(xp.asarray(query), xp.asarray(value), key=xp.asarray(key))
    assert with_key.seen["key_shape"] == (2, 3, 2) and with_key.get_weights()[0].shape == (2, 5)


def test_a_build_of_one_argument_gets_the_first_tensors_shape(xp, rng):
    targets, logits = rng.standard_normal((3, 4)).astype("float32"), rng.standard_normal((3, 4)).astype("float32")
    layer = FirstShapeOnly()
    y = layer(xp.asarray(targets), xp.asarray(logits))
    assert layer.seen == {"input_shape": (3, 4)}
    numpy.testing.assert_allclose(to_numpy(y), (logits - targets) ** 2, rtol=1e-6)
    inputs = [gpu_dl.Input((2, 6)), gpu_dl.Input((9,))]
    wide = first_shape_only(gpu_dl)()
    with pytest.raises(ValueError, match="broadcast"):       # built for the targets' (2, 6): logits of 9 do not fit
        wide(*inputs)
    assert wide.seen == {"input_shape": (None, 2, 6)}


def test_a_functional_model_builds_and_saves_the_shapes_as_keras_writes_them(tmp_path, rng):
    model = two_input_model(gpu_dl)
    layer = model.get_layer("query_value")
    assert layer.seen == {"query_shape": (None, 4, 5), "value_shape": (None, 6, 7)}
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    data = [rng.standard_normal((2, 4, 5)).astype("float32"), rng.standard_normal((2, 6, 7)).astype("float32")]
    numpy.testing.assert_allclose(model.predict(data, verbose=0), _expected_query_value(layer, *data), rtol=1e-5,
                                  atol=1e-6)
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        entry = json.loads(archive.read("config.json"))["config"]["layers"][-1]
    assert entry["build_config"] == {"shapes_dict": {"query_shape": [None, 4, 5], "value_shape": [None, 6, 7]}}
    loaded = gpu_dl.saving.load_model(tmp_path / "m.keras", custom_objects=CUSTOM)
    numpy.testing.assert_allclose(loaded.predict(data, verbose=0), model.predict(data, verbose=0), rtol=1e-6)
    again = gpu_dl.layers.deserialize(gpu_dl.saving.serialize_keras_object(layer), custom_objects=CUSTOM)
    assert again.built and again.seen == layer.seen and [w.shape for w in again.weights] == [(5, 3), (7, 3)]


@pytest.fixture
def float64():
    backend.set_floatx("float64")
    yield
    backend.set_floatx("float32")


def test_a_traced_call_builds_its_inner_layer_for_each_tensor_and_trains_through_it(xp, rng, float64):
    layer = HoldingQueryValue()
    x = xp.asarray(rng.standard_normal((3, 4, 5)))
    y = layer(x, training=True)
    # as Keras's call on arrays runs eagerly, the inner layer is built for the batch the call was given
    assert layer.inner.seen == {"query_shape": (3, 4, 5), "value_shape": (3, 4, 7)}
    kernel, bias = layer.project.get_weights()
    host = to_numpy(x)
    numpy.testing.assert_allclose(to_numpy(y), _expected_query_value(layer.inner, host, host @ kernel + bias),
                                  rtol=1e-10)
    dy = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(dy)
    assert_gradient(lambda v: float(to_numpy((layer(v) * dy).sum())), x.copy(), dx, rng, what="x")
    for var in layer.trainable_weights:
        grad, original = var.grad, var.value.copy()

        def objective(value, var=var):
            var.value[...] = value
            return float(to_numpy((layer(x) * dy).sum()))
        assert_gradient(objective, original.copy(), grad, rng, what=var.path)
        var.value[...] = original


def test_a_subclassed_model_builds_for_each_of_its_inputs(rng):
    class TwoInputs(gpu_dl.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(3)

        def build(self, a_shape, b_shape):
            self.seen = (a_shape, b_shape)
            self.w = self.add_weight(shape=(b_shape[-1], 3), name="w")

        def call(self, a, b):
            return self.dense(a) + ops.matmul(b, self.w)

    a, b = rng.standard_normal((2, 4)).astype("float32"), rng.standard_normal((2, 6)).astype("float32")
    model = TwoInputs()
    y = model(a, b)
    assert model.seen == ((2, 4), (2, 6))
    kernel, bias = model.dense.get_weights()
    numpy.testing.assert_allclose(to_numpy(y), a @ kernel + bias + b @ to_numpy(model.w.value), rtol=1e-5, atol=1e-6)
    by_hand = TwoInputs()
    by_hand.build((None, 4), (None, 6))
    assert by_hand.built and by_hand.seen == ((None, 4), (None, 6)) and by_hand.w.shape == (6, 3)


def test_builds_that_name_no_call_argument_are_refused():
    bad = bad_builds(gpu_dl)
    x = numpy.ones((2, 3), dtype="float32")
    with pytest.raises(ValueError, match=r"Layer 'not_shapes' \(NotShapes\): a build\(\) of more than one argument "
                                         r".* takes `a`, which does not end in `_shape`"):
        # named here: the automatic name counts every NotShapes made before in the process, as Keras's does
        bad["not_shapes"](name="not_shapes")(x, x)
    with pytest.raises(ValueError, match=r"takes `c_shape`, but call\(\) has no argument `c` \(it takes a, b\)"):
        bad["unknown"]()(gpu_dl.Input((3,)), gpu_dl.Input((3,)))
    with pytest.raises(TypeError, match=r"build\(\) takes `b_shape`, but the call gave no tensor for `b`"):
        bad["missing"]()(x)
