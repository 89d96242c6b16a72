"""AWQ against Keras 3.15 itself (torch backend, where Keras is installed): the config's and the policy's
configs, the algorithm's quantized values and scales on the same weights and activation magnitudes, the variables
(paths, shapes, dtypes) of quantized models of Dense and EinsumDense layers, and weights files and .keras files
from gpu_dl that Keras loads to the same predictions.

Keras 3.15's own calibration records no activations: its hooks replace the layers' ``call``, while its quantized
layers run ``quantized_call``; every channel then counts as 1, the search keeps the scales at 1, and its model's
weights are those of gpu_dl's algorithm given zero magnitudes (checked below). Its weights files leave
``kernel_zero`` out (its loading then refuses them); gpu_dl refuses them too."""
import os

import numpy
import pytest

import gpu_dl
import keras_steps
from gpu_dl import awq

fresh_sessions = keras_steps.fresh_sessions     # autouse: both sessions cleared around each test

SEQ, VOCAB, WIDTH, GROUP = 8, 20, 7, 3


@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def make_model(lib, quantized=False):
    dtype = {"dtype": f"awq/4/{GROUP}_from_float32"} if quantized else {}
    return lib.Sequential([lib.layers.Input((SEQ,), dtype="int32"), lib.layers.Embedding(VOCAB, WIDTH),
                           lib.layers.Dense(11, activation="relu", **dtype), lib.layers.Dense(5, **dtype)])


def float_weights(model):
    rng = numpy.random.default_rng(3)
    weights = [rng.normal(size=w.shape).astype("float32") for w in model.get_weights()]
    weights[0][:, [1, 4]] *= 25
    return weights


def config(lib, model, **kwargs):
    return lib.quantizers.AWQConfig(
        [numpy.random.default_rng(4).integers(0, VOCAB, size=(53,))], str, num_samples=5, sequence_length=SEQ,
        group_size=GROUP, num_grid_points=6,
        quantization_layer_structure={"pre_block_layers": [model.layers[0]], "sequential_blocks": model.layers[1:]},
        **kwargs)


def quantized_pair(keras):
    theirs, ours = make_model(keras), make_model(gpu_dl)
    weights = float_weights(ours)
    theirs.set_weights(weights)
    ours.set_weights(weights)
    with pytest.warns(UserWarning):     # both skip the Embedding with a warning
        theirs.quantize("awq", config=config(keras, theirs))
    with pytest.warns(UserWarning):
        ours.quantize("awq", config=config(gpu_dl, ours))
    return theirs, ours, weights


def test_config_and_policy_configs_match(keras):
    for kwargs in ({}, {"num_samples": 3, "sequence_length": 9, "group_size": -1, "num_grid_points": 4}):
        theirs = keras.quantizers.AWQConfig([1], str, **kwargs)
        ours = gpu_dl.quantizers.AWQConfig([1], str, **kwargs)
        assert ours.get_config() == theirs.get_config()
        assert ours.dtype_policy_string() == theirs.dtype_policy_string()
        assert keras.quantizers.AWQConfig.from_config(ours.get_config()).get_config() == theirs.get_config()
    theirs = keras.dtype_policies.get("awq/4/64_from_float32")
    ours = gpu_dl.dtype_policies.get("awq/4/64_from_float32")
    assert (ours.name, ours.get_config()) == (theirs.name, theirs.get_config())
    assert keras.saving.serialize_keras_object(theirs)["class_name"] == \
        gpu_dl.dtype_policies.serialize(ours)["class_name"]
    for bad in ({"weight_bits": 3}, {"group_size": 0}, {"num_grid_points": 0}):
        with pytest.raises(ValueError) as keras_error:
            keras.quantizers.AWQConfig(None, None, **bad)
        with pytest.raises(ValueError) as our_error:
            gpu_dl.quantizers.AWQConfig(None, None, **bad)
        assert str(keras_error.value).split(".")[0] in str(our_error.value)


@pytest.mark.parametrize("out_features, in_features, group_size, grid",
                         [(7, 13, 4, 20), (5, 9, -1, 7), (6, 33, 8, 10), (3, 17, 17, 5), (1, 6, 5, 3)])
def test_algorithm_matches_keras(keras, out_features, in_features, group_size, grid):
    from keras.src.quantizers.awq import awq_quantize_matrix
    rng = numpy.random.default_rng(out_features * 31 + in_features)
    w = rng.normal(size=(out_features, in_features)).astype("float32")
    magnitudes = numpy.abs(rng.normal(size=in_features)).astype("float32")
    magnitudes[rng.integers(0, in_features, 2)] *= 50
    theirs = [keras.ops.convert_to_numpy(a) for a in awq_quantize_matrix(w, magnitudes, num_grid_points=grid,
                                                                         group_size=group_size)]
    ours = awq.quantize_matrix(w, magnitudes, grid, group_size)
    numpy.testing.assert_array_equal(ours[0], theirs[0].astype("uint8"))      # Keras keeps them as floats
    numpy.testing.assert_allclose(ours[1], theirs[1], rtol=1e-6)
    numpy.testing.assert_array_equal(ours[2], theirs[2])
    numpy.testing.assert_allclose(ours[3], theirs[3], rtol=2e-6)
    numpy.testing.assert_array_equal(ours[4], theirs[4])


def test_quantized_model_variables_match_keras(keras):
    theirs, ours, weights = quantized_pair(keras)
    assert [(v.path, tuple(v.shape), keras_steps.keras_numpy(keras, v).dtype.name) for v in theirs.weights] == \
        [(v.path, tuple(v.shape), v.numpy().dtype.name) for v in ours.weights]
    assert [layer.dtype_policy.name for layer in theirs.layers] == [layer.dtype_policy.name for layer in ours.layers]
    # Keras's calibration records no activations (see the module docstring): its weights are the algorithm's with
    # every magnitude 0
    for layer, kernel in zip(theirs.layers[1:], (weights[1], weights[3])):
        values, scale, zero, awq_scales, g_idx = awq.quantize_matrix(kernel.T, numpy.zeros(kernel.shape[0]), 6, GROUP)
        numpy.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.kernel_zero), zero)
        numpy.testing.assert_allclose(keras.ops.convert_to_numpy(layer.kernel_scale), scale, rtol=1e-6)
        numpy.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.awq_scales), awq_scales)
        numpy.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.g_idx), g_idx)
    # gpu_dl's calibration records them: the channels with large activations take scales above 1
    assert ours.layers[1].awq_scales.numpy()[[1, 4]].min() > 1


def test_keras_loads_our_files(keras, tmp_path):
    _, ours, _ = quantized_pair(keras)
    tokens = numpy.random.default_rng(8).integers(0, VOCAB, size=(4, SEQ))
    expected = ours.predict(tokens, verbose=0)
    ours.save_weights(tmp_path / "ours.weights.h5")
    theirs = make_model(keras, quantized=True)
    theirs.load_weights(tmp_path / "ours.weights.h5")
    numpy.testing.assert_allclose(keras_steps.keras_numpy(keras, theirs.predict(tokens, verbose=0)), expected,
                                  rtol=1e-5, atol=1e-5)
    ours.save(tmp_path / "ours.keras")
    loaded = keras.saving.load_model(tmp_path / "ours.keras")
    assert isinstance(loaded.layers[1].dtype_policy, keras.dtype_policies.AWQDTypePolicy)
    numpy.testing.assert_allclose(keras_steps.keras_numpy(keras, loaded.predict(tokens, verbose=0)), expected,
                                  rtol=1e-5, atol=1e-5)
    # and back: Keras's file of the model it loaded, read by gpu_dl
    loaded.save_weights(tmp_path / "theirs.weights.h5")
    again = make_model(gpu_dl, quantized=True)
    with pytest.raises(ValueError, match=r"kernel_scale, kernel_zero, awq_scales, g_idx"):
        again.load_weights(tmp_path / "theirs.weights.h5")      # Keras 3.15 wrote no kernel_zero


def test_einsum_dense_variables_and_files_match_keras(keras, tmp_path):
    from test_awq import einsum_model
    # Keras's calibration gives the token ids to the first block as they are: an Embedding makes them floats
    theirs, ours = einsum_model(keras, embedding=True), einsum_model(gpu_dl, embedding=True)
    rng = numpy.random.default_rng(6)
    weights = [rng.normal(size=w.shape).astype("float32") for w in ours.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    data = [rng.integers(0, VOCAB, size=(90,))]
    for lib, model in ((keras, theirs), (gpu_dl, ours)):
        with pytest.warns(UserWarning):     # the Embedding is skipped
            model.quantize("awq", config=lib.quantizers.AWQConfig(
                data, str, num_samples=4, sequence_length=SEQ, group_size=5, num_grid_points=4,
                quantization_layer_structure={"pre_block_layers": model.layers[:1],
                                              "sequential_blocks": model.layers[1:]}))
    assert [(v.path, tuple(v.shape), keras_steps.keras_numpy(keras, v).dtype.name) for v in theirs.weights] == \
        [(v.path, tuple(v.shape), v.numpy().dtype.name) for v in ours.weights]
    tokens = rng.integers(0, VOCAB, size=(2, SEQ))
    expected = ours.predict(tokens, verbose=0)
    ours.save_weights(tmp_path / "ours.weights.h5")
    loaded = einsum_model(keras, dtype="awq/4/5_from_float32", embedding=True)
    loaded.load_weights(tmp_path / "ours.weights.h5")
    numpy.testing.assert_allclose(keras_steps.keras_numpy(keras, loaded.predict(tokens, verbose=0)), expected,
                                  rtol=1e-5, atol=1e-5)


class CharTokenizer:
    def tokenize(self, text):
        return numpy.frombuffer(text.encode(), dtype=numpy.uint8).astype("int64") % VOCAB


@pytest.mark.parametrize("dataset, num_samples, length", [
    (["the quick brown fox", "jumps over", "the lazy dog"], 5, 6),
    ([numpy.arange(30).reshape(5, 6), numpy.arange(7)], 4, 8),
    ([numpy.arange(5)], 3, 4),          # shorter than the windows: tiled
])
def test_calibration_windows_match_keras(keras, dataset, num_samples, length):
    from keras.src.quantizers.gptq_core import get_dataloader
    from gpu_dl.quantization_calibration import get_dataloader as calibration_windows
    theirs = get_dataloader(CharTokenizer(), length, dataset, num_samples=num_samples)
    ours = calibration_windows(CharTokenizer(), length, dataset, num_samples)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape == (num_samples, 1, length)
    numpy.testing.assert_array_equal(ours, theirs)
