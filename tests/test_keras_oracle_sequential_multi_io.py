"""A Sequential whose first layer has several inputs or whose last has several outputs, against Keras 3 itself
(where Keras is installed): the same outputs in the same structure, the same training steps and logs (Keras
names a Sequential's per-output logs after the losses and metrics where its last layer gives a list), the same
summary rows and plots, and files going both ways."""
import os
import re

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402


def several_inputs(lib):
    L = lib.layers
    a, b = lib.Input((3,), name="a"), lib.Input((4,), name="b")
    pair = lib.Model([a, b], L.Dense(5, activation="tanh", name="mix")(L.Concatenate(name="joined")([a, b])),
                     name="pair")
    return lib.Sequential([pair, L.Dense(2, name="head")], name="seq")


def several_outputs(lib, as_dict=False):
    L = lib.layers
    inp = lib.Input((3,), name="h_in")
    hidden = L.Dense(4, activation="tanh", name="shared")(inp)
    first, second = L.Dense(2, name="first")(hidden), L.Dense(1, name="second")(hidden)
    heads = lib.Model(inp, {"second": second, "first": first} if as_dict else [first, second], name="heads")
    return lib.Sequential([lib.Input((5,), name="x"), L.Dense(3, name="pre"), heads], name="seq")


BUILDERS = {"inputs": several_inputs, "outputs": several_outputs,
            "keyed": lambda lib: several_outputs(lib, as_dict=True)}


def _pair_of_models(kind, rng):
    """The model made by both libraries, Keras's with gpu_dl's weights. (Keras builds a Sequential of several
    inputs only when it is first called: its last layer has no weights before.)"""
    ours, theirs = BUILDERS[kind](gpu_dl), BUILDERS[kind](keras)
    if kind == "inputs":
        theirs(_x(kind, rng, 1))
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def _x(kind, rng, n):
    if kind == "inputs":
        return [rng.standard_normal((n, 3)).astype("float32"), rng.standard_normal((n, 4)).astype("float32")]
    return rng.standard_normal((n, 5)).astype("float32")


def _y(kind, rng, n):
    if kind == "inputs":
        return rng.standard_normal((n, 2)).astype("float32")
    first, second = rng.standard_normal((n, 2)).astype("float32"), rng.standard_normal((n, 1)).astype("float32")
    return {"first": first, "second": second} if kind == "keyed" else [first, second]


def _flat(value):
    """Arrays in a fixed order, and the structure they came in (a dict's keys in their order)."""
    if isinstance(value, dict):
        return [numpy.asarray(value[k]) for k in sorted(value)], ("dict", list(value))
    if isinstance(value, (list, tuple)):
        return [numpy.asarray(v) for v in value], type(value).__name__
    return [numpy.asarray(value)], "array"


def _host(value):
    if isinstance(value, dict):
        return {k: _host(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_host(v) for v in value)
    return value.detach().cpu().numpy() if hasattr(value, "detach") else backend.to_numpy(value)


def _assert_same(got, expected, rtol=1e-5, atol=1e-6):
    (got_arrays, got_kind), (arrays, kind) = _flat(got), _flat(expected)
    assert got_kind == kind
    for a, b in zip(got_arrays, arrays):
        numpy.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_outputs_and_their_structure_match_keras(kind, rng):
    ours, theirs = _pair_of_models(kind, rng)
    assert [w.shape for w in theirs.weights] == [w.shape for w in ours.weights]
    x = _x(kind, rng, 6)
    _assert_same(ours.predict(x, verbose=0), theirs.predict(x, verbose=0))
    _assert_same(_host(ours(x)), _host(theirs(x)))
    if kind == "inputs":
        named = {"a": x[0], "b": x[1]}
        _assert_same(ours.predict(named, verbose=0), theirs.predict(named, verbose=0))
        symbolic = ours([gpu_dl.Input((3,)), gpu_dl.Input((4,))]), theirs([keras.Input((3,)), keras.Input((4,))])
    else:
        symbolic = ours(gpu_dl.Input((5,))), theirs(keras.Input((5,)))
    shapes = [[tuple(t.shape) for t in (s.values() if isinstance(s, dict) else s if isinstance(s, list) else [s])]
              for s in symbolic]
    kinds = [type(s).__name__ if isinstance(s, (dict, list, tuple)) else "tensor" for s in symbolic]
    assert shapes[0] == shapes[1] and kinds[0] == kinds[1]


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_training_steps_and_logs_match_keras(kind, rng):
    backend.set_random_seed(1)
    ours, theirs = _pair_of_models(kind, rng)
    if kind == "inputs":
        settings = {"loss": "mse", "metrics": ["mae"]}
    elif kind == "outputs":
        # Two losses of one name share one log in Keras; a metric met again is numbered.
        settings = {"loss": ["mse", "mse"], "metrics": [["mae"], ["mse", "mae"]], "loss_weights": [1.0, 0.5]}
    else:
        settings = {"loss": {"first": "mse", "second": "mae"}, "metrics": {"second": ["mae"]}}
    ours.compile(optimizer="adam", **settings)
    theirs.compile(optimizer=keras.optimizers.Adam(), **settings)
    for step in range(3):
        x, y = _x(kind, rng, 6), _y(kind, rng, 6)
        got = ours.train_on_batch(x, y, return_dict=True)
        expected = {k: float(v) for k, v in theirs.train_on_batch(x, y, return_dict=True).items()}
        assert got == pytest.approx(expected, rel=2e-5, abs=1e-6), f"step {step}"
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    x, y = _x(kind, rng, 8), _y(kind, rng, 8)
    got = ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    expected = theirs.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    assert sorted(got) == sorted(expected)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), key


def test_summary_rows_of_several_outputs_match_keras():
    lines = {}
    for lib in (gpu_dl, keras):
        found = []
        several_outputs(lib).summary(print_fn=lambda line, *args, **kwargs: found.extend(line.split("\n")))
        lines[lib.__name__] = [" ".join(line.replace("│", " ").split()) for line in found
                               if "Dense)" in line or "Functional)" in line]
    assert lines["gpu_dl"] == lines["keras"]
    assert "heads (Functional) [(None, 2), (None, 1)] 31" in lines["keras"]


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_files_load_both_ways_and_resume_the_same(kind, tmp_path, rng):
    for writer, reader in ((gpu_dl, keras), (keras, gpu_dl)):
        backend.set_random_seed(2)
        keras.utils.set_random_seed(2)
        model = BUILDERS[kind](writer)
        model.compile(optimizer="adam", loss="mse" if kind == "inputs" else ["mse", "mae"])
        x, y = _x(kind, rng, 6), _y(kind, rng, 6)
        if kind == "keyed":
            y = [y["first"], y["second"]]
        model.fit(x, y, batch_size=3, verbose=0)
        path = tmp_path / f"{writer.__name__}_{kind}.keras"
        model.save(path)
        loaded = load_model(path) if reader is gpu_dl else keras.models.load_model(path)
        _assert_same(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
        x2, y2 = _x(kind, rng, 6), _y(kind, rng, 6)
        if kind == "keyed":
            y2 = [y2["first"], y2["second"]]
        assert loaded.train_on_batch(x2, y2, return_dict=True) == \
            pytest.approx({k: float(v) for k, v in model.train_on_batch(x2, y2, return_dict=True).items()},
                          rel=2e-5, abs=1e-6), f"{writer.__name__} -> {reader.__name__}"


@pytest.mark.parametrize("inside", [False, True])
@pytest.mark.parametrize("expand_nested", [False, True])
def test_plots_of_several_outputs_match_keras(inside, expand_nested):
    """The same nodes (shapes and dtypes of each output included) and edges, the Sequential alone or called in a
    functional model whose next layer takes both outputs."""
    pytest.importorskip("pydot")
    from keras.src.utils import model_visualization

    def made(lib):
        seq = several_outputs(lib)
        if not inside:
            return seq
        x = lib.Input((5,), name="outer_x")
        return lib.Model(x, lib.layers.Concatenate(name="both")(seq(x)), name="outer")

    def drawn(text):
        labels = dict(re.findall(r"^\s*(\d+) \[label=<(.*?)>, ", text, flags=re.M))
        edges = {(labels[a], labels[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+) ", text, flags=re.M)}
        return sorted(labels.values()), edges, sorted(re.findall(r"subgraph (\w+)", text))
    options = dict(show_shapes=True, show_dtype=True, show_layer_names=True, show_layer_activations=True,
                   show_trainable=True, expand_nested=expand_nested)
    ours = drawn(gpu_dl.utils.model_to_dot(made(gpu_dl), **options).to_string())
    theirs = drawn(model_visualization.model_to_dot(made(keras), **options).to_string())
    assert ours == theirs
    if not expand_nested:       # the node of the model of several outputs shows both
        assert any("[(None, 2), (None, 1)]" in label for label in theirs[0])
