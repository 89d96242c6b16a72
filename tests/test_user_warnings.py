"""The warnings users see name the user's own line: the fit, evaluate, predict, save, load or constructor call that
led there (or a line of the user's own train_step), whatever depth inside gpu_dl raised them, with their text and
category kept."""
import inspect
import warnings

import numpy
import pytest

import gpu_dl
from gpu_dl import callbacks, layers

N = 8


@pytest.fixture(autouse=True)
def cpu(on_cpu):
    """Warnings come from the loops, the same on both backends."""


def _model(units=2):
    inputs = gpu_dl.Input((3,))
    model = gpu_dl.Model(inputs, layers.Dense(units)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    return model


def _data(units=2):
    rng = numpy.random.default_rng(0)
    return rng.standard_normal((N, 3)).astype("float32"), rng.standard_normal((N, units)).astype("float32")


def _batches(x, y):
    for start in range(0, N, 4):
        yield x[start:start + 4], y[start:start + 4]


def _caught(run, text):
    """The (filename, line number, category) of each warning holding ``text`` that ``run`` raised (at least one),
    and the line of the caller's call to ``_caught`` (where ``run``'s lambda is written)."""
    line = inspect.currentframe().f_back.f_lineno
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    found = [(w.filename, w.lineno, w.category) for w in caught if text in str(w.message)]
    assert found, f"no warning holding {text!r}: {[str(w.message) for w in caught]}"
    return found, line


def test_a_callback_warning_names_the_fit_call(tmp_path):
    x, y = _data()
    model = _model()
    found, line = _caught(lambda: model.fit(x, y, epochs=2, verbose=0, callbacks=[
        callbacks.EarlyStopping(monitor="val_loss")]), "Early stopping conditioned on metric `val_loss`")
    assert found == [(__file__, line, UserWarning)] * 2
    found, line = _caught(lambda: model.fit(x, y, verbose=0, callbacks=[callbacks.ModelCheckpoint(
        tmp_path / "m.keras", monitor="val_loss", save_best_only=True)]), "Can save best model only with val_loss")
    assert found == [(__file__, line, UserWarning)]


def test_a_deprecated_argument_names_the_constructor_call():
    found, line = _caught(lambda: callbacks.ReduceLROnPlateau(epsilon=1e-3), "`epsilon` is the legacy name")
    assert found == [(__file__, line, DeprecationWarning)]
    found, line = _caught(lambda: layers.LayerNormalization(rms_scaling=True), "rms_scaling=True is deprecated")
    assert found == [(__file__, line, UserWarning)]


def test_a_loss_warning_names_the_fit_and_evaluate_calls():
    x, _ = _data()
    y = numpy.ones((N, 1), "float32")
    inputs = gpu_dl.Input((3,))
    model = gpu_dl.Model(inputs, layers.Dense(1, activation="softmax")(inputs))
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    found, line = _caught(lambda: model.fit(x, y, verbose=0), "on an output with 1 column is always 0")
    assert {entry for entry in found} == {(__file__, line, SyntaxWarning)}
    found, line = _caught(lambda: model.evaluate(x, y, verbose=0), "on an output with 1 column is always 0")
    assert {entry for entry in found} == {(__file__, line, SyntaxWarning)}


def test_streaming_warnings_name_the_fit_evaluate_and_predict_calls():
    x, y = _data()
    model = _model()
    found, line = _caught(lambda: model.predict(((b[0],) for b in _batches(x, y)), batch_size=4, verbose=0),
                          "`batch_size=4` is ignored")
    assert found == [(__file__, line, UserWarning)]
    found, line = _caught(lambda: model.evaluate(_batches(x, y), batch_size=4, verbose=0), "`batch_size=4` is ignored")
    assert found == [(__file__, line, UserWarning)]
    found, line = _caught(lambda: model.fit(_batches(x, y), shuffle=True, verbose=0), "`shuffle=True` was passed")
    assert found == [(__file__, line, UserWarning)]


def test_a_masking_warning_names_the_model_call():
    found, line = _caught(lambda: gpu_dl.Sequential([gpu_dl.Input((4, 2)), layers.Masking(), layers.Flatten()])(
        numpy.zeros((2, 4, 2), "float32")), "does not support masking")
    assert found == [(__file__, line, UserWarning)]


def test_saving_and_loading_warnings_name_the_save_and_load_calls(tmp_path):
    model = _model()
    found, line = _caught(lambda: model.save(tmp_path / "m.keras", include_optimizer=False),
                          "include_optimizer=False) is ignored")
    assert found == [(__file__, line, UserWarning)]
    model.save_weights(tmp_path / "m.weights.h5")
    other = _model(units=3)
    found, line = _caught(lambda: other.load_weights(tmp_path / "m.weights.h5", skip_mismatch=True), "Skipped.")
    assert found and {entry for entry in found} == {(__file__, line, UserWarning)}


def test_a_warning_of_the_built_in_train_step_names_the_callers_step():
    lines = []

    class Frozen(gpu_dl.Model):
        def train_step(self, data):
            lines.append(inspect.currentframe().f_lineno + 1)
            return super().train_step(data)
    inputs = gpu_dl.Input((3,))
    model = Frozen(inputs, layers.Dense(2, trainable=False)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data()
    found, _ = _caught(lambda: model.train_on_batch(x, y), "does not have any trainable weights")
    assert found == [(__file__, lines[0], UserWarning)]
