"""Subclassed models: a Model subclass that makes its layers in __init__ and composes them in call, built from
the first data it sees by tracing its call, then fitted, evaluated, predicted, summarised and saved like a
functional model. Against Keras itself: tests/test_keras_oracle_composite_layers.py."""
import numpy
import pytest

import gpu_dl
from gpu_dl.backend import to_numpy

from composite_classes import classifier

Classifier = classifier(gpu_dl)


def _data(rng, n=48, features=5, classes=3):
    x = rng.standard_normal((n, features)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5)


def test_built_on_first_call_with_its_layers_weights(xp, rng):
    model = Classifier()
    assert not model.built and model.layers == [model.stem, model.block, model.drop, model.head]
    x, _ = _data(rng)
    y = model(xp.asarray(x))
    assert model.built and y.shape == (48, 3)
    assert [v.path for v in model.weights] == [v.path for layer in (model.stem, model.block, model.head)
                                              for v in layer.weights]
    assert model.count_params() == 5 * 6 + 6 + (6 * 6 + 6) * 2 + 12 + 6 * 3 + 3
    numpy.testing.assert_allclose(to_numpy(y).sum(axis=1), 1.0, rtol=1e-5)


def test_fit_evaluate_predict(xp, rng):
    x, y = _data(rng)
    model = Classifier()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = model.evaluate(x, y, verbose=0)[0]          # built by evaluate, from the data's shape
    history = model.fit(x, y, epochs=10, batch_size=16, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    assert model.evaluate(x, y, verbose=0)[0] < start
    predicted = model.predict(x, verbose=0)
    assert predicted.shape == (48, 3)
    numpy.testing.assert_allclose(predicted, to_numpy(model(x)), rtol=1e-5, atol=1e-6)


def test_summary_lists_its_layers(rng):
    model = Classifier(name="clf")
    lines = []
    # unbuilt, as Keras: its layers, of unknown shapes
    model.summary(print_fn=lambda text: lines.extend(text.splitlines()))
    assert lines[0] == 'Model: "clf"' and "0 (unbuilt)" in "\n".join(lines) and "(83, 3)" not in "\n".join(lines)
    with pytest.warns(UserWarning, match="unbuilt state"):
        model.build((None, 5))      # as Keras's: marks the model built, its layers are built by its first call
    lines = []
    model.summary(print_fn=lambda text: lines.extend(text.splitlines()))
    assert "Total params: 0 " in "\n".join(lines) and "0 (unbuilt)" in "\n".join(lines)
    model(numpy.zeros((4, 5), "float32"))
    lines = []
    model.summary(print_fn=lambda text: lines.extend(text.splitlines()))
    text = "\n".join(lines)
    assert 'Model: "clf"' in text
    # the output for the shape each layer's build recorded: built by the model's call, of its batch size
    for row in ("dense", "residual", "dropout", "(4, 3)"):
        assert row in text
    assert model.count_params() > 0 and f"Total params: {model.count_params()}" in text


def test_weights_and_keras_file_round_trip(tmp_path, rng):
    x, y = _data(rng)
    model = Classifier()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    model.save_weights(tmp_path / "m.weights.h5")
    other = Classifier()
    with pytest.warns(UserWarning, match="unbuilt state"):
        other.build((None, 5))      # load_weights builds its layers for that shape
    other.load_weights(tmp_path / "m.weights.h5")
    numpy.testing.assert_array_equal(model.predict(x, verbose=0), other.predict(x, verbose=0))
    for a, b in zip(model.get_weights(), other.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    # As in Keras, the .keras file names the class, which loading needs (custom_objects or the registry).
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="Classifier"):
        gpu_dl.models.load_model(tmp_path / "m.keras")
    restored = gpu_dl.models.load_model(tmp_path / "m.keras", custom_objects={"Classifier": Classifier})
    assert type(restored) is Classifier and restored.built
    numpy.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    # compiled, with the optimizer's state (its Dropout makes a training step's draws differ)
    assert restored.compiled and restored.optimizer.iterations == model.optimizer.iterations > 0


def test_as_a_layer_of_a_sequential_model(rng):
    x, y = _data(rng)
    inner = Classifier()
    model = gpu_dl.Sequential([gpu_dl.Input((5,)), gpu_dl.layers.Dense(5), inner])
    assert model.count_params() == 30 + inner.count_params()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    start = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=10, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0) < start


# ------------------------------------------------------------------ summary of a subclassed model's layers
def _two_dense(lib):
    L = lib.layers

    class TwoDense(lib.Model):
        def __init__(self):
            super().__init__()
            self.first = L.Dense(3)
            self.drop = L.Dropout(0.5)
            self.second = L.Dense(2)
            self.unused = L.Dense(5)

        def call(self, x):
            return self.second(self.drop(self.first(x)))
    return TwoDense()


def _shape_column(rows):
    return [(row[0].split(" ")[1], row[1], row[2]) for row in rows]


def test_subclassed_summary_shows_the_shapes_layers_were_built_for(monkeypatch):
    from keras_steps import summary_rows
    model = _two_dense(gpu_dl)
    model(numpy.zeros((2, 4), "float32"))
    rows, *_ = summary_rows(model, monkeypatch)
    # the output for the shape each build recorded (this call's batch size); '?' for a layer that records none
    assert _shape_column(rows) == [("(Dense)", "(2, 3)", "15"), ("(Dropout)", "?", "0"), ("(Dense)", "(2, 2)", "8"),
                                   ("(Dense)", "?", "0 (unbuilt)")]


def test_subclassed_summary_matches_keras(monkeypatch):
    keras = pytest.importorskip("keras")
    from keras_steps import assert_same_summary
    gpu_dl.backend.clear_session()
    keras.utils.clear_session()         # the same layer names on both sides
    ours, theirs = _two_dense(gpu_dl), _two_dense(keras)
    x = numpy.zeros((2, 4), "float32")
    ours(x)
    theirs(x)
    ours.set_weights(theirs.get_weights())
    assert_same_summary(ours, theirs, monkeypatch)
