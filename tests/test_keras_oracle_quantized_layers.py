"""int8- and int4-quantized models against Keras 3 (torch backend): the same weights quantized in both give the
same integer kernels, scales and predictions, bit for bit; the files each writes of a quantized model load in the
other and predict the same; training after quantization takes the same steps."""
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


def dense_model(lib, activation="softmax"):
    return lib.Sequential([lib.Input((7,)), lib.layers.Dense(9, activation="relu"),
                           lib.layers.Dense(4, use_bias=False), lib.layers.Dense(3, activation=activation)])


def embedding_model(lib):
    return lib.Sequential([lib.Input((5,), dtype="int32"), lib.layers.Embedding(11, 4), lib.layers.Flatten(),
                           lib.layers.Dense(3, activation="softmax")])


def ids(rng, batch):
    return rng.integers(0, 11, (batch, 5)).astype("int32")


def quantized_pair(make):
    theirs, ours = make(keras), make(gpu_dl)
    rng = numpy.random.default_rng(0)
    theirs.set_weights([rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # Keras warns of the layers it does not quantize
        theirs.quantize("int8")
    ours.quantize("int8")
    return theirs, ours


def test_quantized_weights_and_predictions_match():
    # no softmax at the end: the quantized layers' outputs match to the bit
    theirs, ours = quantized_pair(lambda lib: dense_model(lib, activation=None))
    assert [(w.path, w.dtype, tuple(w.shape), w.trainable) for w in ours.weights] == \
        [(w.path, w.dtype, tuple(w.shape), w.trainable) for w in theirs.weights]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert a.dtype == b.dtype
        numpy.testing.assert_array_equal(a, b)
    x = numpy.random.default_rng(1).standard_normal((6, 7)).astype("float32") * 3
    numpy.testing.assert_array_equal(ours.predict(x, verbose=0), theirs.predict(x, verbose=0))
    assert ours.get_config()["layers"][1]["config"]["dtype"] == theirs.get_config()["layers"][1]["config"]["dtype"]


def test_quantized_files_load_both_ways(tmp_path):
    theirs, ours = quantized_pair(dense_model)
    x = numpy.random.default_rng(2).standard_normal((5, 7)).astype("float32")
    expected = theirs.predict(x, verbose=0)
    theirs.save(tmp_path / "k.keras")
    theirs.save_weights(tmp_path / "k.weights.h5")
    ours.save(tmp_path / "g.keras")
    ours.save_weights(tmp_path / "g.weights.h5")

    loaded = gpu_dl.models.load_model(tmp_path / "k.keras")
    assert loaded.layers[0].dtype_policy.name == "int8_from_float32"
    numpy.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-7)
    numpy.testing.assert_allclose(keras.models.load_model(tmp_path / "g.keras").predict(x, verbose=0), expected,
                                  rtol=1e-6, atol=1e-7)

    _, ours_again = quantized_pair(dense_model)
    ours_again.load_weights(tmp_path / "k.weights.h5")
    numpy.testing.assert_allclose(ours_again.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-7)
    theirs_again, _ = quantized_pair(dense_model)
    theirs_again.load_weights(tmp_path / "g.weights.h5")
    numpy.testing.assert_array_equal(theirs_again.predict(x, verbose=0), expected)
    for a, b in zip(ours_again.get_weights() + theirs_again.get_weights(), theirs.get_weights() * 2):
        numpy.testing.assert_array_equal(a, b)


def test_training_after_quantization_matches():
    theirs, ours = quantized_pair(dense_model)
    frozen = [w.numpy().copy() for w in ours.non_trainable_weights]
    assert_training_steps_match(keras, ours, theirs, numpy.random.default_rng(3), (7,), 3, batch=4)
    assert all(numpy.array_equal(a, w.numpy()) for a, w in zip(frozen, ours.non_trainable_weights))


def test_quantized_embeddings_match():
    theirs, ours = quantized_pair(embedding_model)
    assert [(w.path, w.dtype) for w in ours.weights] == [(w.path, w.dtype) for w in theirs.weights]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    x = ids(numpy.random.default_rng(4), 6)
    numpy.testing.assert_array_equal(ours.layers[0](x), keras.ops.convert_to_numpy(theirs.layers[0](x)))
    assert_training_steps_match(keras, ours, theirs, numpy.random.default_rng(5), (5,), 3, batch=4, inputs=ids)


def test_quantized_embedding_files_load_both_ways(tmp_path):
    theirs, ours = quantized_pair(embedding_model)
    x = ids(numpy.random.default_rng(6), 4)
    theirs.save(tmp_path / "k.keras")
    ours.save(tmp_path / "g.keras")
    numpy.testing.assert_allclose(gpu_dl.models.load_model(tmp_path / "k.keras").predict(x, verbose=0),
                                  theirs.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    numpy.testing.assert_allclose(keras.models.load_model(tmp_path / "g.keras").predict(x, verbose=0),
                                  ours.predict(x, verbose=0), rtol=1e-6, atol=1e-7)


EINSUM_CASES = [("ab,bc->ac", (4,), (5,), "c"), ("abc,cd->abd", (3, 5), (3, 4), "d"),
                ("abc,cde->abde", (3, 4), (3, 2, 5), "de"), ("abcd,cde->abe", (3, 4, 5), (3, 6), "e"),
                ("abc,bcd->ad", (3, 4), (5,), "d")]


@pytest.mark.parametrize("equation, input_shape, output_shape, bias_axes", EINSUM_CASES)
def test_quantized_einsum_dense_matches(tmp_path, equation, input_shape, output_shape, bias_axes):
    def make(lib, activation=None):
        return lib.Sequential([lib.Input(input_shape), lib.layers.Dense(input_shape[-1], activation="relu"),
                               lib.layers.EinsumDense(equation, output_shape, bias_axes=bias_axes,
                                                      activation=activation)])
    theirs, ours = quantized_pair(make)
    assert [(w.path, w.dtype, tuple(w.shape)) for w in ours.weights] == \
        [(w.path, w.dtype, tuple(w.shape)) for w in theirs.weights]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    rng = numpy.random.default_rng(7)
    x = rng.standard_normal((3,) + input_shape).astype("float32")
    expected = theirs.predict(x, verbose=0)
    numpy.testing.assert_array_equal(ours.predict(x, verbose=0), expected)
    theirs.save(tmp_path / "k.keras")
    ours.save(tmp_path / "g.keras")
    numpy.testing.assert_array_equal(gpu_dl.models.load_model(tmp_path / "k.keras").predict(x, verbose=0), expected)
    numpy.testing.assert_array_equal(keras.models.load_model(tmp_path / "g.keras").predict(x, verbose=0), expected)
    # training reaches the first layer through the quantized one's inputs gradient
    ours.compile(optimizer="sgd", loss="mse")
    theirs.compile(optimizer="sgd", loss="mse")
    y = rng.standard_normal(expected.shape).astype("float32")
    for _ in range(2):
        assert ours.train_on_batch(x, y) == pytest.approx(float(theirs.train_on_batch(x, y)), rel=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_dtype_policy_map_configs_read_both_ways():
    theirs = keras.dtype_policies.DTypePolicyMap(default_policy="float32")
    theirs["head"] = "int8_from_float32"
    theirs["encoder/.*"] = "float32"
    ours = gpu_dl.dtype_policies.deserialize(keras.dtype_policies.serialize(theirs))
    assert gpu_dl.dtype_policies.serialize(ours) == keras.dtype_policies.serialize(theirs)
    back = keras.dtype_policies.deserialize(gpu_dl.dtype_policies.serialize(ours))
    for path in ("head", "encoder/dense", "other"):
        assert ours[path].name == back[path].name == theirs[path].name


@pytest.mark.parametrize("block_size, inputs_quantized", [(128, False), (None, False), (None, True), (64, False)])
def test_int4_dense_matches(tmp_path, block_size, inputs_quantized):
    def make(lib):
        return lib.Sequential([lib.Input((300,)), lib.layers.Dense(5, activation="relu"), lib.layers.Dense(3)])
    theirs, ours = make(keras), make(gpu_dl)
    rng = numpy.random.default_rng(8)
    theirs.set_weights([rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    quantize_int4(theirs, ours, block_size, inputs_quantized)
    assert [(w.path, w.dtype, tuple(w.shape)) for w in ours.weights] == \
        [(w.path, w.dtype, tuple(w.shape)) for w in theirs.weights]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    assert ours.layers[0].get_config()["dtype"] == theirs.layers[0].get_config()["dtype"]
    x = rng.standard_normal((4, 300)).astype("float32")
    assert_int4_files_and_training_match(tmp_path, theirs, ours, x, rng, (300,))


def quantize_int4(theirs, ours, block_size, inputs_quantized):
    """Both models quantized to int4 with the same config (its default block size where ``block_size`` is
    "default"; inputs quantized per row where ``inputs_quantized``)."""
    for lib, model in ((keras, theirs), (gpu_dl, ours)):
        quantizer = lib.quantizers.AbsMaxQuantizer() if inputs_quantized else None
        config = lib.quantizers.Int4QuantizationConfig(
            **({} if block_size == "default" else {"block_size": block_size}), activation_quantizer=quantizer)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")         # Keras warns of the layers it does not quantize
            model.quantize("int4", config=config)


def assert_int4_files_and_training_match(tmp_path, theirs, ours, x, rng, sample_shape, inputs=None):
    """int4 models' predictions on ``x``, each's .keras file loaded by the other library, and the next training
    steps (mse)."""
    expected = theirs.predict(x, verbose=0)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    theirs.save(tmp_path / "k.keras")
    ours.save(tmp_path / "g.keras")
    numpy.testing.assert_allclose(gpu_dl.models.load_model(tmp_path / "k.keras").predict(x, verbose=0), expected,
                                  rtol=1e-5, atol=1e-5)
    numpy.testing.assert_array_equal(keras.models.load_model(tmp_path / "g.keras").predict(x, verbose=0), expected)
    assert_training_steps_match(keras, ours, theirs, rng, sample_shape, 3, batch=4, loss="mse", inputs=inputs,
                                targets=lambda rng, batch: rng.standard_normal((batch,) + expected.shape[1:])
                                .astype("float32"))


def test_a_model_quantized_after_training_saves_and_loads_both_ways(tmp_path):
    # the optimizer keeps the slots of the float kernels (Keras's too): loading leaves its state out with a warning
    rng = numpy.random.default_rng(9)
    x, y = rng.standard_normal((8, 7)).astype("float32"), rng.standard_normal((8, 3)).astype("float32")
    files = {}
    for lib, name in ((keras, "k"), (gpu_dl, "g")):
        model = dense_model(lib, activation=None)
        model.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, epochs=1, batch_size=4, verbose=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.quantize("int8")
        model.fit(x, y, epochs=1, batch_size=4, verbose=0)
        model.save(tmp_path / f"{name}.keras")
        files[name] = model
    with pytest.warns(UserWarning, match="optimizer's state is not loaded"):
        ours = gpu_dl.models.load_model(tmp_path / "k.keras")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), files["k"].predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = keras.models.load_model(tmp_path / "g.keras")
    numpy.testing.assert_array_equal(theirs.predict(x, verbose=0), files["g"].predict(x, verbose=0))
    # the same file in Keras, its optimizer state left out as well: the same next training steps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs_again = keras.models.load_model(tmp_path / "k.keras")
    for _ in range(2):
        assert ours.train_on_batch(x, y) == pytest.approx(float(theirs_again.train_on_batch(x, y)), rel=1e-5)


@pytest.mark.parametrize("block_size", ["default", None, 64])
def test_int4_embedding_matches(tmp_path, block_size):
    def make(lib):
        return lib.Sequential([lib.Input((5,), dtype="int32"), lib.layers.Embedding(11, 150), lib.layers.Flatten(),
                               lib.layers.Dense(3)])
    theirs, ours = make(keras), make(gpu_dl)
    rng = numpy.random.default_rng(10)
    theirs.set_weights([rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    for lib, model in ((keras, theirs), (gpu_dl, ours)):
        config = None if block_size == "default" else lib.quantizers.Int4QuantizationConfig(block_size=block_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.quantize("int4", config=config)
    assert [(w.path, w.dtype, tuple(w.shape), w.trainable) for w in ours.weights] == \
        [(w.path, w.dtype, tuple(w.shape), w.trainable) for w in theirs.weights]
    assert ours.layers[0].weights[-1].name == ("embeddings_scale" if block_size is None else "g_idx")
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert a.dtype == b.dtype
        numpy.testing.assert_array_equal(a, b)
    assert ours.layers[0].get_config()["dtype"] == theirs.layers[0].get_config()["dtype"]
    x = ids(rng, 4)
    numpy.testing.assert_array_equal(ours.layers[0](x), keras.ops.convert_to_numpy(theirs.layers[0](x)))
    # the frozen table passes no gradient: the dense layer after it trains as in Keras
    assert_int4_files_and_training_match(tmp_path, theirs, ours, x, rng, (5,), inputs=ids)


@pytest.mark.parametrize("num_bits, narrow_range", [(8, False), (4, True)])
def test_fake_quantization_files_load_both_ways(tmp_path, num_bits, narrow_range):
    def make(lib):
        inputs = lib.Input((4,))
        hidden = lib.layers.Dense(6)(inputs)
        outputs = lib.quantizers.fake_quant_with_min_max_vars(hidden, -1.5, 2.0, num_bits=num_bits,
                                                              narrow_range=narrow_range)
        return lib.Model(inputs, lib.layers.Dense(2)(outputs))
    theirs, ours = make(keras), make(gpu_dl)
    rng = numpy.random.default_rng(11)
    theirs.set_weights([rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    x = rng.standard_normal((8, 4)).astype("float32")
    expected = ours.predict(x, verbose=0)
    float_model = gpu_dl.Model(ours.inputs, ours.layers[-1](ours.layers[1].output))
    assert numpy.abs(float_model.predict(x, verbose=0) - expected).max() > 1e-3    # the quantization shows
    if num_bits == 8 and not narrow_range:
        # Keras's symbolic call records its operation with the default settings whatever it is given, so only
        # these compare with the model Keras builds; the file gpu_dl writes keeps the settings given
        numpy.testing.assert_allclose(expected, theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    theirs.save(tmp_path / "k.keras")
    ours.save(tmp_path / "g.keras")
    numpy.testing.assert_allclose(gpu_dl.models.load_model(tmp_path / "k.keras").predict(x, verbose=0),
                                  theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    numpy.testing.assert_array_equal(gpu_dl.models.load_model(tmp_path / "g.keras").predict(x, verbose=0), expected)
    theirs = keras.models.load_model(tmp_path / "g.keras")
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    # the operation trains: its straight-through gradient reaches the first layer as Keras's does
    ours.compile(optimizer="sgd", loss="mse")
    theirs.compile(optimizer="sgd", loss="mse")
    y = rng.standard_normal((8, 2)).astype("float32")
    for _ in range(2):
        assert ours.train_on_batch(x, y) == pytest.approx(float(theirs.train_on_batch(x, y)), rel=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("block_size, inputs_quantized", [("default", False), (None, False), (None, True), (2, False)])
@pytest.mark.parametrize("equation, input_shape, output_shape, bias_axes",
                         EINSUM_CASES + [("abc,dc->abd", (3, 4), (3, 5), None)])
def test_int4_einsum_dense_matches(tmp_path, equation, input_shape, output_shape, bias_axes, block_size,
                                   inputs_quantized):
    def make(lib):
        return lib.Sequential([lib.Input(input_shape), lib.layers.Dense(input_shape[-1], activation="relu"),
                               lib.layers.EinsumDense(equation, output_shape, bias_axes=bias_axes)])
    theirs, ours = make(keras), make(gpu_dl)
    rng = numpy.random.default_rng(12)
    theirs.set_weights([rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    quantize_int4(theirs, ours, block_size, inputs_quantized)
    assert [(w.path, w.dtype, tuple(w.shape), w.trainable) for w in ours.weights] == \
        [(w.path, w.dtype, tuple(w.shape), w.trainable) for w in theirs.weights]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert a.dtype == b.dtype
        numpy.testing.assert_array_equal(a, b)
    assert ours.layers[1].get_config()["dtype"] == theirs.layers[1].get_config()["dtype"]
    x = rng.standard_normal((3,) + input_shape).astype("float32")
    assert_int4_files_and_training_match(tmp_path, theirs, ours, x, rng, input_shape)
