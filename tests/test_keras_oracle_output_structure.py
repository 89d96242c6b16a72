"""The structure of a model's outputs against Keras 3 itself (where Keras is installed): the same model made with
a dict, a list or a tuple of outputs (or inside a Sequential as its last layer) gives the same structure from a
call on arrays, from predict and from a call on tensors, with the same values; the targets forms Keras takes give
the same training steps."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402


def _model(lib, structure, outputs=1):
    L = lib.layers
    inp = lib.Input((3,), name="x")
    made = [L.Dense(2, name="first")(inp), L.Dense(1, name="second")(inp)][:outputs]
    if structure == "dict":
        return lib.Model(inp, {t._keras_history[0].name: t for t in reversed(made)})
    if structure == "tuple":
        return lib.Model(inp, tuple(made))
    if structure == "plain":
        return lib.Model(inp, made[0])
    return lib.Model(inp, made)


def _made(lib, structure, outputs, maker):
    model = _model(lib, structure, outputs)
    return lib.Sequential([lib.Input((3,)), model]) if maker == "sequential" else model


def _shape_of(value):
    """The structure with each array or tensor replaced by its shape (batch axis included); a dict as its items,
    so that the order of its keys counts."""
    if isinstance(value, dict):
        return ("dict", [(k, _shape_of(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return type(value)(_shape_of(v) for v in value)
    return tuple(value.shape)


def _values(value):
    if isinstance(value, dict):
        return [numpy.asarray(value[k]) for k in sorted(value)]
    if isinstance(value, (list, tuple)):
        return [numpy.asarray(v) for v in value]
    return [numpy.asarray(value)]


def _host(value):
    if isinstance(value, dict):
        return {k: _host(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_host(v) for v in value)
    return value.detach().cpu().numpy() if hasattr(value, "detach") else gpu_dl.backend.to_numpy(value)


# A Sequential gives the structure of its last layer; one of several outputs: test_keras_oracle_sequential_multi_io.py
CASES = [("model", structure, outputs) for structure, outputs in
         [("dict", 1), ("list", 1), ("tuple", 1), ("plain", 1), ("dict", 2), ("list", 2), ("tuple", 2)]] + \
    [("sequential", structure, 1) for structure in ("dict", "list", "tuple")]


@pytest.mark.parametrize("maker,structure,outputs", CASES)
def test_calls_and_predict_give_the_structure_keras_gives(rng, maker, structure, outputs):
    ours, theirs = _made(gpu_dl, structure, outputs, maker), _made(keras, structure, outputs, maker)
    theirs.set_weights(ours.get_weights())
    x = rng.standard_normal((5, 3)).astype("float32")
    for call in (lambda m: _host(m(x)), lambda m: m.predict(x, verbose=0), lambda m: m.predict_on_batch(x)):
        got, expected = call(ours), call(theirs)
        assert _shape_of(got) == _shape_of(expected)
        for a, b in zip(_values(got), _values(expected)):
            numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    got, expected = ours(gpu_dl.Input((3,))), theirs(keras.Input((3,)))
    assert _shape_of(got) == _shape_of(expected)


@pytest.mark.parametrize("structure", ["dict", "list", "plain"])
def test_one_output_targets_in_the_forms_keras_takes_train_the_same(rng, structure):
    ours, theirs = _model(gpu_dl, structure), _model(keras, structure)
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer="sgd", loss=["mse"], metrics=[["mae"]])
    theirs.compile(optimizer=keras.optimizers.SGD(), loss=["mse"], metrics=[["mae"]])
    x, y = rng.standard_normal((6, 3)).astype("float32"), rng.standard_normal((6, 2)).astype("float32")
    forms = [y, [y]] + ([{"first": y}] if structure == "dict" else [])
    for targets in forms:
        got = ours.train_on_batch(x, targets, return_dict=True)
        expected = theirs.train_on_batch(x, targets, return_dict=True)
        assert got == pytest.approx({k: float(v) for k, v in expected.items()}, rel=2e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def _shapes_of(value):
    """compute_output_shape's result with its structure spelled out: a dict as its items (their order counts), a
    list or tuple of shapes as that type, a shape as a tuple."""
    if isinstance(value, dict):
        return ("dict", [(k, _shapes_of(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
        return type(value)(_shapes_of(v) for v in value)
    return tuple(value)


@pytest.mark.parametrize("maker,structure,outputs", CASES)
def test_compute_output_shape_gives_the_structure_keras_gives(maker, structure, outputs):
    ours, theirs = _made(gpu_dl, structure, outputs, maker), _made(keras, structure, outputs, maker)
    for shape in ((None, 3), (7, 3)):
        assert _shapes_of(ours.compute_output_shape(shape)) == _shapes_of(theirs.compute_output_shape(shape))
    assert _shapes_of(ours.output_shape) == _shapes_of(theirs.output_shape)


@pytest.mark.parametrize("structure", ["dict", "list", "tuple"])
def test_compute_output_shape_of_several_inputs_and_of_an_outer_model(structure):
    def made(lib):
        L = lib.layers
        a, b = lib.Input((3,), name="a"), lib.Input((4,), name="b")
        first, second = L.Dense(2, name="first")(a), L.Dense(5, name="second")(L.Concatenate()([a, b]))
        outputs = {"second": second, "first": first} if structure == "dict" else \
            (first, second) if structure == "tuple" else [first, second]
        inner = lib.Model([a, b], outputs)
        x, z = lib.Input((3,), name="x"), lib.Input((4,), name="z")
        got = inner([x, z])
        got = [got["first"], got["second"]] if structure == "dict" else list(got)
        outer = lib.Model([x, z], [L.Dense(1, name="one")(got[0]), L.Dense(6, name="six")(got[1])])
        return inner, outer

    (ours, ours_outer), (theirs, theirs_outer) = made(gpu_dl), made(keras)
    shapes = [(None, 3), (None, 4)]
    assert _shapes_of(ours.compute_output_shape(shapes)) == _shapes_of(theirs.compute_output_shape(shapes))
    assert _shapes_of(ours_outer.compute_output_shape(shapes)) == \
        _shapes_of(theirs_outer.compute_output_shape(shapes)) == [(None, 1), (None, 6)]
    assert _shapes_of(ours.output_shape) == _shapes_of(theirs.output_shape)


SETTINGS = [dict(loss=["mse"]), dict(loss="mse", metrics=[["mae"]]), dict(loss=["huber"], metrics=[["mae", "mse"]]),
            dict(loss="mse", metrics=["mae", ["mse"]]), dict(loss=["mse"], metrics=[["mae"], ["mse"]])]


@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
@pytest.mark.parametrize("settings", range(len(SETTINGS)))
def test_one_output_keras_files_compiled_with_lists_load_compiled_the_same(tmp_path, rng, functional, settings):
    """A .keras file Keras writes for a model of one output compiled with a list of one loss, or metrics as
    lists, loads compiled as Keras loads it: the same logs before and after a training step."""
    L = keras.layers
    if functional:
        inp = keras.Input((3,), name="x")
        model = keras.Model(inp, L.Dense(2, name="out")(inp))
    else:
        model = keras.Sequential([keras.Input((3,)), L.Dense(2, name="out")])
    kwargs = dict(SETTINGS[settings])
    if settings == 1:
        kwargs["metrics"] = [[keras.metrics.MeanAbsoluteError(name="m_a_e")]]
    model.compile(optimizer=keras.optimizers.SGD(0.1), **kwargs)
    model.save(tmp_path / "m.keras")
    ours, theirs = gpu_dl.models.load_model(tmp_path / "m.keras"), keras.saving.load_model(tmp_path / "m.keras")
    x, y = rng.standard_normal((6, 3)).astype("float32"), rng.standard_normal((6, 2)).astype("float32")
    for step in (lambda m: m.evaluate(x, y, verbose=0, return_dict=True),
                 lambda m: m.train_on_batch(x, y, return_dict=True),
                 lambda m: m.evaluate(x, y, verbose=0, return_dict=True)):
        got, expected = step(ours), step(theirs)
        assert got == pytest.approx({k: float(v) for k, v in expected.items()}, rel=2e-5)


def _keyed_model(lib):
    L = lib.layers
    inp = lib.Input((3,), name="x")
    hidden = L.Dense(4, activation="tanh", name="hidden")(inp)
    # Keys unlike the layers' names, and sorted otherwise than the layers were made
    model = lib.Model(inp, {"z_cls": L.Dense(2, activation="softmax", name="cls")(hidden),
                            "a_reg": L.Dense(1, name="reg")(hidden)})
    model.compile("sgd", {"z_cls": "sparse_categorical_crossentropy", "a_reg": "mse"},
                  metrics={"z_cls": ["accuracy"], "a_reg": ["mae"]}, loss_weights={"a_reg": 0.5, "z_cls": 1.0})
    return model


def test_a_dict_of_outputs_keyed_otherwise_than_its_layers_trains_logs_predicts_and_saves_as_keras(rng, tmp_path):
    x = rng.standard_normal((10, 3)).astype("float32")
    y = {"z_cls": rng.integers(0, 2, 10), "a_reg": rng.standard_normal((10, 1)).astype("float32")}
    ours, theirs = _keyed_model(gpu_dl), _keyed_model(keras)
    theirs.set_weights(ours.get_weights())
    assert ours.output_names == theirs.output_names == ["reg", "cls"]     # by sorted key
    options = dict(batch_size=4, epochs=2, verbose=0, shuffle=False, validation_data=(x, y))
    got, want = ours.fit(x, y, **options).history, theirs.fit(x, y, **options).history
    assert sorted(got) == sorted(want) and "val_z_cls_accuracy" in got
    for key in want:
        numpy.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-6, err_msg=key)
    numpy.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-5)
    assert ours.metrics_names == theirs.metrics_names
    predicted, expected = ours.predict(x, verbose=0), theirs.predict(x, verbose=0)
    assert sorted(predicted) == sorted(expected) == ["a_reg", "z_cls"]
    for key in expected:
        numpy.testing.assert_allclose(predicted[key], expected[key], rtol=1e-5, atol=1e-6)
    ours.save(tmp_path / "g.keras")
    theirs.save(tmp_path / "k.keras")
    for loaded, reference in ((keras.models.load_model(tmp_path / "g.keras"), theirs),
                              (gpu_dl.models.load_model(tmp_path / "k.keras"), ours)):
        assert sorted(loaded.predict(x, verbose=0)) == ["a_reg", "z_cls"]
        got = loaded.evaluate(x, y, verbose=0, return_dict=True)
        want = reference.evaluate(x, y, verbose=0, return_dict=True)
        assert sorted(got) == sorted(want)
        for key in want:
            numpy.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
