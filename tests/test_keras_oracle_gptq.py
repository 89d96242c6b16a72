"""GPTQ against Keras 3.15 (torch backend): the quantization of a matrix with Keras's error feedback, Dense and
EinsumDense layers calibrated through the ``GPTQ`` class on the same inputs (same variables, levels, scales,
zero points, group indices and predictions), Keras's model-level pass (which gathers no Hessian: its weights are
GPTQ's with none), GPTQConfig's and GPTQDTypePolicy's configs, and model files in both directions."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
import keras_steps  # noqa: E402
from gpu_dl import gptq, layers  # noqa: E402
from gpu_dl.backend import to_numpy  # noqa: E402
from test_gptq import D, H, O, S, V, token_model  # noqa: E402
from test_gptq import ids_tokenizer as ids  # noqa: E402

fresh_sessions = keras_steps.fresh_sessions


@pytest.fixture(autouse=True)
def fresh_keras_session():
    keras.backend.clear_session()
    yield
    keras.backend.clear_session()


def alternating(rng, shape, axis=-1):
    """Weights whose every run along ``axis`` holds both signs (Keras's zero points wrap for a group above
    zero)."""
    w = numpy.abs(rng.standard_normal(shape)).astype(numpy.float32) + 0.05
    numpy.moveaxis(w, axis, 0)[::2] *= -1
    return w


def settings(bits, group_size, symmetric, act_order):
    return dict(weight_bits=bits, group_size=group_size, symmetric=symmetric, activation_order=act_order)


# asymmetric groups of a permuted order may lie above zero, where Keras's zero points wrap: activation order with
# one group, or symmetric; no group of one column (a constant range)
CASES = [(4, -1, False, False), (3, 4, True, True), (8, 7, False, False), (2, 3, False, False), (4, -1, False, True),
         (4, 8, True, True)]


def assert_same_levels(mine, their, what="levels"):
    """Equal levels, but for a few near ties that float32 sums in another order send to the next level (8-bit
    levels are fine enough for the inverse Hessians' last-bit differences to reach them)."""
    assert mine.shape == their.shape and mine.dtype == their.dtype, what
    differ = numpy.abs(mine.astype(numpy.int64) - their.astype(numpy.int64))
    assert differ.max() <= 1 and (differ > 0).mean() <= 0.05, (what, (differ > 0).mean())


@pytest.mark.parametrize("bits, group_size, symmetric, act_order", CASES)
def test_matrix_with_keras_error_feedback(bits, group_size, symmetric, act_order):
    from keras.src.quantizers import gptq as keras_gptq
    from keras.src.quantizers.quantizers import GPTQQuantizer
    rng = numpy.random.default_rng(bits * 10 + group_size)
    w = alternating(rng, (7, 13))
    x = rng.standard_normal((400, 13)).astype(numpy.float32)
    damped = gptq.damped_hessian(2 / 400 * x.T @ x, 0.01)
    inverse = gptq.inverse_hessian(damped)
    config = keras.quantizers.GPTQConfig(None, None, **settings(bits, group_size, symmetric, act_order))
    # a block of 5 columns: groups that straddle blocks get their parameters again at the block's start
    theirs = keras_gptq.gptq_quantize_matrix(w, inverse, blocksize=5, group_size=group_size,
                                             activation_order=act_order, order_metric=numpy.diagonal(damped),
                                             compute_scale_zero=GPTQQuantizer(config).find_params)
    ours = gptq.gptq_quantize_matrix(
        w, inverse, blocksize=5, group_size=group_size, activation_order=act_order,
        order_metric=numpy.diagonal(damped), compute_scale_zero=lambda v: gptq.compute_quantization_parameters(
            v, bits=bits, symmetric=symmetric, per_channel=True, group_size=group_size))
    theirs = [keras.ops.convert_to_numpy(t) for t in theirs]
    assert_same_levels(ours[0], theirs[0])
    for mine, their in zip(ours[1:], theirs[1:]):
        assert mine.shape == their.shape
        numpy.testing.assert_allclose(mine, their, rtol=1e-5, atol=1e-6)


def dense_pair(rng, units, rows, **config):
    theirs = keras.layers.Dense(units, name="d")
    theirs.build((None, rows))
    ours = layers.Dense(units, name="d")
    ours.build((None, rows))
    theirs.set_weights([alternating(rng, (rows, units), 0), rng.standard_normal(units).astype(numpy.float32)])
    ours.set_weights([keras.ops.convert_to_numpy(v) for v in theirs.get_weights()])
    theirs.quantize("gptq", config=keras.quantizers.GPTQConfig(None, None, **config))
    ours.quantize("gptq", config=gpu_dl.quantizers.GPTQConfig(None, None, **config))
    return theirs, ours


def assert_same_gptq_weights(theirs, ours):
    levels = [to_numpy(ours.quantized_kernel.value), keras.ops.convert_to_numpy(theirs.quantized_kernel)]
    if ours.dtype_policy.weight_bits == 4:
        levels = [gpu_dl.quantizers.unpack_int4(v, ours.units, axis=0, dtype="uint8") for v in levels]
    assert_same_levels(*levels)
    for name in ("kernel_scale", "kernel_zero", "g_idx"):
        mine, their = to_numpy(getattr(ours, name).value), keras.ops.convert_to_numpy(getattr(theirs, name))
        assert (mine.shape, mine.dtype) == (their.shape, their.dtype), name
        numpy.testing.assert_allclose(mine, their, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("bits, group_size, symmetric, act_order", CASES)
def test_dense_layer_calibrated_as_keras_gptq_class(bits, group_size, symmetric, act_order):
    from keras.src.quantizers.gptq import GPTQ
    rng = numpy.random.default_rng(bits + group_size)
    config = settings(bits, group_size, symmetric, act_order)
    theirs, ours = dense_pair(rng, 9, 11, **config)
    batches = [rng.standard_normal((20, 5, 11)).astype(numpy.float32), rng.standard_normal((70, 11)).astype("float32")]
    their_state = GPTQ(theirs, keras.quantizers.GPTQConfig(None, None, **config))
    our_state = gptq.GPTQ(ours, gpu_dl.quantizers.GPTQConfig(None, None, **config))
    for batch in batches:
        their_state.update_hessian_with_batch(batch)
        our_state.update_hessian_with_batch(batch)
    numpy.testing.assert_allclose(our_state.hessian, keras.ops.convert_to_numpy(their_state.hessian), rtol=1e-5,
                                  atol=1e-6)
    their_state.quantize_and_correct_layer()
    our_state.quantize_and_correct_layer(cholesky=False)
    assert ours.dtype_policy.name == theirs.dtype_policy.name == f"gptq/{bits}/{group_size}_from_float32"
    assert_same_gptq_weights(theirs, ours)
    x = rng.standard_normal((4, 11)).astype(numpy.float32)
    numpy.testing.assert_allclose(to_numpy(ours(x)), x @ gptq.dequantized_kernel(ours, "float32")
                                  + to_numpy(ours.bias.value), rtol=1e-5, atol=1e-5)
    # Keras's forward is the same dequantization of its own variables
    levels = keras.ops.convert_to_numpy(theirs.quantized_kernel)
    if bits == 4:
        levels = gpu_dl.quantizers.unpack_int4(levels, 9, axis=0, dtype="uint8")
    groups = keras.ops.convert_to_numpy(theirs.g_idx).astype(numpy.int64)
    scale, zero = (keras.ops.convert_to_numpy(v)[:, groups] for v in (theirs.kernel_scale, theirs.kernel_zero))
    their_kernel = ((levels.astype(numpy.float32) - zero.astype(numpy.float32)) * scale).T
    numpy.testing.assert_allclose(keras.ops.convert_to_numpy(theirs(x)),
                                  x @ their_kernel + keras.ops.convert_to_numpy(theirs.bias), rtol=1e-5, atol=1e-5)


def model_config(lib, embedding, blocks, **kwargs):
    rng = numpy.random.default_rng(8)
    structure = {"pre_block_layers": [embedding], "sequential_blocks": blocks}
    return lib.quantizers.GPTQConfig([rng.integers(0, V, size=(1, S)) for _ in range(5)], ids, **{
        "num_samples": 3, "sequence_length": 6, "quantization_layer_structure": structure, **kwargs})


def test_keras_model_pass_gathers_no_hessian():
    """Keras 3.15 hooks ``call`` while its GPTQ layers run ``quantized_call``: its layers are quantized with an
    empty Hessian, which gpu_dl's GPTQ class reproduces when given no inputs; gpu_dl's model pass feeds the
    Hessians and gives a smaller output error on the calibration inputs."""
    rng = numpy.random.default_rng(2)
    theirs, their_embedding, *their_dense = token_model(None, keras)
    weights = [alternating(rng, w.shape, 0) for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours, our_embedding, *our_dense = token_model(None, gpu_dl)
    ours.set_weights(weights)
    options = dict(weight_bits=3, group_size=4, activation_order=True, sequence_length=S)
    theirs.quantize("gptq", config=model_config(keras, their_embedding, their_dense, **options))
    for layer in our_dense:
        layer.quantize("gptq", config=gpu_dl.quantizers.GPTQConfig(None, None, **options))
        state = gptq.GPTQ(layer, gpu_dl.quantizers.GPTQConfig(None, None, **options))
        state.quantize_and_correct_layer(cholesky=False)
    for their, mine in zip(their_dense, our_dense):
        assert_same_gptq_weights(their, mine)
    # gpu_dl's pass, on the same model and calibration windows, fits them better
    reference = token_model(None, gpu_dl)[0]
    reference.set_weights(weights)
    fed, fed_embedding, *fed_dense = token_model(None, gpu_dl)
    fed.set_weights(weights)
    config = model_config(gpu_dl, fed_embedding, fed_dense, **options)
    fed.quantize("gptq", config=config)
    windows = gpu_dl.quantization_calibration.get_dataloader(ids, S, config.dataset, 3)[:, 0]
    expected = reference.predict(windows, verbose=0)
    their_error = numpy.sum((keras.ops.convert_to_numpy(theirs.predict(windows, verbose=0)) - expected) ** 2)
    our_error = numpy.sum((fed.predict(windows, verbose=0) - expected) ** 2)
    assert our_error < 0.5 * their_error, (our_error, their_error)


def test_config_and_policy_as_keras():
    kwargs = dict(weight_bits=8, num_samples=3, per_channel=False, sequence_length=6, hessian_damping=0.2,
                  group_size=-1, symmetric=True, activation_order=True)
    ours, theirs = gpu_dl.quantizers.GPTQConfig(None, None, **kwargs), keras.quantizers.GPTQConfig(None, None,
                                                                                                   **kwargs)
    assert ours.get_config() == theirs.get_config()
    assert ours.dtype_policy_string() == theirs.dtype_policy_string()
    assert gpu_dl.quantizers.GPTQConfig(None, None).get_config() == keras.quantizers.GPTQConfig(None, None).get_config()
    policy = gpu_dl.dtype_policies.GPTQDTypePolicy("gptq/3/16", "float32")
    their_policy = keras.dtype_policies.GPTQDTypePolicy("gptq/3/16", "float32")
    assert (policy.name, policy.get_config()) == (their_policy.name, their_policy.get_config())
    assert keras.dtype_policies.deserialize(gpu_dl.dtype_policies.serialize(policy)) == their_policy
    for mode in ("gptq/4", "gptq/5/8", "gptq/4/0"):
        with pytest.raises(ValueError) as ours_error:
            gpu_dl.dtype_policies.GPTQDTypePolicy(mode, "float32")
        with pytest.raises(ValueError) as their_error:
            keras.dtype_policies.GPTQDTypePolicy(mode, "float32")
        assert str(ours_error.value) == str(their_error.value)


def test_model_files_both_ways(tmp_path):
    rng = numpy.random.default_rng(3)
    ours, embedding, *dense = token_model(None, gpu_dl)
    ours.set_weights([alternating(rng, w.shape, 0) for w in ours.get_weights()])
    ours.quantize("gptq", config=model_config(gpu_dl, embedding, dense, group_size=4))
    x = rng.integers(0, V, size=(3, S))
    y = ours.predict(x, verbose=0)
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    assert theirs.layers[2].dtype_policy.name == "gptq/4/4_from_float32"
    # float32 sums in another order: a tolerance on the outputs' scale
    tolerance = 1e-5 * float(numpy.abs(y).max())
    numpy.testing.assert_allclose(keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)), y, rtol=1e-5,
                                  atol=tolerance)
    # the weights file alone, into Keras layers made with the policy
    ours.save_weights(tmp_path / "g.weights.h5")
    inputs = keras.Input((S,), dtype="int32")
    hidden = keras.layers.Dense(H, activation="relu", dtype="gptq/4/4_from_float32")(keras.layers.Embedding(V, D)(
        inputs))
    fresh = keras.Model(inputs, keras.layers.Dense(O, dtype="gptq/4/4_from_float32")(hidden))
    fresh.load_weights(tmp_path / "g.weights.h5")
    numpy.testing.assert_allclose(keras.ops.convert_to_numpy(fresh.predict(x, verbose=0)), y, rtol=1e-5,
                                  atol=tolerance)
    # Keras 3.15 writes a GPTQ layer without its zero points (which its own loading then misses): gpu_dl refuses
    # the file rather than guess them
    theirs.save(tmp_path / "k.keras")
    with pytest.raises(ValueError, match="kernel_zero"):
        gpu_dl.models.load_model(tmp_path / "k.keras")


@pytest.mark.parametrize("equation, output_shape, bias_axes, input_shape", [
    ("ab,bc->ac", 9, "c", (11,)), ("abc,cde->abde", (5, 3, 4), "de", (5, 11)),
    ("abcd,cde->abe", (5, 11), "e", (5, 3, 4))])
def test_einsum_dense_calibrated_as_keras_gptq_class(tmp_path, equation, output_shape, bias_axes, input_shape):
    from keras.src.quantizers.gptq import GPTQ
    rng = numpy.random.default_rng(7)
    theirs = keras.layers.EinsumDense(equation, output_shape, bias_axes=bias_axes)
    theirs.build((None,) + input_shape)
    ours = layers.EinsumDense(equation, output_shape, bias_axes=bias_axes)
    ours.build((None,) + input_shape)
    weights = [rng.standard_normal(w.shape).astype(numpy.float32) for w in theirs.get_weights()]
    rows = 12 if equation.startswith("abcd") else 11
    # every input row of the 2-D view holds both signs
    weights[0] = alternating(rng, (rows, weights[0].size // rows), 0).reshape(weights[0].shape)
    theirs.set_weights(weights)
    ours.set_weights(weights)
    config = settings(4, 4, False, False)
    theirs.quantize("gptq", config=keras.quantizers.GPTQConfig(None, None, **config))
    ours.quantize("gptq", config=gpu_dl.quantizers.GPTQConfig(None, None, **config))
    their_state = GPTQ(theirs, keras.quantizers.GPTQConfig(None, None, **config))
    our_state = gptq.GPTQ(ours, gpu_dl.quantizers.GPTQConfig(None, None, **config))
    assert (our_state.rows, our_state.columns) == (their_state.rows, their_state.columns)
    x = rng.standard_normal((6,) + input_shape).astype(numpy.float32)
    their_state.update_hessian_with_batch(x.reshape(-1, their_state.rows))
    our_state.update_hessian_with_batch(x.reshape(-1, our_state.rows))
    their_state.quantize_and_correct_layer()
    our_state.quantize_and_correct_layer(cholesky=False)
    assert [(w.path, w.shape, str(w.dtype)) for w in ours.weights] == \
        [(w.path, tuple(w.shape), str(w.dtype)) for w in theirs.weights]
    assert ours.get_config() == {**theirs.get_config(), "quantization_config": ours.get_config()[
        "quantization_config"]}
    for name in ("quantized_kernel", "kernel_scale", "kernel_zero", "g_idx"):
        mine, their = to_numpy(getattr(ours, name).value), keras.ops.convert_to_numpy(getattr(theirs, name))
        numpy.testing.assert_allclose(mine, their, rtol=1e-5, atol=1e-6, err_msg=name)
    numpy.testing.assert_allclose(to_numpy(ours(x)), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-5)
    # a model of it saved by gpu_dl loads in Keras
    inputs = gpu_dl.Input(input_shape)
    model = gpu_dl.Model(inputs, ours(inputs))
    model.save(tmp_path / "e.keras")
    loaded = keras.models.load_model(tmp_path / "e.keras")
    numpy.testing.assert_allclose(keras.ops.convert_to_numpy(loaded.predict(x, verbose=0)), to_numpy(ours(x)),
                                  rtol=1e-5, atol=1e-5)
