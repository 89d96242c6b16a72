"""A train_step or test_step of the caller's own gets the batch in the structures fit, evaluate and the
``*_on_batch`` methods were given, as Keras hands them: a dict of inputs as that dict, a dict of targets (for a
model of several named outputs) as that dict, and a dict of sample weights as that dict. Keras 3 (torch backend) is
the oracle where it is installed."""
import os

import numpy
import pytest

import gpu_dl

N = 8


def _model(lib, seen):
    class Steps(lib.Model):
        """Records the structure of each batch its steps get, then runs the built-in steps on it."""

        def _record(self, data):
            x, y, sw = lib.utils.unpack_x_y_sample_weight(data)
            seen.append(tuple(sorted(v) if isinstance(v, dict) else type(v).__name__ for v in (x, y, sw)))

        def train_step(self, data):
            self._record(data)
            return super().train_step(data)

        def test_step(self, data):
            self._record(data)
            return super().test_step(data)
    a, b = lib.Input((3,), name="a"), lib.Input((2,), name="b")
    joined = lib.layers.Concatenate()([a, b])
    return Steps({"a": a, "b": b}, {"reg": lib.layers.Dense(2, name="reg")(joined),
                                    "cls": lib.layers.Dense(3, activation="softmax", name="cls")(joined)})


def _data(rng, n=N):
    x = {"b": rng.standard_normal((n, 2)).astype("float32"), "a": rng.standard_normal((n, 3)).astype("float32")}
    y = {"cls": rng.integers(0, 3, n), "reg": rng.standard_normal((n, 2)).astype("float32")}
    sw = {"reg": rng.random(n).astype("float32"), "cls": rng.random(n).astype("float32")}
    return x, y, sw


def _compile(model):
    model.compile(optimizer="sgd", loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                  metrics={"cls": ["accuracy"]})


def test_the_steps_get_dicts_as_given(on_cpu):
    seen = []
    model = _model(gpu_dl, seen)
    _compile(model)
    x, y, sw = _data(numpy.random.default_rng(0))
    model.fit(x, y, sample_weight=sw, batch_size=4, epochs=1, verbose=0, validation_data=(x, y))
    assert seen == [(["a", "b"], ["cls", "reg"], ["cls", "reg"])] * 2 + [(["a", "b"], ["cls", "reg"], "NoneType")] * 2
    seen.clear()
    model.train_on_batch(x, y)
    model.test_on_batch(x, y, sample_weight=sw)
    assert seen == [(["a", "b"], ["cls", "reg"], "NoneType"), (["a", "b"], ["cls", "reg"], ["cls", "reg"])]
    # the reduced loss weighs each output's loss by its own weights: zero weights leave an output out
    zero = {"reg": numpy.zeros(N, "float32"), "cls": numpy.ones(N, "float32")}
    logs = model.evaluate(x, y, sample_weight=zero, verbose=0, return_dict=True)
    assert logs["reg_loss"] == pytest.approx(0.0, abs=1e-7)
    assert logs["loss"] == pytest.approx(logs["cls_loss"], rel=1e-6)


def test_a_dict_of_weights_must_have_a_weight_per_sample(on_cpu):
    model = _model(gpu_dl, [])
    _compile(model)
    x, y, sw = _data(numpy.random.default_rng(1))
    with pytest.raises(ValueError, match=r"`sample_weight\['reg'\]` has 3 entries but there are 8 samples"):
        model.fit(x, y, sample_weight=dict(sw, reg=sw["reg"][:3]), verbose=0)


@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def test_dict_inputs_targets_and_weights_train_as_keras(on_cpu, keras):
    rng = numpy.random.default_rng(2)
    seen_ours, seen_theirs = [], []
    ours, theirs = _model(gpu_dl, seen_ours), _model(keras, seen_theirs)
    theirs.set_weights(ours.get_weights())
    x, y, sw = _data(rng)
    vx, vy, vsw = _data(rng, 5)
    for m in (ours, theirs):
        _compile(m)
    histories = [m.fit(x, y, sample_weight=sw, batch_size=4, epochs=2, shuffle=False, verbose=0,
                       validation_data=(vx, vy, vsw)).history for m in (ours, theirs)]
    assert seen_ours == seen_theirs
    assert sorted(histories[0]) == sorted(histories[1])
    for key in histories[1]:
        numpy.testing.assert_allclose(histories[0][key], histories[1][key], rtol=2e-5, atol=1e-6, err_msg=key)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    ours_logs, theirs_logs = [m.train_on_batch(x, y, sample_weight=sw, return_dict=True) for m in (ours, theirs)]
    assert sorted(ours_logs) == sorted(theirs_logs)
    for key in theirs_logs:
        assert ours_logs[key] == pytest.approx(theirs_logs[key], rel=2e-5, abs=1e-6), key
