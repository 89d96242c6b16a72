"""LoRA on Dense, EinsumDense, Embedding and Conv1D/2D/3D: the adapter weights' names, shapes and flags, the
forward against a NumPy merged kernel, float64 finite differences for a, b and the input, training that moves
only a and b (and the bias), the config, the files (merged on save, a and b zeroed on load) and the errors; on
quantized Dense, EinsumDense and Embedding the low-rank path against NumPy and its adapters' gradients.
One body per backend."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.models import load_model
from gradcheck import assert_gradient


def _conv(kernel, x, rank):
    """A 'valid', stride-1 convolution of channels-last ``x`` with ``kernel`` (spatial..., cin, cout)."""
    spatial = kernel.shape[:rank]
    windows = numpy.lib.stride_tricks.sliding_window_view(x, spatial, axis=tuple(range(1, rank + 1)))
    # windows: (batch, out..., cin, k...) -> contract k... and cin with the kernel
    letters = "defg"[:rank]
    return numpy.einsum(f"b{letters.upper()}c{letters},{letters}co->b{letters.upper()}o", windows, kernel)


# (name, make(**lora), input shape, integer ids?, expected(x, merged kernel, bias))
CASES = [
    ("dense", lambda **k: layers.Dense(3, **k), (4, 5), False, lambda x, w, b: x @ w + b),
    ("einsum", lambda **k: layers.EinsumDense("abc,cde->abde", (None, 2, 3), bias_axes="e", **k), (2, 3, 5), False,
     lambda x, w, b: numpy.einsum("abc,cde->abde", x, w) + b),
    ("conv1d", lambda **k: layers.Conv1D(3, 2, **k), (2, 6, 4), False, lambda x, w, b: _conv(w, x, 1) + b),
    ("conv2d", lambda **k: layers.Conv2D(4, (2, 3), **k), (2, 5, 4, 3), False, lambda x, w, b: _conv(w, x, 2) + b),
    ("conv3d", lambda **k: layers.Conv3D(3, 2, **k), (1, 3, 4, 3, 2), False, lambda x, w, b: _conv(w, x, 3) + b),
    ("embedding", lambda **k: layers.Embedding(7, 3, **k), (3, 5), True, lambda x, w, b: w[x]),
]
IDS = [c[0] for c in CASES]


def _adapters(layer):
    return getattr(layer, f"lora_{layer.lora_weight}_a"), getattr(layer, f"lora_{layer.lora_weight}_b")


def _base(layer):
    return layer.__dict__["_" + layer.lora_weight]


def _inputs(rng, shape, ids):
    return rng.integers(0, 7, shape) if ids else rng.standard_normal(shape)


def _assert_adapter_gradients(forward, direction, adapters, rng, what):
    """Each adapter's ``grad`` (set by the backward of ``direction``) against float64 finite differences of
    ``sum(forward() * direction)`` in its values."""
    for var in adapters:
        grad, original = var.grad, var.value.copy()
        assert grad is not None

        def f(value, var=var, original=original):
            var.value[...] = value
            out = float(to_numpy((forward() * direction).sum()))
            var.value[...] = original
            return out
        assert_gradient(f, original.copy(), grad, rng, what=f"{what} {var.name}")


@pytest.fixture(autouse=True)
def fresh_names():
    gpu_dl.backend.clear_session()


@pytest.mark.parametrize("name,make,shape,ids,expected", CASES, ids=IDS)
def test_weights_forward_and_gradients(xp, rng, name, make, shape, ids, expected):
    layer = make(lora_rank=2, lora_alpha=6, dtype="float64")
    host = _inputs(rng, shape, ids)
    x = xp.asarray(host)
    layer(x)
    weight = layer.lora_weight
    base = _base(layer)
    a, b = _adapters(layer)
    assert (a.name, b.name) == (f"lora_{weight}_a", f"lora_{weight}_b")
    assert a.path == f"{layer.name}/lora_{weight}_a"
    assert a.shape == base.shape[:-1] + (2,) and b.shape == (2, base.shape[-1])
    assert a.dtype == numpy.float32 and b.dtype == numpy.float32       # Keras keeps them float32
    assert not base.trainable and a.trainable and b.trainable
    assert [v.name for v in layer.weights][-2:] == [a.name, b.name]
    assert [v.name for v in layer.trainable_weights] == [v.name for v in layer.weights if v is not base]
    assert numpy.all(to_numpy(b.value) == 0)                           # zeros: LoRA starts as the identity
    # Dense and Embedding build with lora_alpha = rank, as Keras's do; the convolutions and EinsumDense keep it
    alpha = 2 if name in ("dense", "embedding") else 6
    assert layer.lora_alpha == alpha and layer.lora_enabled and layer.lora_rank == 2

    # a and b in float64, so that finite differences check them
    for var in (a, b):
        var.value = xp.asarray(rng.standard_normal(var.shape))
    w = base.numpy() + a.numpy() @ b.numpy() * (alpha / 2)
    numpy.testing.assert_allclose(numpy.asarray(getattr(layer, weight)), w, rtol=1e-12, atol=1e-12)
    bias = layer.bias.numpy() if getattr(layer, "bias", None) is not None else 0
    y = layer(x, training=True)
    numpy.testing.assert_allclose(to_numpy(y), expected(host, w, bias), rtol=1e-10, atol=1e-10)

    direction = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(direction)
    assert base.grad is None                                           # the frozen weight takes none
    if not ids:
        assert_gradient(lambda value: float(to_numpy((layer(value) * direction).sum())), x, dx, rng,
                        what=f"{name} input")
    assert a.grad.dtype == numpy.float64 and b.grad.dtype == numpy.float64
    _assert_adapter_gradients(lambda: layer(x), direction, (a, b), rng, name)


@pytest.mark.parametrize("name,make,shape,ids,expected", CASES, ids=IDS)
def test_fit_moves_only_the_adapters_and_files_hold_the_merged_weight(xp, rng, tmp_path, name, make, shape, ids,
                                                                       expected):
    layer = make(lora_rank=2)
    x = _inputs(rng, shape, ids).astype("int32" if ids else "float32")
    model = gpu_dl.Sequential([layers.Input(shape[1:], dtype="int32" if ids else "float32"), layer])
    a, b = _adapters(layer)
    base = _base(layer)
    frozen, a0 = base.numpy(), a.numpy()
    target = rng.standard_normal(model.predict(x, verbose=0).shape).astype("float32")
    model.compile("sgd", "mse")
    model.fit(x, target, epochs=2, batch_size=2, verbose=0)
    numpy.testing.assert_array_equal(base.numpy(), frozen)
    assert numpy.abs(b.numpy()).max() > 0 and numpy.abs(a.numpy() - a0).max() > 0
    before = model.predict(x, verbose=0)

    store = {}
    layer.save_own_variables(store)
    merged = numpy.asarray(getattr(layer, layer.lora_weight))
    assert len(store) == len(layer.weights) - 2
    numpy.testing.assert_array_equal(numpy.asarray(store["0"]), merged)

    model.save(tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    loaded = again.layers[-1]
    assert loaded.lora_enabled and loaded.lora_rank == 2
    for var in _adapters(loaded):
        assert not numpy.any(var.numpy())                               # zeroed on load, as Keras does
    numpy.testing.assert_allclose(_base(loaded).numpy(), merged, rtol=0, atol=0)
    numpy.testing.assert_allclose(again.predict(x, verbose=0), before, rtol=1e-6, atol=1e-6)

    # load_own_variables into a layer with LoRA enabled takes the merged weight and zeroes a and b
    a.assign(numpy.ones(a.shape, "float32"))
    layer.load_own_variables(store)
    numpy.testing.assert_array_equal(base.numpy(), merged)
    assert not numpy.any(a.numpy()) and not numpy.any(b.numpy())


def test_enable_lora_after_build_and_its_errors():
    layer = layers.Dense(3, name="d")
    with pytest.raises(ValueError, match="Cannot enable lora on a layer that isn't yet built"):
        layer.enable_lora(2)
    layer.build((None, 4))
    assert layer.get_config().get("lora_rank") is None and "lora_alpha" not in layer.get_config()
    layer.enable_lora(3, lora_alpha=6, a_initializer="ones", b_initializer="ones")
    assert (layer.lora_rank, layer.lora_alpha) == (3, 6)
    numpy.testing.assert_array_equal(layer.lora_kernel_a.numpy(), numpy.ones((4, 3)))
    numpy.testing.assert_allclose(numpy.asarray(layer.kernel), layer._kernel.numpy() + 3 * 2, rtol=1e-6, atol=1e-6)
    config = layer.get_config()
    assert (config["lora_rank"], config["lora_alpha"]) == (3, 6)
    with pytest.raises(ValueError, match="lora is already enabled"):
        layer.enable_lora(2)
    with pytest.raises(ValueError, match=r"Dense layer 'd'.*quantizing a layer with LoRA enabled to 'float8'"):
        layer.quantize("float8")

    constrained = layers.Conv2D(2, 2, kernel_constraint="non_neg")
    constrained.build((None, 4, 4, 1))
    with pytest.raises(ValueError, match="Lora is incompatible with kernel constraints.*kernel_constraint"):
        constrained.enable_lora(2)
    table = layers.Embedding(5, 2, embeddings_constraint="non_neg")
    table.build((None,))
    with pytest.raises(ValueError, match="Lora is incompatible with embedding constraints.*embeddings_constraint"):
        table.enable_lora(2)

    quantized = layers.EinsumDense("ab,bc->ac", 3, name="q")
    quantized.build((None, 4))
    quantized.quantize("float8")
    with pytest.raises(ValueError, match=r"EinsumDense layer 'q'.*LoRA on a quantized layer"):
        quantized.enable_lora(2)
    with pytest.raises(ValueError, match=r"ReversibleEmbedding layer 'q'.*LoRA on a quantized layer"):
        layers.ReversibleEmbedding(5, 3, lora_rank=2, dtype="int8_from_float32", name="q").build((None,))
    reversible = layers.ReversibleEmbedding(5, 3, lora_rank=2, name="r")
    reversible.build((None,))
    with pytest.raises(ValueError, match=r"ReversibleEmbedding layer 'r'.*quantizing a layer with LoRA enabled"):
        reversible.quantize("int8")
    # the low-rank path multiplies b along the output's last axis: the kernel's last label must be there
    transposed = layers.EinsumDense("abc,cd->adb", (4, 3), name="t")
    transposed.build((2, 3, 5))
    transposed.quantize("int8")
    transposed.enable_lora(2)
    with pytest.raises(ValueError, match=r"EinsumDense layer 't'.*kernel's last label must be the output's last"):
        transposed(numpy.ones((2, 3, 5), "float32"))
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"EinsumDense layer 'e'.*lora_rank.*positive integer"):
            layers.EinsumDense("ab,bc->ac", 4, lora_rank=bad, name="e")
    with pytest.raises(ValueError, match=r"Embedding layer 'm'.*lora_alpha"):
        layers.Embedding(5, 2, lora_rank=2, lora_alpha=0, name="m")
    scaled = layers.EinsumDense("ab,bc->ac", 4, lora_rank=4, lora_alpha=2.5)       # any positive number
    scaled.build((None, 3))
    scaled.lora_kernel_b.assign(numpy.ones((4, 4), "float32"))
    want = scaled._kernel.numpy() + scaled.lora_kernel_a.numpy() @ numpy.ones((4, 4)) * (2.5 / 4)
    numpy.testing.assert_allclose(numpy.asarray(scaled.kernel), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,make,shape,ids,expected", CASES, ids=IDS)
def test_config_round_trip(name, make, shape, ids, expected):
    layer = make(lora_rank=4, lora_alpha=8)
    config = layer.get_config()
    assert (config["lora_rank"], config["lora_alpha"]) == (4, 8)
    again = type(layer).from_config(config)
    assert (again.lora_rank, again.lora_alpha, again.lora_enabled) == (4, 8, False)
    assert "lora_rank" not in make().get_config()


def test_regularizer_reaches_the_adapters_not_the_frozen_kernel():
    layer = layers.Dense(2, kernel_regularizer=gpu_dl.regularizers.L2(0.5), lora_rank=1)
    layer.build((None, 3))
    layer.lora_kernel_b.assign(numpy.ones((1, 2), "float32"))
    a, b = layer.lora_kernel_a.numpy(), layer.lora_kernel_b.numpy()
    want = 0.5 * (numpy.square(a).sum() + numpy.square(b).sum())
    numpy.testing.assert_allclose(float(sum(to_numpy(v) for v in layer.losses)), want, rtol=1e-6)


def test_frozen_layer_gives_no_adapter_gradients(rng):
    layer = layers.Dense(2, lora_rank=1)
    x = rng.standard_normal((3, 4)).astype("float32")
    layer(x)
    layer.trainable = False
    assert layer.trainable_weights == []
    layer(x, training=True)
    layer.backward(numpy.ones((3, 2), "float32"))
    assert layer.lora_kernel_a.grad is None and layer.lora_kernel_b.grad is None


QUANTIZED = [("int8", None), ("int4", None), ("int4", 8)]


def _quantized_dense(mode, block_size, dtype="float32", units=5, inputs=20):
    from gpu_dl import quantizers
    layer = layers.Dense(units, dtype=dtype)
    layer.build((None, inputs))
    config = None if mode == "int8" else quantizers.Int4QuantizationConfig(block_size=block_size)
    layer.quantize(mode, config=config)
    return layer


@pytest.mark.parametrize("mode,block_size", QUANTIZED)
def test_lora_on_a_quantized_dense_adds_the_low_rank_path(xp, rng, mode, block_size):
    layer = _quantized_dense(mode, block_size, dtype="float64")
    x = xp.asarray(rng.standard_normal((3, 20)))
    plain = to_numpy(layer(x))
    quantized_kernel = layer.kernel.numpy()
    layer.enable_lora(2, lora_alpha=3)
    a, b = layer.lora_kernel_a, layer.lora_kernel_b
    assert (a.shape, b.shape) == ((20, 2), (2, 5))
    assert [v.name for v in layer.trainable_weights] == ["bias", "lora_kernel_a", "lora_kernel_b"]
    numpy.testing.assert_array_equal(to_numpy(layer(x)), plain)    # b starts at zeros
    for var in (a, b):
        var.value = xp.asarray(rng.standard_normal(var.shape))
    y = layer(x, training=True)
    want = plain + to_numpy(x) @ a.numpy() @ b.numpy() * 1.5
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=1e-10, atol=1e-10)

    direction = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(direction)
    assert layer._kernel.grad is None
    _assert_adapter_gradients(lambda: layer(x), direction, (a, b), rng, mode)
    # the low-rank path's input gradient adds to the one through the quantized kernel (b zeroed: none)
    a_value, b_value = a.numpy(), b.numpy()
    b.value[...] = 0
    layer(x, training=True)
    dx_plain = layer.backward(direction)
    numpy.testing.assert_allclose(to_numpy(dx) - to_numpy(dx_plain),
                                  to_numpy(direction) @ b_value.T @ a_value.T * 1.5, rtol=1e-9, atol=1e-9)
    numpy.testing.assert_array_equal(layer._kernel.numpy(), quantized_kernel)


@pytest.mark.parametrize("mode,block_size", QUANTIZED)
def test_quantized_lora_model_trains_the_adapters_and_saves_requantized(xp, rng, tmp_path, mode, block_size):
    from gpu_dl import quantizers
    model = gpu_dl.Sequential([layers.Input((20,)), layers.Dense(5)])
    config = None if mode == "int8" else quantizers.Int4QuantizationConfig(block_size=block_size)
    model.quantize(mode, config=config)
    layer = model.layers[-1]
    layer.enable_lora(2)
    assert layer.lora_kernel_a.path == layer._kernel.path.rsplit("/", 1)[0] + "/lora_kernel_a"
    frozen = [v.numpy() for v in layer.non_trainable_weights]
    x = rng.standard_normal((8, 20)).astype("float32")
    model.compile("sgd", "mse")
    model.fit(x, rng.standard_normal((8, 5)).astype("float32"), epochs=2, batch_size=4, verbose=0)
    for var, value in zip(layer.non_trainable_weights, frozen):
        numpy.testing.assert_array_equal(var.numpy(), value)
    assert numpy.abs(layer.lora_kernel_b.numpy()).max() > 0
    merged = model.predict(x, verbose=0)

    store = {}
    layer.save_own_variables(store)
    assert len(store) == len(layer.weights) - 2
    saved = layers.Dense(5, dtype=layer.dtype_policy, lora_rank=2)
    saved.build((None, 20))
    saved.load_own_variables(store)
    # the file's kernel is the merged one quantized again: it predicts what the adapted layer does, to the
    # quantization's error
    step = numpy.abs(merged).max() / (127 if mode == "int8" else 7)
    numpy.testing.assert_allclose(numpy.asarray(saved(x)), merged, atol=2 * step)

    model.save(tmp_path / "q.keras")
    again = load_model(tmp_path / "q.keras")
    loaded = again.layers[-1]
    assert loaded.lora_enabled and loaded.dtype_policy.quantization_mode == mode
    assert not numpy.any(loaded.lora_kernel_a.numpy()) and not numpy.any(loaded.lora_kernel_b.numpy())
    numpy.testing.assert_allclose(again.predict(x, verbose=0), numpy.asarray(saved(x)), rtol=1e-5, atol=1e-5)


def test_tied_reversible_embedding_reverse_call_trains_the_adapters(xp, rng):
    layer = layers.ReversibleEmbedding(7, 3, lora_rank=2, dtype="float64")
    layer.build((None, 5))
    assert [v.name for v in layer.trainable_weights] == ["lora_embeddings_a", "lora_embeddings_b"]
    a, b = layer.lora_embeddings_a, layer.lora_embeddings_b
    for var in (a, b):
        var.value = xp.asarray(rng.standard_normal(var.shape))
    hidden = xp.asarray(rng.standard_normal((2, 4, 3)))
    merged = layer._embeddings.numpy() + a.numpy() @ b.numpy()
    logits = layer(hidden, reverse=True, training=True)
    numpy.testing.assert_allclose(to_numpy(logits), to_numpy(hidden) @ merged.T, rtol=1e-12, atol=1e-12)
    direction = xp.asarray(rng.standard_normal(logits.shape))
    layer.backward(direction)
    assert layer._embeddings.grad is None
    _assert_adapter_gradients(lambda: layer(hidden, reverse=True), direction, (a, b), rng, "reverse")


# EinsumDense and Embedding with LoRA on a quantized weight: (id, make(dtype), inputs(rng), h(x, a) the low-rank
# path's product with a, the input gradient of h given dh and a (None: ids), integer ids?)
QUANTIZED_OTHERS = [
    ("einsum", lambda dtype: layers.EinsumDense("abc,cde->abde", (None, 2, 5), bias_axes="e", dtype=dtype),
     lambda rng: rng.standard_normal((2, 3, 20)), lambda x, a: numpy.einsum("abc,cdr->abdr", x, a),
     lambda dh, a: numpy.einsum("abdr,cdr->abc", dh, a)),
    ("embedding", lambda dtype: layers.Embedding(20, 12, dtype=dtype), lambda rng: rng.integers(0, 20, (3, 4)),
     lambda ids, a: a[ids], None),
]


@pytest.mark.parametrize("name,make,inputs,low_rank,low_rank_dx", QUANTIZED_OTHERS,
                         ids=[c[0] for c in QUANTIZED_OTHERS])
@pytest.mark.parametrize("mode,block_size", QUANTIZED)
@pytest.mark.parametrize("order", ["quantize first", "lora first"])
def test_lora_on_quantized_einsum_dense_and_embedding(xp, rng, name, make, inputs, low_rank, low_rank_dx, mode,
                                                      block_size, order):
    from gpu_dl import quantizers
    layer = make("float64")
    host = inputs(rng)
    x = xp.asarray(host)
    layer(x)
    config = None if mode == "int8" else quantizers.Int4QuantizationConfig(block_size=block_size)
    if order == "lora first":
        layer.enable_lora(2, lora_alpha=3)
        frozen = _base(layer).numpy()
        layer.quantize(mode, config=config)
        assert not _base(layer).trainable and _base(layer).dtype == numpy.int8
    else:
        layer.quantize(mode, config=config)
        frozen = None
        layer.enable_lora(2, lora_alpha=3)
    a, b = _adapters(layer)
    assert [v.name for v in layer.trainable_weights[-2:]] == [a.name, b.name] and a.trainable and b.trainable
    plain = to_numpy(layer(x))             # b starts at zeros: the quantized output
    for var in (a, b):
        var.value = xp.asarray(rng.standard_normal(var.shape))
    a_value, b_value = a.numpy(), b.numpy()
    y = layer(x, training=True)
    numpy.testing.assert_allclose(to_numpy(y), plain + low_rank(host, a_value) @ b_value * 1.5, rtol=1e-10,
                                  atol=1e-10)
    # Keras's weight attribute: the integer values (unpacked) plus the scaled low-rank product
    values = _base(layer).numpy()
    weight_shape = a_value.shape[:-1] + b_value.shape[-1:]
    if mode == "int4":
        values = quantizers.unpack_int4(values, int(numpy.prod(weight_shape)) // values.shape[0], axis=-1)
    numpy.testing.assert_allclose(numpy.asarray(getattr(layer, layer.lora_weight)),
                                  values.reshape(weight_shape) + a_value @ b_value * 1.5, rtol=1e-12, atol=1e-12)
    if frozen is not None:
        # quantized from the frozen weight, not the merged one: it dequantizes to the frozen weight
        step = numpy.abs(frozen).max() / (127 if mode == "int8" else 7)
        numpy.testing.assert_allclose(to_numpy(layer._lora_dequantized()), frozen, atol=step * (1 if block_size
                                                                                               else 0.51))

    direction = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(direction)
    assert _base(layer).grad is None
    _assert_adapter_gradients(lambda: layer(x), direction, (a, b), rng, f"{name} {mode}")
    if low_rank_dx is None:
        assert dx is None
        return
    # the low-rank path's input gradient adds to the one through the quantized kernel (b zeroed: none)
    b.value[...] = 0
    layer(x, training=True)
    dx_plain = layer.backward(direction)
    numpy.testing.assert_allclose(to_numpy(dx) - to_numpy(dx_plain),
                                  low_rank_dx(to_numpy(direction) @ b_value.T * 1.5, a_value), rtol=1e-9, atol=1e-9)
