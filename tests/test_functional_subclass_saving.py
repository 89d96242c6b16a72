"""A Model subclass made functionally (``CustomModel(inputs, outputs)`` with its own train_step, as in Keras's
"Customizing what happens in fit()" guide) saved to .keras comes back as that subclass, registered or given in
custom_objects, as Keras brings it back; and the files Keras writes of such a model load in gpu_dl as the gpu_dl
class of the same registered name (and the other way round). Keras 3 (torch backend) is the oracle where it is
installed."""
import json
import os
import zipfile

import numpy
import pytest

import gpu_dl
from gpu_dl.models import load_model


def _custom_class(lib, package=None):
    class CustomModel(lib.Model):
        """Counts its training steps: a loaded model that trains through this step is of this class."""
        steps = 0

        def train_step(self, data):
            CustomModel.steps += 1
            return super().train_step(data)
    if package is not None:
        CustomModel = lib.saving.register_keras_serializable(package=package)(CustomModel)
    return CustomModel


def _model(lib, cls):
    inputs = lib.Input((3,))
    hidden = lib.layers.Dense(4, activation="relu", name="hidden")(inputs)
    return cls(inputs, lib.layers.Dense(2, name="out")(hidden))


def _data():
    rng = numpy.random.default_rng(0)
    return rng.standard_normal((8, 3)).astype("float32"), rng.standard_normal((8, 2)).astype("float32")


def _written(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def test_a_registered_subclass_comes_back_as_itself(on_cpu, tmp_path):
    cls = _custom_class(gpu_dl, "fitapi_registered")
    model = _model(gpu_dl, cls)
    model.compile(optimizer="adam", loss="mse")
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "m.keras")
    written = _written(tmp_path / "m.keras")
    assert (written["class_name"], written["registered_name"]) == ("CustomModel", "fitapi_registered>CustomModel")
    loaded = load_model(tmp_path / "m.keras")
    assert isinstance(loaded, cls) and isinstance(loaded, gpu_dl.Model)
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    before = cls.steps
    history = loaded.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0).history
    assert cls.steps == before + 2
    again = model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0).history
    assert history["loss"][0] == pytest.approx(again["loss"][0], rel=1e-5)


def test_an_unregistered_subclass_comes_back_through_custom_objects(on_cpu, tmp_path):
    cls = _custom_class(gpu_dl)
    model = _model(gpu_dl, cls)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras", custom_objects={"CustomModel": cls})
    assert type(loaded).__mro__[1] is cls
    x, _ = _data()
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="CustomModel"):
        load_model(tmp_path / "m.keras")


def test_a_subclass_with_a_constructor_of_its_own_gets_its_config(on_cpu):
    class Fixed(gpu_dl.Model):
        def __init__(self, units, **kwargs):
            inputs = gpu_dl.Input((3,))
            super().__init__(inputs, gpu_dl.layers.Dense(units)(inputs), **kwargs)
            self.units = units

        def get_config(self):
            return {"units": self.units, "name": self.name}
    model = Fixed.from_config({"units": 5, "name": "fixed"})
    assert isinstance(model, Fixed) and model.units == 5 and model.output_shape == (None, 5)


# ------------------------------------------------------------------ Keras 3 as the oracle
@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


@pytest.mark.parametrize("registered", [True, False])
def test_files_load_both_ways_as_the_subclass(on_cpu, keras, tmp_path, registered):
    package = "fitapi_both" if registered else None
    ours_cls, theirs_cls = _custom_class(gpu_dl, package), _custom_class(keras, package)
    ours, theirs = _model(gpu_dl, ours_cls), _model(keras, theirs_cls)
    theirs.set_weights(ours.get_weights())
    x, y = _data()
    for m in (ours, theirs):
        m.compile(optimizer="adam", loss="mse", metrics=["mae"])
        m.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    ours.save(tmp_path / "g.keras")
    theirs.save(tmp_path / "k.keras")
    for key in ("class_name", "registered_name", "module"):
        assert _written(tmp_path / "g.keras")[key] == _written(tmp_path / "k.keras")[key], key
    custom = None if registered else {"CustomModel": ours_cls}
    keras_custom = None if registered else {"CustomModel": theirs_cls}
    we_read = load_model(tmp_path / "k.keras", custom_objects=custom)
    keras_reads = keras.models.load_model(tmp_path / "g.keras", custom_objects=keras_custom)
    assert isinstance(we_read, ours_cls) and isinstance(keras_reads, theirs_cls)
    expected = theirs.predict(x, verbose=0)
    numpy.testing.assert_allclose(we_read.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(keras_reads.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    # the same next epoch through the subclass's step (the optimizer's state came along)
    before = ours_cls.steps
    histories = [m.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0).history for m in (we_read, theirs)]
    assert ours_cls.steps == before + 2
    assert sorted(histories[0]) == sorted(histories[1])
    for key in histories[1]:
        numpy.testing.assert_allclose(histories[0][key], histories[1][key], rtol=2e-5, atol=1e-6, err_msg=key)
    for a, b in zip(we_read.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
