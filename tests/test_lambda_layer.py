"""Lambda: a Python function as a layer, in code (Sequential and functional), on both backends; its output shape
given or found; masks and training passed as Keras passes them; no gradient but where none is needed; saved by
a function's name, never as code. Against Keras itself: tests/test_keras_oracle_lambda.py."""
import json
import zipfile

import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import array_module, to_numpy


def double(x, factor=2.0):
    return x * factor


def halve_shape(input_shape):
    return input_shape[:-1] + (input_shape[-1] // 2,)


def first_half(x):
    return x[..., : x.shape[-1] // 2]


def test_forward_on_arrays_with_arguments(xp, rng):
    x = rng.standard_normal((3, 17)).astype("float32")
    layer = layers.Lambda(double, arguments={"factor": 3.0})
    y = layer(xp.asarray(x))
    assert array_module(y) is xp and y.dtype == numpy.float32
    numpy.testing.assert_array_equal(to_numpy(y), x * 3.0)
    squared = layers.Lambda(lambda t: t ** 2)(xp.asarray(x))
    numpy.testing.assert_array_equal(to_numpy(squared), x ** 2)


def test_a_strided_result_comes_out_contiguous(xp, rng):
    x = rng.standard_normal((4, 6)).astype("float32")
    y = layers.Lambda(lambda t: t[:, ::-1].T)(xp.asarray(x))
    assert y.flags.c_contiguous
    numpy.testing.assert_array_equal(to_numpy(y), x[:, ::-1].T)


def test_floats_are_cast_to_its_dtype_and_integers_kept(xp):
    ids = xp.asarray(numpy.arange(12, dtype=numpy.int64).reshape(3, 4))
    y = layers.Lambda(lambda t: t % 5)(ids)
    assert y.dtype == numpy.int64
    numpy.testing.assert_array_equal(to_numpy(y), numpy.arange(12).reshape(3, 4) % 5)
    assert layers.Lambda(lambda t: t)(xp.ones((2, 3), dtype="float64")).dtype == numpy.float32
    assert layers.Lambda(lambda t: t, dtype="float64")(xp.ones((2, 3), dtype="float32")).dtype == numpy.float64


@pytest.mark.parametrize("function,input_shape,expected", [
    (lambda t: t[:, :2], (None, 5), (None, 2)),
    (lambda t: t.reshape(t.shape[0], -1), (None, 3, 4), (None, 12)),
    (lambda t: t.sum(axis=1), (None, None, 4), (None, 4)),
    (lambda t: t[:, :1] + t, (None, 7), (None, 7)),
    (lambda t: t.mean(axis=0, keepdims=True), (None, 3), (1, 3)),
    (lambda t: t, (4, None), (4, None)),
    (lambda t: t[:, :5], (None, None), (None, 5)),            # a slice of an axis of unknown length, as Keras has it
])
def test_output_shape_is_found_by_calling_the_function_on_zeros(xp, function, input_shape, expected):
    assert layers.Lambda(function).compute_output_shape(input_shape) == expected


def test_output_shape_given_as_a_tuple_or_a_function(xp):
    assert layers.Lambda(first_half, output_shape=(3,)).compute_output_shape((None, 6)) == (None, 3)
    assert layers.Lambda(first_half, output_shape=[4, None]).compute_output_shape((7, 8, 2)) == (7, 4, None)
    assert layers.Lambda(first_half, output_shape=halve_shape).compute_output_shape((None, 5, 6)) == (None, 5, 3)


def test_an_output_shape_it_cannot_find_is_an_error_saying_what_to_give(xp):
    def needs_six(t):
        return t.reshape(-1, 6)
    layer = layers.Lambda(needs_six, name="reshaper")
    with pytest.raises(ValueError, match=r"Lambda layer 'reshaper': could not find its output shape .*"
                                         r"output_shape=") as caught:
        layer.compute_output_shape((None, 5))
    assert isinstance(caught.value.__cause__, ValueError)
    with pytest.raises(ValueError, match="Lambda layer 'reshaper': could not find its output shape"):
        gpu_dl.Sequential([layers.Input((5,)), layer])
    model = gpu_dl.Sequential([layers.Input((5,)), layers.Dense(3)])
    with pytest.raises(ValueError, match="Lambda layer 'reshaper': could not find its output shape"):
        model.add(layers.Lambda(needs_six, name="reshaper"))
    assert len(model.layers) == 1 and model.output_shape == (None, 3)       # the model is as it was
    assert layers.Lambda(needs_six)(xp.ones((4, 3))).shape == (2, 6)      # a call on arrays just runs it


def test_in_sequential_and_functional_models(xp, rng):
    x = rng.standard_normal((5, 6)).astype("float32")
    gpu_dl.utils.set_random_seed(1)
    model = gpu_dl.Sequential([layers.Input((6,)), layers.Lambda(first_half), layers.Dense(2)])
    assert model.output_shape == (None, 2)
    kernel, bias = model.layers[1].get_weights()
    numpy.testing.assert_allclose(model.predict(x, verbose=0), x[:, :3] @ kernel + bias, rtol=1e-6)

    inputs = gpu_dl.Input((6,))
    branch = layers.Lambda(double, arguments={"factor": -1.0})(inputs)
    outputs = layers.Add()([layers.Dense(6)(inputs), branch])
    functional = gpu_dl.Model(inputs, outputs)
    dense = functional.layers[1] if isinstance(functional.layers[1], layers.Dense) else functional.layers[2]
    kernel, bias = dense.get_weights()
    numpy.testing.assert_allclose(functional.predict(x, verbose=0), x @ kernel + bias - x, rtol=1e-5, atol=1e-6)
    lines = []
    functional.summary(print_fn=lambda text: lines.extend(text.splitlines()))
    assert any("Lambda" in line for line in lines)


def test_a_function_naming_mask_and_training_gets_them(xp, rng):
    seen = {}

    def spy(t, mask=None, training=None):
        seen["mask"], seen["training"] = mask, training
        return t

    x = rng.standard_normal((2, 4, 3))
    x[0, 3:] = 0
    model = gpu_dl.Sequential([layers.Input((4, 3)), layers.Masking(), layers.Lambda(spy)])
    model(xp.asarray(x), training=True)
    numpy.testing.assert_array_equal(to_numpy(seen["mask"]), [[True, True, True, False], [True] * 4])
    assert seen["training"] is True
    model(xp.asarray(x))
    assert seen["training"] is False


def test_masks_as_keras_passes_them(xp, rng):
    x = rng.standard_normal((2, 4, 3))
    x[1, 2:] = 0
    kept = numpy.array([[True] * 4, [True, True, False, False]])

    def model(**kwargs):
        return gpu_dl.Sequential([layers.Input((4, 3)), layers.Masking(), layers.Lambda(lambda t: 2 * t, **kwargs)])
    with_function = model(mask=lambda inputs, mask: mask)
    with_function(xp.asarray(x))
    numpy.testing.assert_array_equal(to_numpy(with_function.output_mask), kept)
    constant = model(mask=numpy.array([[True, False, True, False]] * 2))
    constant(xp.asarray(x))
    assert array_module(constant.output_mask) is xp
    numpy.testing.assert_array_equal(to_numpy(constant.output_mask), [[True, False, True, False]] * 2)
    without = model()
    with pytest.warns(UserWarning, match=r"\(Lambda\) does not support masking"):
        without(xp.asarray(x))
    assert without.output_mask is None


def test_what_the_function_returns_must_be_one_array_of_the_input_s_module(xp):
    with pytest.raises(TypeError, match=r"Lambda layer 'bad': the function returned builtins.list .* must return one "
                                        "array"):
        layers.Lambda(lambda t: [t, t], name="bad")(xp.ones((2, 3)))
    if xp is not numpy:
        with pytest.raises(TypeError, match="returned numpy.ndarray for an input of cupy.ndarray"):
            layers.Lambda(lambda t: numpy.ones(t.shape), name="bad")(xp.ones((2, 3)))


def test_bad_arguments_name_the_layer():
    with pytest.raises(TypeError, match="Lambda layer 'f': function must be callable"):
        layers.Lambda(3, name="f")
    with pytest.raises(TypeError, match="Lambda layer 'f': arguments must be a dict"):
        layers.Lambda(double, arguments=[2.0], name="f")
    for bad in ((3, -1), ("a",), 3, (2.5,)):
        with pytest.raises(ValueError, match=r"Lambda layer 'f': output_shape .*must be a tuple of integers"):
            layers.Lambda(double, output_shape=bad, name="f")
    with pytest.raises(ValueError, match=r"Lambda layer 'f': output_shape\(input_shape\) must be a tuple"):
        layers.Lambda(double, output_shape=lambda s: "wide", name="f").compute_output_shape((None, 3))
    with pytest.raises(TypeError, match="Lambda layer 'f': mask must be None, a function"):
        layers.Lambda(double, mask=object(), name="f")


# ------------------------------------------------------------------ training
def _data(rng):
    x = rng.standard_normal((32, 6)).astype("float32")
    return x, (x[:, :3].sum(axis=1, keepdims=True) > 0).astype("float32")


def test_a_lambda_reading_the_model_input_trains(xp, rng):
    """As the first layer its input needs no gradient: the model trains, in Sequential and functional form."""
    x, y = _data(rng)
    gpu_dl.utils.set_random_seed(2)
    model = gpu_dl.Sequential([layers.Input((6,)), layers.Lambda(first_half), layers.Dense(1, activation="sigmoid")])
    inputs = gpu_dl.Input((6,))
    functional = gpu_dl.Model(inputs, layers.Dense(1, activation="sigmoid")(layers.Lambda(first_half)(inputs)))
    for m in (model, functional):
        m.compile(optimizer=gpu_dl.optimizers.Adam(0.05), loss="binary_crossentropy")
        before = m.evaluate(x, y, verbose=0)
        m.fit(x, y, epochs=20, batch_size=8, verbose=0)
        assert m.evaluate(x, y, verbose=0) < 0.5 * before


def test_training_through_a_lambda_is_an_error_naming_it(xp, rng):
    x, y = _data(rng)
    model = gpu_dl.Sequential([layers.Input((6,)), layers.Dense(4), layers.Lambda(double, name="scale"),
                               layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    weights = model.get_weights()
    with pytest.raises(NotImplementedError, match=r"Lambda layer 'scale' cannot pass a gradient back.*Layer "
                                                  r"subclass with call\(\) and backward\(\)"):
        model.fit(x, y, epochs=1, verbose=0)
    assert all(numpy.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    assert model.evaluate(x, y, verbose=0) > 0           # inference still works
    layer = layers.Lambda(double)
    with pytest.raises(RuntimeError, match="needs a preceding call with training=True"):
        layer.backward(xp.ones((2, 3)))


# ------------------------------------------------------------------ saving
def test_a_named_function_is_saved_by_name_and_found_through_custom_objects(xp, rng, tmp_path):
    x = rng.standard_normal((4, 6)).astype("float32")
    model = gpu_dl.Sequential([layers.Input((6,)), layers.Lambda(double, arguments={"factor": 0.5}),
                               layers.Lambda(first_half, output_shape=halve_shape), layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    config = json.loads(zipfile.ZipFile(tmp_path / "m.keras").read("config.json"))
    entry = config["config"]["layers"][1]["config"]
    assert entry["function"] == {"module": "builtins", "class_name": "function", "config": "double",
                                 "registered_name": "function"}
    assert entry["arguments"] == {"factor": 0.5}
    with pytest.raises(ValueError, match=r"layer 'lambda.*' \(Lambda\) \(function\) names the function 'double'.*"
                                         r"custom_objects="):
        gpu_dl.models.load_model(tmp_path / "m.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "m.keras",
                                      custom_objects={"double": double, "first_half": first_half,
                                                      "halve_shape": halve_shape})
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with gpu_dl.saving.custom_object_scope({"double": double, "first_half": first_half, "halve_shape": halve_shape}):
        scoped = gpu_dl.models.load_model(tmp_path / "m.keras")
    numpy.testing.assert_array_equal(scoped.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_registered_function_round_trips_through_get_config():
    @gpu_dl.saving.register_keras_serializable(package="LambdaTests")
    def negate(t):
        return -t

    layer = layers.Lambda(negate, output_shape=(3,), mask=numpy.array([True, False]), arguments={"w": numpy.ones(2)})
    config = layer.get_config()
    assert config["function"]["config"] == "LambdaTests>negate"
    assert config["mask"] == {"class_name": "__numpy__", "config": {"value": [True, False], "dtype": "bool"}}
    again = layers.Lambda.from_config(config)
    assert again.function is negate and again.get_config() == config
    numpy.testing.assert_array_equal(again.arguments["w"], numpy.ones(2))


def test_a_python_lambda_is_not_saved_as_code(xp, tmp_path):
    model = gpu_dl.Sequential([layers.Input((3,)), layers.Lambda(lambda t: t + 1, name="shift"), layers.Dense(2)])
    (tmp_path / "m.keras").write_bytes(b"before")
    with pytest.raises(ValueError, match=r"Lambda layer 'shift': its `function` is a Python lambda.*Define it with "
                                         r"def"):
        model.save(tmp_path / "m.keras")
    assert (tmp_path / "m.keras").read_bytes() == b"before"        # the file it would replace is left as it was
    with pytest.raises(ValueError, match="its `output_shape` is a Python lambda"):
        layers.Lambda(double, output_shape=lambda s: s).get_config()
    # The weights alone are saved, and load into the model rebuilt in code.
    model.save_weights(tmp_path / "m.weights.h5")
    rebuilt = gpu_dl.Sequential([layers.Input((3,)), layers.Lambda(lambda t: t + 1), layers.Dense(2)])
    rebuilt.load_weights(tmp_path / "m.weights.h5")
    x = numpy.ones((2, 3), "float32")
    numpy.testing.assert_array_equal(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_file_holding_a_lambda_as_bytecode_is_refused_and_its_weights_load(xp, tmp_path):
    """A '__lambda__' entry (how Keras writes a Python lambda) is refused before anything is built."""
    model = gpu_dl.Sequential([layers.Input((3,)), layers.Lambda(double, name="code"), layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["config"]["function"] = {
        "class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAAAAAAAAEAAAAD", "defaults": None, "closure": None}}
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "crafted.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match=r"crafted.keras \(config.json\): Lambda layer 'code' holds its `function` "
                                         r"as Python bytecode \(a '__lambda__' entry.*never runs code from a file.*"
                                         r"load_weights"):
        gpu_dl.models.load_model(tmp_path / "crafted.keras", safe_mode=False)
    rebuilt = gpu_dl.Sequential([layers.Input((3,)), layers.Lambda(double), layers.Dense(2)])
    rebuilt.load_weights(tmp_path / "crafted.keras")
    x = numpy.ones((2, 3), "float32")
    numpy.testing.assert_array_equal(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="holds its `function` as Python bytecode"):
        layers.Lambda.from_config({"name": "code", "function": config["config"]["layers"][1]["config"]["function"]})
