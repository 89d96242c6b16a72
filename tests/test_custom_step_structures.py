"""A train_step or test_step of the caller's own gets the batch in the structures fit, evaluate and the
``*_on_batch`` methods were given, as Keras hands them: a dict of inputs as that dict, a dict of targets (for a
model of several named outputs) as that dict, and a dict of sample weights as that dict; lists of targets and
weights as lists. A compute_loss of the caller's own (the built-in steps calling it) gets targets and weights the
same way. Keras 3 (torch backend) is the oracle where it is installed."""
import os
import warnings

import numpy
import pytest

import gpu_dl
from gpu_dl import backend

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


# ------------------------------------------------------------------ compute_loss of the caller's own
def _structure(value):
    """A value's structure: "array", None, or the list, tuple or dict of its entries' structures."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: _structure(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_structure(v) for v in value)
    # Keras's build traces compute_loss on tensors without data first (torch's "meta" device)
    return "symbolic" if str(getattr(value, "device", "")) == "meta" else "array"


def _loss_model(lib, seen, outputs_as):
    """A model of two outputs whose compute_loss (alone overridden) records what it gets, then computes Keras's."""
    class Spy(lib.Model):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            if "symbolic" not in str(_structure(y_pred)):
                seen.append((_structure(y), _structure(y_pred), _structure(sample_weight)))
            return super().compute_loss(x, y, y_pred, sample_weight, training)
    inputs = lib.Input((3,))
    a = lib.layers.Dense(2, kernel_initializer="ones", name="a")(inputs)       # the same weights in both
    b = lib.layers.Dense(1, kernel_initializer="ones", name="b")(inputs)
    model = Spy(inputs, {"a": a, "b": b} if outputs_as == "dict" else [a, b])
    model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.1),
                  loss={"a": "mse", "b": "mae"} if outputs_as == "dict" else ["mse", "mae"])
    return model


_TWO = numpy.random.default_rng(3)
_X = _TWO.standard_normal((4, 3)).astype("float32")
_YA, _YB = _TWO.standard_normal((4, 2)).astype("float32"), _TWO.standard_normal((4, 1)).astype("float32")
_W = _TWO.random(4).astype("float32")
_TARGETS = {"list": [_YA, _YB], "tuple": (_YA, _YB), "dict": {"a": _YA, "b": _YB}}
_WEIGHTS = {None: None, "one": _W, "list": [_W, 1 - _W], "dict": {"a": _W, "b": 1 - _W}}
# (outputs, targets, weights) and what compute_loss gets, as Keras 3.15 (torch backend) hands them: y as given
# (a generator's tuples as lists: the torch DataLoader Keras passes a generator through makes them so), and
# sample_weight as given, but for one weight array beside several targets, which fit and evaluate on arrays give
# for each target in the targets' structure (Keras's array adapter), train_on_batch and a generator as it is.
_A = "array"
_STRUCTURES = [
    # outputs, targets, weights, y, y from a generator, sample_weight in fit/evaluate, in train_on_batch/generator
    ("list", "list", None, [_A, _A], [_A, _A], None, None),
    ("list", "tuple", None, (_A, _A), [_A, _A], None, None),
    ("dict", "dict", None, {"a": _A, "b": _A}, {"a": _A, "b": _A}, None, None),
    ("dict", "list", None, [_A, _A], [_A, _A], None, None),
    ("list", "list", "list", [_A, _A], [_A, _A], [_A, _A], [_A, _A]),
    ("dict", "dict", "dict", {"a": _A, "b": _A}, {"a": _A, "b": _A}, {"a": _A, "b": _A}, {"a": _A, "b": _A}),
    ("list", "list", "one", [_A, _A], [_A, _A], [_A, _A], _A),
    ("dict", "dict", "one", {"a": _A, "b": _A}, {"a": _A, "b": _A}, {"a": _A, "b": _A}, _A),
]


def _seen_by_compute_loss(lib, outputs_as, targets, weights):
    """What compute_loss got in fit, evaluate, train_on_batch and fit on a generator, and the losses they gave."""
    seen, losses = [], []
    y, sw = _TARGETS[targets], _WEIGHTS[weights]
    for how in ("fit", "evaluate", "train_on_batch", "generator"):
        model = _loss_model(lib, seen, outputs_as)
        if how == "fit":
            losses.append(model.fit(_X, y, sample_weight=sw, batch_size=4, verbose=0, shuffle=False).history["loss"])
        elif how == "evaluate":
            losses.append(model.evaluate(_X, y, sample_weight=sw, batch_size=4, verbose=0))
        elif how == "train_on_batch":
            losses.append(model.train_on_batch(_X, y, sample_weight=sw))
        else:
            batch = (_X, y) if sw is None else (_X, y, sw)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Your input ran out of data")
                losses.append(model.fit((b for b in [batch]), verbose=0, shuffle=False).history["loss"])
    return seen, losses


@pytest.mark.parametrize("outputs_as, targets, weights, y, y_streamed, sw_arrays, sw_given", _STRUCTURES)
def test_compute_loss_gets_targets_and_weights_as_given(on_cpu, outputs_as, targets, weights, y, y_streamed,
                                                        sw_arrays, sw_given):
    seen, _ = _seen_by_compute_loss(gpu_dl, outputs_as, targets, weights)
    y_pred = {"a": _A, "b": _A} if outputs_as == "dict" else [_A, _A]
    assert seen == [(y, y_pred, sw_arrays), (y, y_pred, sw_arrays), (y, y_pred, sw_given),
                    (y_streamed, y_pred, sw_given)]


def test_a_built_in_loss_takes_the_targets_of_the_outputs_with_a_loss_only(on_cpu):
    """compute_loss called with the targets of the outputs that have a loss (a list of theirs, or the one array),
    and with one array of weights for every output, as Keras's compiled loss takes them."""
    model = _loss_model(gpu_dl, [], "list")
    model.compile(optimizer="sgd", loss=[None, "mse"])
    y_pred = model(_X)
    expected = float(numpy.mean((backend.to_numpy(y_pred[1]) - _YB) ** 2))
    for y in ([_YB], _YB, [None, _YB]):
        assert float(model.compute_loss(_X, y, y_pred, training=False)) == pytest.approx(expected, rel=1e-6)
    weighted = float(numpy.mean(numpy.mean((backend.to_numpy(y_pred[1]) - _YB) ** 2, axis=-1) * _W))
    assert float(model.compute_loss(_X, _YB, y_pred, sample_weight=_W, training=False)) == \
        pytest.approx(weighted, rel=1e-6)


@pytest.mark.parametrize("outputs_as, targets, weights", [s[:3] for s in _STRUCTURES])
def test_compute_loss_gets_what_keras_gives_it(on_cpu, keras, outputs_as, targets, weights):
    ours, our_losses = _seen_by_compute_loss(gpu_dl, outputs_as, targets, weights)
    theirs, their_losses = _seen_by_compute_loss(keras, outputs_as, targets, weights)
    assert ours == theirs
    assert len(our_losses) == len(their_losses) == 4
    for a, b in zip(our_losses, their_losses):
        numpy.testing.assert_allclose(a, b, rtol=1e-5)


def _step_model(lib, seen):
    """A model of two outputs whose train_step records the targets and weights it gets, then runs the built-in
    one."""
    class Steps(lib.Model):
        def train_step(self, data):
            _, y, sample_weight = lib.utils.unpack_x_y_sample_weight(data)
            seen.append((_structure(y), _structure(sample_weight)))
            return super().train_step(data)
    inputs = lib.Input((3,))
    model = Steps(inputs, [lib.layers.Dense(2, kernel_initializer="ones")(inputs),
                           lib.layers.Dense(1, kernel_initializer="ones")(inputs)])
    model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.1), loss=["mse", "mae"])
    return model


def _seen_by_train_step(lib, targets, weights):
    seen, losses = [], []
    y, sw = _TARGETS[targets], _WEIGHTS[weights]
    losses.append(_step_model(lib, seen).fit(_X, y, sample_weight=sw, batch_size=4, verbose=0).history["loss"])
    losses.append(_step_model(lib, seen).train_on_batch(_X, y, sample_weight=sw))
    return seen, losses


@pytest.mark.parametrize("targets, weights, y, sw_fit, sw_on_batch", [
    ("list", None, [_A, _A], None, None), ("tuple", None, (_A, _A), None, None),
    ("list", "list", [_A, _A], [_A, _A], [_A, _A]), ("list", "one", [_A, _A], [_A, _A], _A)])
def test_a_train_step_gets_lists_of_targets_and_weights_as_given(on_cpu, targets, weights, y, sw_fit, sw_on_batch):
    seen, _ = _seen_by_train_step(gpu_dl, targets, weights)
    assert seen == [(y, sw_fit), (y, sw_on_batch)]


@pytest.mark.parametrize("targets, weights", [("list", None), ("tuple", None), ("list", "list"), ("list", "one")])
def test_a_train_step_gets_what_keras_gives_it(on_cpu, keras, targets, weights):
    ours, our_losses = _seen_by_train_step(gpu_dl, targets, weights)
    theirs, their_losses = _seen_by_train_step(keras, targets, weights)
    assert ours == theirs
    for a, b in zip(our_losses, their_losses):
        numpy.testing.assert_allclose(a, b, rtol=1e-5)


# ------------------------------------------------------------------ one output, its targets in a list of one
def _one_output_model(lib, seen, override):
    """A model of one output whose ``override`` (train_step, compute_loss or compute_metrics) records the targets
    and weights it gets, then runs the built-in one."""
    def record(y, sample_weight):
        if "symbolic" not in str(_structure(y)):
            seen.append((_structure(y), _structure(sample_weight)))

    class TrainStep(lib.Model):
        def train_step(self, data):
            _, y, sample_weight = lib.utils.unpack_x_y_sample_weight(data)
            record(y, sample_weight)
            return super().train_step(data)

        def test_step(self, data):
            _, y, sample_weight = lib.utils.unpack_x_y_sample_weight(data)
            record(y, sample_weight)
            return super().test_step(data)

    class ComputeLoss(lib.Model):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            record(y, sample_weight)
            return super().compute_loss(x, y, y_pred, sample_weight, training)

    class ComputeMetrics(lib.Model):
        def compute_metrics(self, x, y, y_pred, sample_weight=None):
            record(y, sample_weight)
            return super().compute_metrics(x, y, y_pred, sample_weight)
    classes = {"train_step": TrainStep, "compute_loss": ComputeLoss, "compute_metrics": ComputeMetrics}
    inputs = lib.Input((3,))
    model = classes[override](inputs, lib.layers.Dense(2, kernel_initializer="ones")(inputs))
    model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.1), loss="mse", weighted_metrics=["mae"])
    return model


_ONE_Y = {"list": [_YA], "tuple": (_YA,)}
_ONE_SW = {None: None, "one": _W, "list": [_W], "tuple": (_W,)}


def _seen_with_one_output(lib, override, targets, weights):
    """What ``override`` got in fit, evaluate, train_on_batch and fit on a generator, and the logs they gave."""
    seen, logs = [], []
    y, sw = _ONE_Y[targets], _ONE_SW[weights]
    for how in ("fit", "evaluate", "train_on_batch", "generator"):
        model = _one_output_model(lib, seen, override)
        if how == "fit":
            logs.append(model.fit(_X, y, sample_weight=sw, batch_size=4, verbose=0, shuffle=False).history)
        elif how == "evaluate":
            logs.append(model.evaluate(_X, y, sample_weight=sw, batch_size=4, verbose=0, return_dict=True))
        elif how == "train_on_batch":
            logs.append(model.train_on_batch(_X, y, sample_weight=sw, return_dict=True))
        else:
            batch = (_X, y) if sw is None else (_X, y, sw)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Your input ran out of data")
                logs.append(model.fit((b for b in [batch]), verbose=0, shuffle=False).history)
    return seen, logs


# the targets as given (a generator's tuple as a list); one weight array in the targets' structure in fit and
# evaluate, as it is in train_on_batch and from a generator; weights in a list or tuple of one as given
_ONE_OUTPUT = [
    # targets, weights, y, y from a generator, sample_weight in fit/evaluate, in train_on_batch, from a generator
    ("list", None, [_A], [_A], None, None, None),
    ("tuple", None, (_A,), [_A], None, None, None),
    ("list", "one", [_A], [_A], [_A], _A, _A),
    ("tuple", "one", (_A,), [_A], (_A,), _A, _A),
    ("list", "list", [_A], [_A], [_A], [_A], [_A]),
    ("tuple", "tuple", (_A,), [_A], (_A,), (_A,), [_A]),
]


@pytest.mark.parametrize("override", ["train_step", "compute_loss", "compute_metrics"])
@pytest.mark.parametrize("targets, weights, y, y_streamed, sw_arrays, sw_on_batch, sw_streamed", _ONE_OUTPUT)
def test_one_output_targets_in_a_list_of_one_reach_the_steps_as_given(on_cpu, override, targets, weights, y,
                                                                        y_streamed, sw_arrays, sw_on_batch,
                                                                        sw_streamed):
    seen, logs = _seen_with_one_output(gpu_dl, override, targets, weights)
    assert seen == [(y, sw_arrays), (y, sw_arrays), (y, sw_on_batch), (y_streamed, sw_streamed)]
    # the compiled loss and weighted metric read the one array inside: NumPy's weighted mean squared error and
    # absolute error of the first step (every weight of the model one: the predictions are the inputs' sums)
    errors = _X.sum(-1, keepdims=True) - _YA
    weight = numpy.ones(len(_X)) if weights is None else _W
    assert logs[2]["loss"] == pytest.approx(float(((errors ** 2).mean(-1) * weight).mean()), rel=1e-5)
    assert logs[2]["mae"] == pytest.approx(float((numpy.abs(errors).mean(-1) * weight).sum() / weight.sum()),
                                           rel=1e-5)
    assert logs[3]["loss"] == pytest.approx([logs[2]["loss"]], rel=1e-6)


def test_one_output_fit_on_a_list_of_one_trains_as_on_the_array(on_cpu):
    """The built-in loss path of a model of one output: targets (and weights) in a list of one are the array."""
    weights, histories = [], []
    for y, sw in ((_YA, _W), ([_YA], [_W]), ((_YA,), _W)):
        inputs = gpu_dl.Input((3,))
        model = gpu_dl.Model(inputs, gpu_dl.layers.Dense(2, kernel_initializer="ones")(inputs))
        model.compile(optimizer=gpu_dl.optimizers.SGD(learning_rate=0.1), loss="mse", weighted_metrics=["mae"])
        histories.append(model.fit(_X, y, sample_weight=sw, batch_size=2, epochs=2, verbose=0, shuffle=False).history)
        weights.append(model.get_weights())
    for history, trained in zip(histories[1:], weights[1:]):
        assert history == histories[0]
        for a, b in zip(trained, weights[0]):
            numpy.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("override", ["train_step", "compute_loss", "compute_metrics"])
@pytest.mark.parametrize("targets, weights", [s[:2] for s in _ONE_OUTPUT])
def test_one_output_targets_in_a_list_of_one_as_keras(on_cpu, keras, override, targets, weights):
    ours, our_logs = _seen_with_one_output(gpu_dl, override, targets, weights)
    theirs, their_logs = _seen_with_one_output(keras, override, targets, weights)
    assert ours == theirs
    assert len(our_logs) == len(their_logs) == 4
    for a, b in zip(our_logs, their_logs):
        assert sorted(a) == sorted(b)
        for key in b:
            numpy.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=key)


def test_one_output_fit_on_a_list_of_one_as_keras(on_cpu, keras):
    histories, weights = [], []
    for lib in (gpu_dl, keras):
        inputs = lib.Input((3,))
        model = lib.Model(inputs, lib.layers.Dense(2, kernel_initializer="ones")(inputs))
        model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.1), loss="mse", weighted_metrics=["mae"])
        histories.append(model.fit(_X, [_YA], sample_weight=[_W], batch_size=2, epochs=2, verbose=0,
                                   shuffle=False).history)
        weights.append(model.get_weights())
    assert sorted(histories[0]) == sorted(histories[1])
    for key in histories[1]:
        numpy.testing.assert_allclose(histories[0][key], histories[1][key], rtol=1e-5, err_msg=key)
    for a, b in zip(*weights):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
