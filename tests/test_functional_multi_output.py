"""Functional models of several outputs: a loss, weight and metrics per output, targets as a list or dict,
the weighted total loss and its gradient, logs named per output, saving, and the errors of bad settings and
data."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers
from gpu_dl.backend import to_numpy
from gpu_dl.models import load_model
from gradcheck import assert_gradient


def two_heads(seed=0, dtype="float32", as_dict=False, chained=False):
    """A shared tanh trunk with a softmax head 'cls' and a linear head 'reg'. With ``chained``, 'reg' also feeds a
    third head 'extra' (an output that is read by another layer sends back the sum of both gradients)."""
    backend.set_random_seed(seed)
    inputs = gpu_dl.Input(shape=(4,), name="x", dtype=dtype)
    h = layers.Dense(5, activation="tanh", name="h", dtype=dtype)(inputs)
    cls = layers.Dense(3, activation="softmax", name="cls", dtype=dtype)(h)
    reg = layers.Dense(2, name="reg", dtype=dtype)(h)
    outputs = [cls, reg]
    if chained:
        outputs.append(layers.Dense(2, activation="sigmoid", name="extra", dtype=dtype)(reg))
    if as_dict:
        outputs = {t._keras_history[0].name: t for t in outputs}
    return gpu_dl.Model(inputs, outputs, name="heads")


def data(rng, n=8):
    x = rng.standard_normal((n, 4)).astype("float32")
    return x, rng.integers(0, 3, n), rng.standard_normal((n, 2)).astype("float32")


def _sparse_xent(p, labels):
    p = numpy.clip(p, 1e-7, 1 - 1e-7)
    p = p / p.sum(axis=-1, keepdims=True)
    return -numpy.log(p[numpy.arange(len(labels)), labels])


# ------------------------------------------------------------------ outputs and losses
def test_predict_gives_one_array_per_output_in_the_structure_given(xp, rng):
    x, _, _ = data(rng)
    as_list = two_heads()
    out = as_list.predict(x, verbose=0)
    assert isinstance(out, list) and [o.shape for o in out] == [(8, 3), (8, 2)]
    assert as_list.output_names == ["cls", "reg"] and as_list.output_shape == [(None, 3), (None, 2)]
    as_dict = two_heads(as_dict=True)
    out_dict = as_dict.predict(x, verbose=0)
    assert isinstance(out_dict, dict) and list(out_dict) == ["cls", "reg"]
    numpy.testing.assert_allclose(out_dict["reg"], out[1], rtol=1e-6)       # same seed, same weights
    called = as_dict(xp.asarray(x))
    numpy.testing.assert_allclose(to_numpy(called["cls"]), out[0], rtol=1e-6)


@pytest.mark.parametrize("given", ["list", "dict"])
def test_per_output_losses_and_weighted_total_match_numpy(xp, rng, given):
    x, ya, yb = data(rng)
    model = two_heads()
    if given == "list":
        model.compile("sgd", loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[0.7, 1.5],
                      metrics=[["accuracy"], ["mae", "mse"]])
        y = [ya, yb]
    else:
        model.compile("sgd", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                      loss_weights={"cls": 0.7, "reg": 1.5}, metrics={"reg": ["mae", "mse"], "cls": "accuracy"})
        y = {"reg": yb, "cls": ya}
    p_cls, p_reg = model.predict(x, verbose=0)
    sw = rng.uniform(0.5, 2, 8).astype("float32")
    cls_loss = (_sparse_xent(p_cls, ya) * sw).mean()
    reg_loss = (((p_reg - yb) ** 2).mean(axis=-1) * sw).mean()
    logs = model.test_on_batch(x, y, sample_weight=sw, return_dict=True)
    assert list(logs) == ["cls_accuracy", "cls_loss", "loss", "reg_loss", "reg_mae", "reg_mse"]    # sorted, as Keras's
    assert logs["cls_loss"] == pytest.approx(cls_loss, rel=1e-5)
    assert logs["reg_loss"] == pytest.approx(reg_loss, rel=1e-5)
    assert logs["loss"] == pytest.approx(0.7 * cls_loss + 1.5 * reg_loss, rel=1e-5)
    # Metrics are not weighted by sample_weight (weighted_metrics would be).
    assert logs["cls_accuracy"] == pytest.approx((p_cls.argmax(-1) == ya).mean())
    assert logs["reg_mae"] == pytest.approx(numpy.abs(p_reg - yb).mean(), rel=1e-5)
    values = model.evaluate(x, y, verbose=0)
    assert values[1:3] == pytest.approx([_sparse_xent(p_cls, ya).mean(), ((p_reg - yb) ** 2).mean()], rel=1e-5)
    assert values[0] == pytest.approx(0.7 * values[1] + 1.5 * values[2], rel=1e-5)
    assert model.metrics_names == ["loss", "compile_metrics", "cls_loss", "reg_loss"]      # Keras's Model.metrics


def test_one_loss_applies_to_every_output_and_sample_weights_may_be_per_output(xp, rng):
    x, ya, yb = data(rng)
    onehot = numpy.eye(3, dtype="float32")[ya]
    model = two_heads()
    model.compile("sgd", loss="mse")
    p_cls, p_reg = model.predict(x, verbose=0)
    w_cls, w_reg = rng.uniform(0, 2, 8), rng.uniform(0, 2, 8)
    logs = model.test_on_batch(x, [onehot, yb], sample_weight=[w_cls, w_reg], return_dict=True)
    cls_loss = (((p_cls - onehot) ** 2).mean(-1) * w_cls).mean()
    reg_loss = (((p_reg - yb) ** 2).mean(-1) * w_reg).mean()
    assert logs["cls_loss"] == pytest.approx(cls_loss, rel=1e-5)
    assert logs["reg_loss"] == pytest.approx(reg_loss, rel=1e-5)
    assert logs["loss"] == pytest.approx(cls_loss + reg_loss, rel=1e-5)


def test_an_output_without_a_loss_is_not_trained_on_and_not_logged(xp, rng):
    x, ya, yb = data(rng)
    model = two_heads()
    model.compile("sgd", loss=[None, "mse"])
    cls_kernel = model.get_layer("cls").get_weights()[0].copy()
    with pytest.warns(UserWarning, match=r"Gradients do not exist for variables \['cls/kernel', 'cls/bias'\]"):
        logs = model.train_on_batch(x, [None, yb], return_dict=True)
    assert list(logs) == ["loss"]           # as Keras: no per-output losses when only one output has one
    numpy.testing.assert_array_equal(model.get_layer("cls").get_weights()[0], cls_kernel)
    assert not numpy.array_equal(model.get_layer("reg").get_weights()[0], two_heads().get_layer("reg").get_weights()[0])


# ------------------------------------------------------------------ gradient
def test_gradient_of_the_weighted_total_loss_matches_finite_differences(xp, rng):
    """Inputs and every weight, float64, through three heads where one output also feeds another head."""
    model = two_heads(dtype="float64", chained=True)
    model.compile("sgd", loss=["sparse_categorical_crossentropy", "huber", "binary_crossentropy"],
                  loss_weights=[0.6, 1.7, 0.3])
    x = xp.asarray(rng.standard_normal((5, 4)))
    y = (xp.asarray(rng.integers(0, 3, 5)), xp.asarray(rng.standard_normal((5, 2))),
         xp.asarray(rng.uniform(0, 1, (5, 2))))
    sw = tuple(xp.asarray(rng.uniform(0.5, 2, 5)) for _ in range(3))
    assert_total_loss_gradients(model, x, y, sw, rng)


def assert_total_loss_gradients(model, x, y, sw, rng):
    """The gradients of the compiled model's total loss for ``x``, ``y`` and ``sw``, of its input and of every
    weight, against finite differences; returns the total loss as a function of the input."""
    model._start([x.shape])

    def total(inputs):
        return model._loss_and_gradient(y, model.forward(inputs, training=True), sw, training=False)[0]

    _, _, douts = model._loss_and_gradient(y, model.forward(x, training=True), sw, training=True)
    assert_gradient(total, x, model.backward(douts), rng, what="model input")
    for var in model.trainable_weights:
        _, _, douts = model._loss_and_gradient(y, model.forward(x, training=True), sw, training=True)
        model.backward(douts, input_gradient=False)
        grad, original = var.grad.copy(), var.value.copy()

        def of_weight(value, var=var):
            var.value[...] = value
            return total(x)
        assert_gradient(of_weight, original.copy(), grad, rng, what=var.path)
        var.value[...] = original
    return total


def test_one_tensor_listed_twice_among_the_outputs_trains_on_the_sum_of_its_losses(xp, rng):
    """Model(x, [y, y]) as Keras takes it: each listing has its loss; the gradient is their weighted sum's."""
    inputs = gpu_dl.Input((4,), dtype="float64")
    out = layers.Dense(3, dtype="float64")(inputs)
    model = gpu_dl.Model(inputs, [out, out])
    model.compile("sgd", loss=["mse", "huber"], loss_weights=[0.7, 1.9])
    x = xp.asarray(rng.standard_normal((5, 4)))
    y = (xp.asarray(rng.standard_normal((5, 3))), xp.asarray(rng.standard_normal((5, 3))))
    total = assert_total_loss_gradients(model, x, y, None, rng)
    kernel, bias = (to_numpy(w) for w in model.get_weights())
    p, yh = to_numpy(x) @ kernel + bias, [to_numpy(t) for t in y]
    d = numpy.abs(p - yh[1])
    huber = numpy.where(d <= 1, 0.5 * d ** 2, d - 0.5).mean()
    assert float(total(x)) == pytest.approx(0.7 * ((p - yh[0]) ** 2).mean() + 1.9 * huber, rel=1e-12)


def test_fit_logs_and_history_are_named_per_output(xp, rng):
    x, ya, yb = data(rng, 12)
    model = two_heads()
    model.compile("adam", loss=["sparse_categorical_crossentropy", "mse"], metrics=["accuracy", "mae"])
    first = model.evaluate(x, [ya, yb], verbose=0)
    history = model.fit(x, [ya, yb], epochs=3, batch_size=4, verbose=0, validation_data=(x, [ya, yb]))
    # sorted by key, the training logs before the validation ones, as Keras 3 hands them to History
    names = ["cls_accuracy", "cls_loss", "loss", "reg_loss", "reg_mae"]
    assert list(history.history) == names + ["val_" + n for n in names]
    assert all(len(v) == 3 for v in history.history.values())
    assert model.evaluate(x, [ya, yb], verbose=0)[0] < first[0]
    split = model.fit(x, {"cls": ya, "reg": yb}, epochs=1, verbose=0, validation_split=0.25)
    assert "val_reg_mae" in split.history


def test_one_loss_for_every_output_takes_one_weight_for_all_of_them(rng):
    # As Keras packs the weights with the losses: one loss takes one weight, which weighs every output's loss.
    x, _, yb = data(rng)
    y = [numpy.repeat(yb[:, :1], 3, axis=1), yb]
    model = two_heads()
    model.compile("sgd", loss="mse")
    plain = model.evaluate(x, y, verbose=0)
    for loss_weights in (2.5, [2.5], (2.5,), {"reg": 2.5}):
        model.compile("sgd", loss="mse", loss_weights=loss_weights)
        assert model._loss_weights == [2.5, 2.5]
        got = model.evaluate(x, y, verbose=0)
        assert got[0] == pytest.approx(2.5 * plain[0], rel=1e-6) and got[1:] == pytest.approx(plain[1:], rel=1e-6)
    for loss_weights in ([1.0, 2.0], {"cls": 1.0, "reg": 2.0}, []):
        with pytest.raises(ValueError, match=f"`loss_weights` must match the number of losses, got 1 losses and "
                                             f"{len(loss_weights)} weights.*give `loss` per output too"):
            model.compile("adam", loss="mae", loss_weights=loss_weights)
    assert model._loss_weights == [2.5, 2.5] and model.loss[0].name == "mse"      # refused: nothing changed


# ------------------------------------------------------------------ saving
def test_save_and_load_keep_the_per_output_compile_settings(xp, rng, tmp_path):
    x, ya, yb = data(rng)
    model = two_heads(as_dict=True)
    model.compile("adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "huber"},
                  loss_weights={"reg": 2.5}, metrics={"cls": ["accuracy"], "reg": ["mae"]})
    model.fit(x, {"cls": ya, "reg": yb}, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    assert again.output_names == ["cls", "reg"] and isinstance(again.output, dict)
    assert [l.name for l in again._output_losses] == ["sparse_categorical_crossentropy", "huber"]
    assert again._loss_weights == [1.0, 2.5] and again._output_metric_ids == [["accuracy"], ["mae"]]
    assert again.optimizer.iterations == 2
    y = {"cls": ya, "reg": yb}
    assert again.evaluate(x, y, verbose=0, return_dict=True) == \
        pytest.approx(model.evaluate(x, y, verbose=0, return_dict=True), rel=1e-6)
    both = again.predict(x, verbose=0)
    numpy.testing.assert_allclose(both["reg"], model.predict(x, verbose=0)["reg"], rtol=1e-6)


# ------------------------------------------------------------------ errors
def test_bad_settings_and_data_are_clear_errors(rng):
    x, ya, yb = data(rng)
    model = two_heads()
    with pytest.raises(ValueError, match=r"keyed by 'other', which is not an output.*\['cls', 'reg'\]"):
        model.compile("sgd", loss={"cls": "mse", "other": "mse"})
    with pytest.raises(ValueError, match="needs an entry for every output.*'reg'"):
        model.compile("sgd", loss={"cls": "mse"})
    with pytest.raises(ValueError, match="2 outputs.*`loss` as a list must have one entry per output, got 3"):
        model.compile("sgd", loss=["mse"] * 3)
    with pytest.raises(ValueError, match="`loss_weights` as a list must have one entry per output, got 1"):
        model.compile("sgd", loss=["mse", "mse"], loss_weights=[1.0])
    with pytest.raises(ValueError, match="`loss_weights` must match the number of losses, got 1 losses and 2 "
                                         r"weights: model '.*' has one `loss` for its 2 outputs"):
        model.compile("sgd", loss="mse", loss_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="`metrics` as a list must have one entry per output, got 1"):
        model.compile("sgd", loss="mse", metrics=["mae"])
    with pytest.raises(ValueError, match="no output.*has a loss"):
        model.compile("sgd", loss=[None, None])
    with pytest.raises(ValueError, match="`loss_weights` for output 'reg' must be a finite number"):
        model.compile("sgd", loss=["mse", "mse"], loss_weights={"reg": float("nan")})
    with pytest.raises(ValueError, match="`loss_weights`, the weight of the one `loss` .* must be a finite number"):
        model.compile("sgd", loss="mse", loss_weights=[float("inf")])
    assert not model.compiled
    model.compile("sgd", loss=["sparse_categorical_crossentropy", "mse"])
    with pytest.raises(ValueError, match=r"2 outputs \(cls, reg\).*must hold 2 arrays.*got a list of 1"):
        model.fit(x, [ya], verbose=0)
    with pytest.raises(ValueError, match="list of 2 arrays or a dict keyed by the output names.*array of shape"):
        model.evaluate(x, yb, verbose=0)
    with pytest.raises(ValueError, match="keyed by 'typo', which is not an output"):
        model.evaluate(x, {"cls": ya, "typo": yb}, verbose=0)
    with pytest.raises(ValueError, match="no targets for output 'reg'"):
        model.evaluate(x, {"cls": ya}, verbose=0)
    with pytest.raises(ValueError, match=r"cardinality.*x has 8.*y\[1\] \(output 'reg'\) has 5"):
        model.train_on_batch(x, [ya, yb[:5]])
    with pytest.raises(ValueError, match="class_weight.*single output"):
        model.fit(x, [ya, yb], class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="sample_weight for output 'reg'.*has 3 entries"):
        model.test_on_batch(x, [ya, yb], sample_weight=[numpy.ones(8), numpy.ones(3)])
    # As Keras: a dict of outputs is keyed by its own keys, whatever the output layers are named
    keyed = gpu_dl.Model(model.inputs, {"a": model.outputs[0], "b": model.outputs[1]})
    assert keyed.output_names == model.output_names and sorted(keyed.predict(x, verbose=0)) == ["a", "b"]
    # As Keras, a model may give several outputs of one layer, named alike; a dict of losses keyed by that name
    # gives each of them the loss, and their losses share one log (Keras's logs are a dict: the later one's)
    states = layers.LSTM(3, return_state=True, name="rnn")(gpu_dl.Input((4, 2)))
    alike = gpu_dl.Model(states[0]._keras_history[0]._inbound_nodes[0].input_tensors, states)
    assert alike.output_names == ["rnn"] * 3
    xs = numpy.ones((2, 4, 2), "float32")
    outs = alike.predict(xs, verbose=0)
    assert [a.shape for a in outs] == [(2, 3)] * 3
    alike.compile("sgd", {"rnn": "mae"}, metrics={"rnn": "mse"})
    logs = alike.evaluate(xs, [numpy.zeros((2, 3))] * 3, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "rnn_loss", "rnn_mse", "rnn_mse_1", "rnn_mse_2"]
    numpy.testing.assert_allclose(logs["loss"], sum(numpy.abs(o).mean() for o in outs), rtol=1e-5)
    numpy.testing.assert_allclose(logs["rnn_loss"], numpy.abs(outs[2]).mean(), rtol=1e-5)
    numpy.testing.assert_allclose(logs["rnn_mse_1"], numpy.square(outs[1]).mean(), rtol=1e-5)
    assert alike.metrics_names == ["loss", "compile_metrics", "rnn_loss", "rnn_loss", "rnn_loss"]
