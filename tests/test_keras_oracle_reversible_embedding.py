"""ReversibleEmbedding, InputSpec and layers.serialize/deserialize against Keras 3 itself (where Keras is
installed): the same outputs both ways, the same training steps of a small language model, .keras files read by
the other side, Keras's messages for refused inputs, and Keras's dicts; quantized to int8 and int4, the same
variables, outputs both ways and files read by the other side."""
import json
import os
import warnings

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_sessions():
    # the variable paths compared below carry names both libraries number by a process-wide count
    keras.utils.clear_session()
    gpu_dl.utils.clear_session(free_memory=False)


def language_model(lib, tie, cap, vocab=13, steps=5, width=6):
    L = lib.layers
    ids = lib.Input((steps,), dtype="int32", name="ids")
    emb = L.ReversibleEmbedding(vocab, width, tie_weights=tie, logit_soft_cap=cap, mask_zero=True, name="tokens",
                                embeddings_initializer="random_normal")
    hidden = L.Dense(width, activation="tanh", name="mix")(emb(ids))
    return lib.Model(ids, emb(hidden, reverse=True), name="lm")


def token_batch(rng, batch, vocab=13, steps=5):
    return rng.integers(0, vocab, (batch, steps)).astype("int32")


@pytest.mark.parametrize("tie,cap", [(True, None), (False, None), (True, 2.0), (False, 0.5)])
def test_outputs_and_training_steps_match_keras(rng, tie, cap):
    ours, theirs = language_model(gpu_dl, tie, cap), language_model(keras, tie, cap)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert [v.path for v in ours.get_layer("tokens").weights] == [v.path for v in theirs.get_layer("tokens").weights]
    theirs.set_weights(ours.get_weights())
    x = token_batch(rng, 4)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert_training_steps_match(keras, ours, theirs, rng, (5,), 13, 4,
                                loss=gpu_dl.losses.SparseCategoricalCrossentropy(from_logits=True),
                                keras_loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                                targets=lambda rng, batch: token_batch(rng, batch), inputs=token_batch)


@pytest.mark.parametrize("tie", [True, False])
def test_keras_files_move_both_ways(tmp_path, rng, tie):
    x = token_batch(rng, 3)
    ours = language_model(gpu_dl, tie, 3.0)
    want = ours.predict(x, verbose=0)
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    theirs = language_model(keras, tie, None)
    theirs.save(tmp_path / "k.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "k.keras")
    numpy.testing.assert_allclose(loaded.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert loaded.get_layer("tokens").get_config()["tie_weights"] is tie


QUANTIZED = [("int8", "default"), ("int4", "default"), ("int4", None), ("int4", 2)]


def quantized_language_model(lib, tie, mode, block_size, rng_seed=0):
    """The language model with standard normal weights, its ReversibleEmbedding quantized (``block_size``: the
    int4 config's; "default" leaves the config out)."""
    model = language_model(lib, tie, 2.5)
    rng = numpy.random.default_rng(rng_seed)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    config = None if block_size == "default" else lib.quantizers.Int4QuantizationConfig(block_size=block_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.quantize(mode, config=config, filters="tokens")
    return model


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("mode,block_size", QUANTIZED, ids=["int8", "int4", "int4-per-id", "int4-groups-of-2"])
def test_quantized_variables_and_outputs_match_keras(rng, tie, mode, block_size):
    theirs = quantized_language_model(keras, tie, mode, block_size)
    ours = quantized_language_model(gpu_dl, tie, mode, block_size)
    assert [(w.path, w.dtype, tuple(w.shape), w.trainable) for w in ours.weights] == \
        [(w.path, w.dtype, tuple(w.shape), w.trainable) for w in theirs.weights]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert a.dtype == b.dtype
        numpy.testing.assert_array_equal(a, b)
    ours_layer, theirs_layer = ours.get_layer("tokens"), theirs.get_layer("tokens")
    assert ours_layer.get_config() == theirs_layer.get_config()
    # each direction, to the bit before the soft cap (whose tanh may differ from torch's in the last place)
    x = token_batch(rng, 4)
    hidden = rng.standard_normal((4, 5, 6)).astype("float32") * 2
    numpy.testing.assert_array_equal(ours_layer(x), keras.ops.convert_to_numpy(theirs_layer(x)))
    numpy.testing.assert_allclose(ours_layer(hidden, reverse=True),
                                  keras.ops.convert_to_numpy(theirs_layer(hidden, reverse=True)), rtol=1e-6, atol=1e-7)
    ours_layer.logit_soft_cap = theirs_layer.logit_soft_cap = None
    numpy.testing.assert_array_equal(ours_layer(hidden, reverse=True),
                                     keras.ops.convert_to_numpy(theirs_layer(hidden, reverse=True)))
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("mode,block_size", QUANTIZED, ids=["int8", "int4", "int4-per-id", "int4-groups-of-2"])
def test_quantized_files_move_both_ways(tmp_path, rng, tie, mode, block_size):
    x = token_batch(rng, 3)
    theirs = quantized_language_model(keras, tie, mode, block_size, rng_seed=1)
    theirs.save(tmp_path / "k.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "k.keras")
    assert loaded.get_layer("tokens").dtype_policy.name == theirs.get_layer("tokens").dtype_policy.name
    numpy.testing.assert_allclose(loaded.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    ours = quantized_language_model(gpu_dl, tie, mode, block_size, rng_seed=2)
    ours.save(tmp_path / "g.keras")
    read = keras.models.load_model(tmp_path / "g.keras")
    assert [(w.path, tuple(w.shape)) for w in read.weights] == [(w.path, w.shape) for w in ours.weights]
    numpy.testing.assert_allclose(read.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_training_through_an_int4_projection_matches_keras(rng, tie):
    # int4's default config leaves the hidden states unquantized: Keras's gradient reaches them through the
    # dequantized table, as gpu_dl's does
    ours = quantized_language_model(gpu_dl, tie, "int4", None)
    theirs = quantized_language_model(keras, tie, "int4", None)
    assert_training_steps_match(keras, ours, theirs, rng, (5,), 13, 4,
                                loss=gpu_dl.losses.SparseCategoricalCrossentropy(from_logits=True),
                                keras_loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                                targets=lambda rng, batch: token_batch(rng, batch), inputs=token_batch)


@pytest.mark.parametrize("policy,mode,block_size", [("int8_from_float32", "int8", "default"),
                                                     ("int4/-1_from_float32", "int4", None),
                                                     ("int4/2_from_float32", "int4", 2)])
def test_a_layer_built_from_a_quantized_policy_computes_as_keras_s(rng, policy, mode, block_size):
    # no config: both reverse calls quantize the hidden states per row (Keras's fallback), int4's groups included
    source = quantized_language_model(gpu_dl, False, mode, block_size)
    weights = source.get_layer("tokens").get_weights()
    ours = gpu_dl.layers.ReversibleEmbedding(13, 6, tie_weights=False, dtype=policy, name="head")
    theirs = keras.layers.ReversibleEmbedding(13, 6, tie_weights=False, dtype=policy, name="head")
    ours.build(None)
    theirs.build()
    assert [(w.name, w.dtype, tuple(w.shape)) for w in ours.weights] == \
        [(w.name, w.dtype, tuple(w.shape)) for w in theirs.weights]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    hidden = rng.standard_normal((3, 6)).astype("float32")
    x = token_batch(rng, 2)
    numpy.testing.assert_array_equal(ours(x), keras.ops.convert_to_numpy(theirs(x)))
    numpy.testing.assert_allclose(ours(hidden, reverse=True), keras.ops.convert_to_numpy(theirs(hidden, reverse=True)),
                                  rtol=1e-6, atol=1e-6)


def test_config_is_keras_s():
    ours = gpu_dl.layers.ReversibleEmbedding(9, 4, tie_weights=False, reverse_dtype="float32", logit_soft_cap=30.0,
                                             name="head")
    theirs = keras.layers.ReversibleEmbedding(9, 4, tie_weights=False, reverse_dtype="float32", logit_soft_cap=30.0,
                                              name="head")
    written = json.loads(json.dumps(gpu_dl.layers.serialize(ours)))
    expected = json.loads(json.dumps(keras.layers.serialize(theirs)))
    assert written["config"]["activity_regularizer"] is None        # written as Keras writes it
    assert written["config"]["quantization_config"] is None
    assert written == expected
    again = keras.layers.deserialize(written)
    assert again.get_config() == theirs.get_config()
    assert gpu_dl.layers.deserialize(keras.layers.serialize(theirs)).get_config() == ours.get_config()


# ------------------------------------------------------------ layers.serialize / deserialize
def several_layers(lib):
    L = lib.layers
    return [L.Dropout(0.3, seed=2, name="drop"), L.Reshape((2, 3), name="reshape"),
            L.LayerNormalization(epsilon=1e-3, name="norm"), L.Activation("relu", name="act"),
            L.MaxPooling2D(2, name="pool"), L.Flatten(name="flat")]


@pytest.mark.parametrize("index", range(len(several_layers(gpu_dl))))
def test_serialize_gives_keras_s_dicts_and_each_reads_the_other(index):
    ours, theirs = several_layers(gpu_dl)[index], several_layers(keras)[index]
    written = gpu_dl.layers.serialize(ours)
    assert json.loads(json.dumps(written)) == json.loads(json.dumps(keras.layers.serialize(theirs)))
    assert keras.layers.deserialize(written).get_config() == theirs.get_config()
    back = gpu_dl.layers.deserialize(keras.layers.serialize(theirs))
    assert type(back) is type(ours) and back.get_config() == ours.get_config()


# ------------------------------------------------------------ InputSpec
SPECS = [dict(ndim=3), dict(max_ndim=2), dict(min_ndim=3), dict(axes={-1: 4}), dict(shape=(None, 3, 2)),
         dict(shape=(None, 28, 28, 1), allow_last_axis_squeeze=True), dict(dtype="float64", name="features")]
SHAPES = [(2, 3), (2, 3, 4), (2, 3, 5), (7, 3, 2), (2, 28, 28), (2, 28, 27)]


@pytest.mark.parametrize("index", range(len(SPECS)))
def test_input_spec_checks_and_messages_are_keras_s(index):
    from gpu_dl.layers.input_spec import assert_input_compatibility
    from keras.src.layers.input_spec import assert_input_compatibility as keras_check
    ours, theirs = gpu_dl.layers.InputSpec(**SPECS[index]), keras.layers.InputSpec(**SPECS[index])
    assert ours.get_config() == theirs.get_config() and repr(ours) == repr(theirs)
    for shape in SHAPES:
        x = numpy.zeros(shape, "float32")
        outcomes = []
        for check, spec in ((assert_input_compatibility, ours), (keras_check, theirs)):
            try:
                check(spec, x, "layer_a")
                outcomes.append(None)
            except ValueError as e:
                outcomes.append(str(e))
        assert outcomes[0] == outcomes[1], shape
