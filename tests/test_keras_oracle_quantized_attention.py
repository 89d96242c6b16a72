"""Quantized MultiHeadAttention and GroupQueryAttention against Keras 3 (torch backend), for "int8", "int4" and
"float8": model.quantize quantizes their query, key, value and output projections (Keras's EinsumDense
sublayers) into the same variables (paths, shapes, dtypes, order, values), the predictions match, a few SGD steps
train the same weights to the same values, and the weights files each writes load in the other; model.quantize's
filters pick the projections by their names, as Keras's do. Keras's .keras file of such a model loads in neither
library: its config of the attention layer records no quantization, so its float projections do not take the
file's quantized variables (Keras 3.15 refuses its own files so). gpu_dl's records the projections' policies in an
entry of its own: gpu_dl loads it exactly, and Keras 3.15 refuses the entry."""
import os
import warnings

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

MODES = ["int8", "int4", "float8"]


@pytest.fixture(autouse=True)
def fresh_sessions():
    # the variable paths compared below carry names both libraries number by a process-wide count
    keras.backend.clear_session()
    gpu_dl.backend.clear_session()


def attention_model(lib, kind):
    q, v = lib.Input((5, 4)), lib.Input((7, 4))
    if kind == "mha":
        out = lib.layers.MultiHeadAttention(2, 3)(q, v)
    else:
        out = lib.layers.GroupQueryAttention(3, 4, 2)(q, v)
    return lib.Model([q, v], lib.layers.Dense(3)(out))


def inputs(rng, batch=4):
    return [rng.standard_normal((batch, 5, 4)).astype("float32"), rng.standard_normal((batch, 7, 4)).astype("float32")]


def quantized_pair(kind, mode, seed=0):
    theirs, ours = attention_model(keras, kind), attention_model(gpu_dl, kind)
    rng = numpy.random.default_rng(seed)
    theirs.set_weights([(0.5 * rng.standard_normal(w.shape)).astype("float32") for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    for model in (theirs, ours):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")         # both warn of the layers they do not quantize
            model.quantize(mode)
    return theirs, ours


def described(model):
    return [(v.path, str(v.dtype), tuple(v.shape), v.trainable) for v in model.variables]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["mha", "gqa"])
def test_variables_and_predictions_match(kind, mode):
    theirs, ours = quantized_pair(kind, mode)
    assert described(ours) == described(theirs)
    assert any(v.path.endswith("/query/kernel_scale") for v in ours.variables)
    for a, b in zip(ours.variables, theirs.variables):
        numpy.testing.assert_array_equal(a.numpy(), keras.ops.convert_to_numpy(b), err_msg=a.path)
    x = inputs(numpy.random.default_rng(1))
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["mha", "gqa"])
def test_sgd_steps_after_quantization_match(kind, mode):
    theirs, ours = quantized_pair(kind, mode)
    frozen = {v.path: v.numpy().copy() for v in ours.variables if not v.trainable}
    rng = numpy.random.default_rng(2)
    ours.compile(optimizer="sgd", loss="mse")
    theirs.compile(optimizer="sgd", loss="mse")
    for _ in range(3):
        x, y = inputs(rng), rng.standard_normal((4, 5, 3)).astype("float32")
        assert ours.train_on_batch(x, y) == pytest.approx(float(theirs.train_on_batch(x, y)), rel=1e-5)
    changed = set()
    for a, b in zip(ours.variables, theirs.variables):
        b = keras.ops.convert_to_numpy(b)
        numpy.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=1e-6, err_msg=a.path)
    for v in ours.variables:
        if v.path in frozen and not numpy.array_equal(frozen[v.path], v.numpy()):
            changed.add(v.path)
    assert not changed, f"non-trainable variables changed: {changed}"
    # the attention layer's biases trained
    before, _ = quantized_pair(kind, mode)
    bias = [i for i, v in enumerate(ours.variables) if v.path.endswith("query/bias")][0]
    assert not numpy.array_equal(ours.variables[bias].numpy(), keras.ops.convert_to_numpy(before.variables[bias]))


@pytest.mark.parametrize("mode", MODES)
def test_weights_files_load_both_ways(tmp_path, mode):
    theirs, ours = quantized_pair("mha", mode)
    x = inputs(numpy.random.default_rng(3))
    expected = theirs.predict(x, verbose=0)
    theirs.save_weights(tmp_path / "k.weights.h5")
    ours.save_weights(tmp_path / "g.weights.h5")
    theirs_again, ours_again = quantized_pair("mha", mode, seed=4)
    ours_again.load_weights(tmp_path / "k.weights.h5")
    theirs_again.load_weights(tmp_path / "g.weights.h5")
    for a, b in zip(ours_again.variables + list(theirs_again.variables), list(theirs.variables) * 2):
        numpy.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    numpy.testing.assert_allclose(ours_again.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(theirs_again.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


FILTERS = [("query", ["query"]), (["key", "attention_output"], ["key", "attention_output"]),
           (lambda layer: layer.name in ("value", "dense"), ["value", "dense"]), ("multi_head|grouped", [])]


@pytest.mark.parametrize("filters,quantized", FILTERS, ids=["regex", "list", "callable", "attention-name"])
@pytest.mark.parametrize("kind", ["mha", "gqa"])
def test_filters_pick_the_projections_by_their_names(kind, filters, quantized):
    # Keras applies the filters to the layers that hold weights: an attention layer's projection sublayers
    theirs, ours = attention_model(keras, kind), attention_model(gpu_dl, kind)
    rng = numpy.random.default_rng(5)
    theirs.set_weights([(0.5 * rng.standard_normal(w.shape)).astype("float32") for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    for model in (theirs, ours):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.quantize("int8", filters=filters)
    assert described(ours) == described(theirs)
    assert sorted(v.path.split("/")[-2] for v in ours.variables if v.path.endswith("/kernel_scale")) == \
        sorted(quantized)
    x = inputs(numpy.random.default_rng(6))
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


PROJECTIONS = "query|key|value|attention_output"


@pytest.mark.parametrize("mode,filters", [("int8", None), ("int4", None), ("float8", PROJECTIONS),
                                          ("int8", "query|value"), ("int4", ["key"])])
@pytest.mark.parametrize("kind", ["mha", "gqa"])
def test_our_files_of_quantized_attention_load_exactly(tmp_path, kind, mode, filters):
    ours = attention_model(gpu_dl, kind)
    rng = numpy.random.default_rng(7)
    ours.set_weights([(0.5 * rng.standard_normal(w.shape)).astype("float32") for w in ours.get_weights()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.quantize(mode, filters=filters)
    ours.save(tmp_path / "g.keras")
    again = gpu_dl.models.load_model(tmp_path / "g.keras")
    attention, loaded = ours.layers[2], again.layers[2]
    assert described(loaded) == described(attention)
    assert loaded.get_config() == attention.get_config() and loaded.dtype_policy.name == "float32"
    for a, b in zip(again.variables, ours.variables):
        numpy.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=b.path)
    x = inputs(numpy.random.default_rng(8))
    numpy.testing.assert_array_equal(again.predict(x, verbose=0), ours.predict(x, verbose=0))
    # the config entry that records the projections' policies is gpu_dl's: Keras 3.15 refuses it
    with pytest.raises(TypeError, match="could not be deserialized"):
        keras.models.load_model(tmp_path / "g.keras")


def test_keras_files_of_quantized_attention_load_in_neither(tmp_path):
    theirs, _ = quantized_pair("mha", "int8")
    theirs.save(tmp_path / "k.keras")
    with pytest.raises(ValueError, match="query"):
        gpu_dl.models.load_model(tmp_path / "k.keras")
    with pytest.raises(ValueError, match="could not be loaded"):
        keras.models.load_model(tmp_path / "k.keras")
