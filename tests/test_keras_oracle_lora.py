"""LoRA against Keras 3 itself (where Keras is installed): for Dense, EinsumDense, Embedding and Conv1D/2D/3D both
libraries give the same adapter weights (names, paths, shapes, dtypes, trainable flags), the same config entries
and lora_alpha after build, the same outputs and merged kernel for the same weights, the same losses and weights
after training steps, the same store from save_own_variables, and .keras files of LoRA models that each library
reads from the other with the same predictions (LoRA merged into the kernel, the adapters zeroed on load). On int8
and int4 Dense, EinsumDense and Embedding, with LoRA enabled before or after quantizing, the same variables,
outputs, weight attribute, SGD steps, store and files."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402

from keras_steps import assert_training_steps_match  # noqa: E402

# (id, make(lib, **lora), sample shape, integer ids?)
CASES = [
    ("dense", lambda lib, **k: lib.layers.Dense(3, **k), (5,), False),
    ("einsum", lambda lib, **k: lib.layers.EinsumDense("abc,cde->abde", (None, 2, 3), bias_axes="e", **k), (3, 5),
     False),
    ("conv1d", lambda lib, **k: lib.layers.Conv1D(3, 2, **k), (6, 4), False),
    ("conv2d", lambda lib, **k: lib.layers.Conv2D(4, (2, 3), padding="same", **k), (5, 4, 3), False),
    ("conv3d", lambda lib, **k: lib.layers.Conv3D(3, 2, **k), (3, 4, 3, 2), False),
    ("embedding", lambda lib, **k: lib.layers.Embedding(7, 3, **k), (5,), True),
    ("reversible", lambda lib, **k: lib.layers.ReversibleEmbedding(7, 3, **k), (5,), True),
]
IDS = [c[0] for c in CASES]


@pytest.fixture(autouse=True)
def fresh_sessions():
    # names and paths compared carry process-wide counts in both libraries
    keras.utils.clear_session()
    gpu_dl.backend.clear_session()
    yield
    keras.utils.clear_session()
    gpu_dl.backend.clear_session()


def _inputs(rng, batch, shape, ids):
    return rng.integers(0, 7, (batch,) + shape).astype("int32") if ids else \
        rng.standard_normal((batch,) + shape).astype("float32")


def _model(lib, make, shape, ids, **lora):
    return lib.Sequential([lib.Input(shape, dtype="int32" if ids else "float32"), make(lib, **lora)])


def _random_weights(rng, layer):
    return [rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()]


@pytest.mark.parametrize("name,make,shape,ids", CASES, ids=IDS)
@pytest.mark.parametrize("how", ["argument", "enable_lora"])
def test_same_weights_config_outputs_and_merged_kernel(name, make, shape, ids, how):
    rng = numpy.random.default_rng(3)
    pair = []
    for lib in (gpu_dl, keras):
        layer = make(lib, lora_rank=2, lora_alpha=6) if how == "argument" else make(lib)
        layer.build((None,) + shape)
        if how == "enable_lora":
            layer.enable_lora(2, lora_alpha=6)
        pair.append(layer)
    ours, theirs = pair
    assert [(v.path, tuple(v.shape), str(v.dtype).replace("torch.", ""), v.trainable) for v in ours.weights] == \
        [(v.path, tuple(v.shape), str(v.dtype).replace("torch.", ""), v.trainable) for v in theirs.weights]
    assert [v.path for v in ours.trainable_weights] == [v.path for v in theirs.trainable_weights]
    assert (ours.lora_rank, ours.lora_alpha, ours.lora_enabled) == \
        (theirs.lora_rank, theirs.lora_alpha, theirs.lora_enabled)
    ours_config, theirs_config = ours.get_config(), theirs.get_config()
    assert {k: ours_config.get(k) for k in ("lora_rank", "lora_alpha")} == \
        {k: theirs_config.get(k) for k in ("lora_rank", "lora_alpha")}
    assert set(theirs_config) <= set(ours_config) | {"input_length"}

    weights = _random_weights(rng, theirs)
    ours.set_weights(weights)
    theirs.set_weights(weights)
    attribute = "embeddings" if name in ("embedding", "reversible") else "kernel"
    numpy.testing.assert_allclose(numpy.asarray(getattr(ours, attribute)),
                                  keras.ops.convert_to_numpy(getattr(theirs, attribute)), rtol=1e-6, atol=1e-6)
    x = _inputs(rng, 2, shape, ids)
    numpy.testing.assert_allclose(numpy.asarray(ours(x)), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5,
                                  atol=1e-5)
    ours_store, theirs_store = {}, {}
    ours.save_own_variables(ours_store)
    theirs.save_own_variables(theirs_store)
    assert list(ours_store) == list(theirs_store)
    for key in theirs_store:
        numpy.testing.assert_allclose(numpy.asarray(ours_store[key]),
                                      keras.ops.convert_to_numpy(theirs_store[key]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,make,shape,ids", CASES, ids=IDS)
def test_same_training_steps(name, make, shape, ids):
    rng = numpy.random.default_rng(4)
    ours, theirs = (_model(lib, make, shape, ids, lora_rank=2, lora_alpha=4) for lib in (gpu_dl, keras))
    ours.set_weights(_random_weights(rng, ours))
    out_shape = ours.predict(_inputs(rng, 1, shape, ids), verbose=0).shape[1:]
    frozen = ours.layers[-1].weights[0].numpy()
    assert_training_steps_match(keras, ours, theirs, rng, shape, None, 4, steps=3, optimizer="SGD", loss="mse",
                                targets=lambda rng, batch: rng.standard_normal((batch,) + out_shape).astype("float32"),
                                inputs=lambda rng, batch: _inputs(rng, batch, shape, ids))
    numpy.testing.assert_array_equal(ours.layers[-1].weights[0].numpy(), frozen)


def test_regularization_losses_match():
    rng = numpy.random.default_rng(5)
    pair = [lib.layers.Dense(3, kernel_regularizer=lib.regularizers.L2(0.3), lora_rank=2) for lib in (gpu_dl, keras)]
    for layer in pair:
        layer.build((None, 4))
    weights = _random_weights(rng, pair[1])
    for layer in pair:
        layer.set_weights(weights)
    ours, theirs = (float(sum(numpy.asarray(keras.ops.convert_to_numpy(v)) for v in layer.losses))
                    for layer in pair)
    assert ours == pytest.approx(theirs, rel=1e-6)


@pytest.mark.parametrize("name,make,shape,ids", CASES, ids=IDS)
def test_files_load_both_ways(tmp_path, name, make, shape, ids):
    rng = numpy.random.default_rng(6)
    x = _inputs(rng, 4, shape, ids)
    for writer, reader in ((keras, gpu_dl), (gpu_dl, keras)):
        writer.utils.clear_session() if writer is keras else gpu_dl.backend.clear_session()
        model = _model(writer, make, shape, ids, lora_rank=2, lora_alpha=4)
        model.set_weights(_random_weights(rng, model))
        expected = numpy.asarray(model.predict(x, verbose=0))
        path = tmp_path / f"{writer.__name__}.keras"
        model.save(path)
        loaded = load_model(path) if reader is gpu_dl else keras.models.load_model(path)
        layer = loaded.layers[-1]
        assert layer.lora_enabled and layer.lora_rank == 2
        weight = "embeddings" if name in ("embedding", "reversible") else "kernel"
        for suffix in "ab":
            assert not numpy.any(numpy.asarray(keras.ops.convert_to_numpy(getattr(layer, f"lora_{weight}_"
                                                                                         f"{suffix}"))))
        numpy.testing.assert_allclose(numpy.asarray(loaded.predict(x, verbose=0)), expected, rtol=1e-5, atol=1e-5)


# (id, make(lib), sample shape, integer ids?, output sample shape): the layers that take LoRA on int8/int4 weights
QUANTIZED_CASES = {
    "dense": (lambda lib: lib.layers.Dense(5), (20,), False, (5,)),
    "einsum": (lambda lib: lib.layers.EinsumDense("abc,cde->abde", (None, 2, 5), bias_axes="e"), (3, 20), False,
               (3, 2, 5)),
    "embedding": (lambda lib: lib.layers.Embedding(20, 12), (4,), True, (4, 12)),
}

def _quantized_pair(mode, block_size, order, kind="dense"):
    make, shape, ids, _ = QUANTIZED_CASES[kind]
    pair = [_model(lib, lambda lib, **k: make(lib), shape, ids) for lib in (gpu_dl, keras)]
    weights = _random_weights(numpy.random.default_rng(7), pair[1])
    for lib, model in zip((gpu_dl, keras), pair):
        model.set_weights(weights)
        config = None if mode == "int8" else lib.quantizers.Int4QuantizationConfig(block_size=block_size)
        if order == "quantize first":
            model.quantize(mode, config=config)
            model.layers[0].enable_lora(2, lora_alpha=4)
        else:
            model.layers[0].enable_lora(2, lora_alpha=4)
            model.quantize(mode, config=config)
    return pair


@pytest.mark.parametrize("kind", list(QUANTIZED_CASES))
@pytest.mark.parametrize("mode,block_size,order", [("int8", None, "quantize first"), ("int4", None, "lora first"),
                                                   ("int4", 8, "quantize first"), ("int4", 8, "lora first")])
def test_lora_on_quantized_layers(tmp_path, mode, block_size, order, kind):
    _, shape, ids, out_shape = QUANTIZED_CASES[kind]
    rng = numpy.random.default_rng(8)
    ours, theirs = _quantized_pair(mode, block_size, order, kind)
    assert [(v.path, tuple(v.shape), v.dtype, v.trainable) for v in ours.weights] == \
        [(v.path, tuple(v.shape), v.dtype, v.trainable) for v in theirs.weights]
    weights = [keras.ops.convert_to_numpy(v) for v in theirs.weights]
    weights = [rng.standard_normal(w.shape).astype("float32") if v.trainable else w
               for w, v in zip(weights, theirs.weights)]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    x = _inputs(rng, 4, shape, ids)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-4)
    # the weight attribute: the integer values (unpacked) plus the low-rank product, in the compute dtype
    name = "embeddings" if ids else "kernel"
    mine, reference = getattr(ours.layers[0], name), getattr(theirs.layers[0], name)
    assert mine.shape == tuple(reference.shape) and mine.dtype == numpy.float32
    numpy.testing.assert_allclose(numpy.asarray(mine), keras.ops.convert_to_numpy(reference), rtol=1e-6, atol=1e-5)
    assert_training_steps_match(keras, ours, theirs, rng, shape, None, 4, steps=3, optimizer="SGD", loss="mse",
                                targets=lambda rng, batch: rng.standard_normal((batch,) + out_shape).astype("float32"),
                                inputs=lambda rng, batch: _inputs(rng, batch, shape, ids))
    ours_store, theirs_store = {}, {}
    ours.layers[0].save_own_variables(ours_store)
    theirs.layers[0].save_own_variables(theirs_store)
    assert list(ours_store) == list(theirs_store)
    for key in theirs_store:
        mine, reference = numpy.asarray(ours_store[key]), keras.ops.convert_to_numpy(theirs_store[key])
        assert mine.dtype == reference.dtype and mine.shape == reference.shape
        # a value on a rounding boundary may quantize one step apart (a packed byte: one step in either nibble)
        if mine.dtype.kind == "i" and mode == "int4" and key == "0":
            mine, reference = (gpu_dl.quantizers.unpack_int4(v, v.shape[-1] * 2, axis=-1) for v in (mine, reference))
        numpy.testing.assert_allclose(mine.astype("float64"), reference, rtol=1e-5, atol=1.01 if
                                      mine.dtype.kind == "i" else 1e-5)
    for model, name in ((ours, "g"), (theirs, "k")):
        model.save(tmp_path / f"{name}.keras")
    # each file read by both libraries: the same LoRA layer on the same requantized weight, adapters zeroed
    for name in "gk":
        mine, reference = load_model(tmp_path / f"{name}.keras"), keras.models.load_model(tmp_path / f"{name}.keras")
        assert mine.layers[0].lora_enabled and reference.layers[0].lora_enabled
        assert mine.layers[0].dtype_policy.name == reference.layers[0].dtype_policy.name
        assert not numpy.any(_adapter(mine.layers[0], "b").numpy())
        numpy.testing.assert_allclose(mine.predict(x, verbose=0), reference.predict(x, verbose=0), rtol=1e-5,
                                      atol=1e-4)
    # the weights files too: each library's read by the other, into the trained pair (adapters zeroed on load)
    ours.save_weights(tmp_path / "g.weights.h5")
    theirs.save_weights(tmp_path / "k.weights.h5")
    ours.load_weights(tmp_path / "k.weights.h5")
    theirs.load_weights(tmp_path / "g.weights.h5")
    assert not numpy.any(_adapter(ours.layers[0], "a").numpy())
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-4)


def _adapter(layer, which):
    return getattr(layer, f"lora_{layer.lora_weight}_{which}")


def test_reverse_call_of_a_tied_reversible_embedding():
    rng = numpy.random.default_rng(9)
    pair = [lib.layers.ReversibleEmbedding(7, 3, lora_rank=2, logit_soft_cap=5.0) for lib in (gpu_dl, keras)]
    for layer in pair:
        layer.build((None, 5))
    weights = _random_weights(rng, pair[1])
    for layer in pair:
        layer.set_weights(weights)
    hidden = rng.standard_normal((2, 5, 3)).astype("float32")
    numpy.testing.assert_allclose(numpy.asarray(pair[0](hidden, reverse=True)),
                                  keras.ops.convert_to_numpy(pair[1](hidden, reverse=True)), rtol=1e-5, atol=1e-5)
