"""Trees of models with one layer in two places, against Keras 3 itself (where Keras is installed): the same
weights listed once, the same outputs, training steps and summaries; weights files of either library load in the
other and hold the same entries (the layer saved once); and neither library's load_model rebuilds the sharing
from a .keras file (Keras 3.15 fails on its own files too). Also the places in a Sequential where both refuse a
model of several inputs or outputs. TimeDistributed(model) is checked with the other
nested models in tests/test_keras_oracle_nested.py."""
import io
import os
import re
import warnings
import zipfile

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


def outer_and_inner(lib):
    """A Dense in an inner functional model and in the outer one."""
    L = lib.layers
    shared = L.Dense(3, activation="tanh", name="shared")
    i = lib.Input((3,), name="inner_in")
    inner = lib.Model(i, L.Dense(3, name="other")(shared(i)), name="inner")
    x = lib.Input((3,), name="x")
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(shared(inner(x))), name="outer")


def two_inner(lib):
    """A Dense in two inner models, one a Sequential."""
    L = lib.layers
    common = L.Dense(3, activation="tanh", name="common")
    i = lib.Input((3,), name="first_in")
    first = lib.Model(i, common(i), name="first")
    second = lib.Sequential([lib.Input((3,), name="second_in"), common, L.Dense(3, name="other")], name="second")
    x = lib.Input((3,), name="x")
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(second(first(x))), name="outer")


def in_sequentials(lib):
    L = lib.layers
    shared = L.Dense(3, activation="tanh", name="shared")
    inner = lib.Sequential([lib.Input((3,), name="inner_in"), shared, L.Dense(3, name="other")], name="inner")
    return lib.Sequential([lib.Input((3,), name="x"), inner, shared, L.Dense(3, activation="softmax", name="probs")],
                          name="outer")


BUILDERS = {"outer_and_inner": outer_and_inner, "two_inner": two_inner, "in_sequentials": in_sequentials}


def _h5(path):
    import h5py
    data = path.read_bytes() if path.suffix == ".h5" else zipfile.ZipFile(path).read("model.weights.h5")
    found = {}
    with h5py.File(io.BytesIO(data), "r") as h5:
        h5.visititems(lambda name, obj: found.__setitem__(name, getattr(obj, "shape", None)))
    return found


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_weights_outputs_summary_and_training_steps_match_keras(name, rng, monkeypatch):
    backend.set_random_seed(0)
    ours, theirs = BUILDERS[name](gpu_dl), BUILDERS[name](keras)
    assert [tuple(v.shape) for v in ours.weights] == [tuple(v.shape) for v in theirs.weights]
    assert [v.path.split("/")[-2:] for v in ours.weights] == [v.path.split("/")[-2:] for v in theirs.weights]
    assert ours.count_params() == theirs.count_params() == 36
    theirs.set_weights(ours.get_weights())
    x = rng.standard_normal((5, 3)).astype("float32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=2e-5, atol=2e-6)
    monkeypatch.setenv("COLUMNS", "250")
    for expand in (False, True):
        lines, captured = [], []
        ours.summary(print_fn=lines.append, expand_nested=expand)
        theirs.summary(print_fn=lambda line, **kwargs: captured.append(line), expand_nested=expand)

        def rows(text):
            return [re.sub(r"\s+", " ", line) for line in text.splitlines() if line.startswith("│")
                    or "params:" in line]
        assert rows("\n".join(lines)) == rows("\n".join(captured))
    assert_training_steps_match(keras, ours, theirs, rng, (3,), 3, 6)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_weights_files_both_ways_and_load_model_refused_as_keras_fails(name, tmp_path, rng):
    backend.set_random_seed(1)
    ours, theirs = BUILDERS[name](gpu_dl), BUILDERS[name](keras)
    x = rng.standard_normal((6, 3)).astype("float32")
    ours.save_weights(tmp_path / "g.weights.h5")
    theirs.load_weights(tmp_path / "g.weights.h5")
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=2e-5, atol=2e-6)
    theirs.save_weights(tmp_path / "k.weights.h5")
    assert _h5(tmp_path / "g.weights.h5") == _h5(tmp_path / "k.weights.h5")
    fresh = BUILDERS[name](gpu_dl)
    fresh.load_weights(tmp_path / "k.weights.h5")
    numpy.testing.assert_allclose(fresh.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=2e-5, atol=2e-6)

    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    y = rng.integers(0, 3, 6)
    ours.fit(x, y, verbose=0)
    theirs.fit(x, y, verbose=0)
    ours.save(tmp_path / "g.keras")
    theirs.save(tmp_path / "k.keras")
    assert _h5(tmp_path / "g.keras") == _h5(tmp_path / "k.keras")
    with pytest.raises(ValueError, match="expected 2 variables, but received 0 variables"), warnings.catch_warnings():
        warnings.simplefilter("ignore")     # Keras warns of the optimizer and groups it cannot match first
        keras.models.load_model(tmp_path / "k.keras")
    for path in ("g.keras", "k.keras"):
        with pytest.raises(ValueError, match=r"in two places of its tree of models.*load_weights"):
            load_model(tmp_path / path)


def test_keras_refuses_a_model_of_several_inputs_or_outputs_inside_a_sequential_as_gpu_dl_does():
    """Keras 3 refuses these two; gpu_dl refuses them too. (The very first or last place, where both take such
    a model: tests/test_keras_oracle_sequential_multi_io.py.)"""
    L = keras.layers
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    pair = keras.Model([a, b], L.Add()([a, b]), name="pair")
    with pytest.raises(ValueError, match=r"expects 2 named input\(s\).*received 1 input tensors"):
        keras.Sequential([keras.Input((3,)), pair])
    i = keras.Input((3,))
    two = keras.Model(i, [L.Dense(2)(i), L.Dense(1)(i)], name="two")
    with pytest.raises(ValueError, match=r"expects 1 input\(s\), but it received 2 input tensors"):
        keras.Sequential([keras.Input((3,)), two, L.Dense(2)])
    ga, gb = gpu_dl.Input((3,)), gpu_dl.Input((3,))
    with pytest.raises(ValueError, match="takes 2 inputs: a model of several inputs can only be a Sequential's very "
                                         "first layer"):
        gpu_dl.Sequential([gpu_dl.Input((3,)), gpu_dl.Model([ga, gb], gpu_dl.layers.Add()([ga, gb]))])
    gi = gpu_dl.Input((3,))
    with pytest.raises(ValueError, match="which gives 2 outputs: a model of several outputs can only be a "
                                         "Sequential's last layer"):
        gpu_dl.Sequential([gpu_dl.Input((3,)),
                           gpu_dl.Model(gi, [gpu_dl.layers.Dense(2)(gi), gpu_dl.layers.Dense(1)(gi)]),
                           gpu_dl.layers.Dense(2)])
