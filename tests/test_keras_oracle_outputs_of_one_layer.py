"""A functional model with several outputs from one layer (an LSTM's output and states, attention's output and
scores) against Keras 3 itself: the outputs share their layer's name in ``output_names``, a loss list or dict,
loss weights and metrics find them as in Keras, and fit, evaluate and a compiled model's file give the same logs
(keys in Keras's order, values), and the same weights, in both libraries."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402


def _lstm_model(lib):
    x = lib.Input((3, 4), name="x")
    out, h, c = lib.layers.LSTM(5, return_state=True, name="lstm")(x)
    return lib.Model(x, [lib.layers.Dense(2, name="d")(out), h, c])


def _attention_model(lib):
    q = lib.Input((4, 3), name="q")
    y, scores = lib.layers.MultiHeadAttention(2, 3, name="mha")(q, q, return_attention_scores=True)
    return lib.Model(q, [y, scores])


def _data(rng, model_name, n=8):
    if model_name == "lstm":
        x = rng.standard_normal((n, 3, 4)).astype("float32")
        return x, [rng.standard_normal((n, 2)).astype("float32"), rng.standard_normal((n, 5)).astype("float32"),
                   rng.standard_normal((n, 5)).astype("float32")]
    x = rng.standard_normal((n, 4, 3)).astype("float32")
    return x, [rng.standard_normal((n, 4, 3)).astype("float32"), rng.random((n, 2, 4, 4)).astype("float32")]


_MAKERS = {"lstm": _lstm_model, "attention": _attention_model}

# compile arguments, per model; metrics met twice under one output name are numbered (lstm_mae, lstm_mae_1)
_CASES = [
    ("lstm", dict(loss=["mse", "mse", "mae"], loss_weights=[1.0, 0.5, 2.0], metrics=[["mae"], ["mae"], ["mse"]])),
    ("lstm", dict(loss={"d": "mse", "lstm": "mae"}, loss_weights={"d": 0.5, "lstm": 2.0},
                  metrics={"lstm": ["mae"]}, weighted_metrics=[None, ["mse"], ["mse"]])),
    ("lstm", dict(loss=[None, "mse", "mae"], metrics=[["mae"], None, None])),
    ("lstm", dict(loss="mse")),
    ("attention", dict(loss=["mse", "mae"], loss_weights=[1.0, 3.0], metrics=[["mae"], ["mse", "mae"]])),
]


def _pair(model_name):
    ours, theirs = _MAKERS[model_name](gpu_dl), _MAKERS[model_name](keras)
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def _close_logs(ours, theirs):
    assert list(ours) == list(theirs)
    for key in theirs:
        numpy.testing.assert_allclose(numpy.asarray(ours[key]), numpy.asarray(theirs[key]), rtol=2e-4, atol=1e-6,
                                      err_msg=key)


# (with no loss on the Dense output, both libraries warn that its weights get no gradient)
@pytest.mark.filterwarnings("ignore:Gradients do not exist")
@pytest.mark.parametrize("model_name, args", _CASES)
def test_outputs_of_one_layer_train_and_evaluate_as_keras(model_name, args, rng):
    ours, theirs = _pair(model_name)
    assert ours.output_names == theirs.output_names
    assert len(set(ours.output_names)) < len(ours.output_names)
    x, ys = _data(rng, model_name)
    # (the attention outputs are sequences, whose losses take weights per step: none there)
    sw = rng.random(len(x)).astype("float32") + 0.5 if model_name == "lstm" else None
    for model, lib in ((ours, gpu_dl), (theirs, keras)):
        model.compile(lib.optimizers.SGD(0.1), **args)
    fit_kwargs = dict(epochs=2, batch_size=4, shuffle=False, verbose=0, sample_weight=sw)
    _close_logs(ours.fit(x, ys, **fit_kwargs).history, theirs.fit(x, ys, **fit_kwargs).history)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
    _close_logs(ours.evaluate(x, ys, verbose=0, return_dict=True),
                theirs.evaluate(x, ys, verbose=0, return_dict=True))
    numpy.testing.assert_allclose(ours.evaluate(x, ys, verbose=0), theirs.evaluate(x, ys, verbose=0), rtol=2e-4)
    assert ours.metrics_names == theirs.metrics_names
    _close_logs(ours.train_on_batch(x, ys, return_dict=True), theirs.train_on_batch(x, ys, return_dict=True))


def test_outputs_of_one_layer_name_their_logs_as_keras(rng):
    ours, theirs = _pair("lstm")
    x, ys = _data(rng, "lstm")
    for model in (ours, theirs):
        model.compile("sgd", loss=["mse", "mse", "mae"], metrics=[["mae"], ["mae"], ["mae"]])
    logs = ours.evaluate(x, ys, verbose=0, return_dict=True)
    # the two losses named lstm_loss share one log, the later one's (Keras's logs are a dict); the metrics are
    # numbered instead
    assert list(logs) == ["d_loss", "d_mae", "loss", "lstm_loss", "lstm_mae", "lstm_mae_1"]
    diff = numpy.abs(ours.predict(x, verbose=0)[2] - ys[2]).mean()
    numpy.testing.assert_allclose(logs["lstm_loss"], diff, rtol=1e-5)
    _close_logs(logs, theirs.evaluate(x, ys, verbose=0, return_dict=True))
    # targets keyed by the shared name serve each output of that name, as Keras reads a dict of them
    keyed = {"d": ys[0], "lstm": ys[1]}
    _close_logs(ours.evaluate(x, keyed, verbose=0, return_dict=True),
                theirs.evaluate(x, keyed, verbose=0, return_dict=True))
    kwargs = dict(epochs=2, batch_size=4, shuffle=False, verbose=0, validation_data=(x[:4], [y[:4] for y in ys]))
    _close_logs(ours.fit(x, ys, **kwargs).history, theirs.fit(x, ys, **kwargs).history)


@pytest.mark.parametrize("direction", ["ours_to_keras", "keras_to_ours"])
def test_compiled_file_of_outputs_of_one_layer_loads_both_ways(direction, tmp_path, rng):
    ours, theirs = _pair("lstm")
    x, ys = _data(rng, "lstm")
    args = dict(loss={"d": "mse", "lstm": "mae"}, loss_weights={"d": 0.5, "lstm": 2.0},
                metrics=[["mae"], ["mse"], ["mae"]])
    ours.compile(gpu_dl.optimizers.SGD(0.1), **args)
    theirs.compile(keras.optimizers.SGD(0.1), **args)
    path = tmp_path / "m.keras"
    if direction == "ours_to_keras":
        ours.save(path)
        loaded, reference = keras.models.load_model(path), ours
    else:
        theirs.save(path)
        loaded, reference = load_model(path), theirs
    assert loaded.output_names == ["d", "lstm", "lstm"]
    assert list(loaded.get_compile_config()["loss"]) == ["d", "lstm"]
    _close_logs(loaded.evaluate(x, ys, verbose=0, return_dict=True),
                reference.evaluate(x, ys, verbose=0, return_dict=True))
    kwargs = dict(epochs=1, batch_size=4, shuffle=False, verbose=0)
    _close_logs(loaded.fit(x, ys, **kwargs).history, reference.fit(x, ys, **kwargs).history)


def test_bad_losses_for_outputs_of_one_layer_are_refused():
    model = _lstm_model(gpu_dl)
    with pytest.raises(ValueError, match="keyed by 'h', which is not an output"):
        model.compile("sgd", loss={"d": "mse", "lstm": "mse", "h": "mse"})
    with pytest.raises(ValueError, match="has 3 outputs.*one entry per output, got 2"):
        model.compile("sgd", loss=["mse", "mse"])
    with pytest.raises(ValueError, match="one entry per output, got 1"):
        model.compile("sgd", loss="mse", metrics=["mae"])
