"""The CTC loss: values against a sum over every alignment of tiny cases, gradients against float64 finite
differences (plain, weighted, through Keras's reductions), rows that cannot fit, empty label rows, float32,
a recurrent model trained with it, the registry and config, and the errors on bad input."""
import itertools
import warnings

import numpy
import pytest

import gpu_dl
from gpu_dl import layers, losses
from gpu_dl.backend import to_numpy
from gpu_dl.ops.ctc import ctc_loss
from gradcheck import assert_gradient


# ------------------------------------------------- written-out expectation
def softmax(z):
    e = numpy.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def collapse(path):
    """Merge repeated classes, then drop the blanks (class 0)."""
    merged = [k for i, k in enumerate(path) if i == 0 or k != path[i - 1]]
    return tuple(k for k in merged if k != 0)


def brute_force_ctc(labels, logits):
    """-log of the summed probability of every path of T classes that collapses to a row's labels."""
    batch, steps, classes = logits.shape
    out = numpy.empty(batch)
    for b in range(batch):
        target = tuple(int(v) for v in labels[b] if v != 0)
        p = softmax(logits[b])
        total = 0.0
        for path in itertools.product(range(classes), repeat=steps):
            if collapse(path) == target:
                total += numpy.prod(p[numpy.arange(steps), list(path)])
        out[b] = -numpy.log(total) if total > 0 else numpy.inf
    return out


def padded_labels(rng, batch, length, classes, fits=None):
    """Label rows of classes 1 .. classes - 1, each of a random length and padded with 0 at its end; with
    ``fits`` (a number of steps) every row fits in that many steps."""
    labels = numpy.zeros((batch, length), dtype=numpy.int64)
    for b in range(batch):
        while True:
            n = rng.integers(0, length + 1)
            row = rng.integers(1, classes, n)
            if fits is None or n + int((row[1:] == row[:-1]).sum()) <= fits:
                break
        labels[b, :n] = row
    return labels


def needed_steps(labels):
    rows = [row[row != 0] for row in labels]
    return numpy.array([len(r) + int((r[1:] == r[:-1]).sum()) for r in rows])


# ------------------------------------------------------------------ values
TINY = [(1, 1, 2, 1), (3, 2, 2, 2), (4, 3, 3, 2), (5, 4, 3, 3), (6, 5, 3, 3), (4, 5, 2, 3), (2, 5, 3, 0),
        (3, 4, 3, 1)]


@pytest.mark.parametrize("batch,steps,classes,length", TINY, ids=str)
def test_values_match_the_sum_over_all_alignments(xp, rng, batch, steps, classes, length):
    labels = padded_labels(rng, batch, length, classes)
    if length >= 2 and classes >= 2:
        labels[0, :2] = 1                       # a repeat: needs a blank between the two
    logits = rng.standard_normal((batch, steps, classes)) * 1.5
    expected = brute_force_ctc(labels, logits)
    got = to_numpy(losses.ctc(xp.asarray(labels), xp.asarray(logits)))
    assert got.shape == (batch,) and got.dtype == numpy.float64
    numpy.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-12)
    # The impossible rows (more labels and blanks between repeats than steps) are +inf, the others finite.
    numpy.testing.assert_array_equal(numpy.isinf(got), needed_steps(labels) > steps)


def test_an_empty_label_row_is_all_blanks(xp, rng):
    logits = rng.standard_normal((3, 6, 4))
    blank = numpy.log(softmax(logits)[:, :, 0]).sum(axis=1)
    for labels in (numpy.zeros((3, 2), dtype=int), numpy.zeros((3, 0), dtype=int)):
        got = to_numpy(losses.ctc(xp.asarray(labels), xp.asarray(logits)))
        numpy.testing.assert_allclose(got, -blank, rtol=1e-12)


def test_float_labels_and_float32(xp, rng):
    labels = padded_labels(rng, 5, 4, 6, fits=12)
    logits = rng.standard_normal((5, 12, 6))
    exact = to_numpy(losses.ctc(xp.asarray(labels), xp.asarray(logits)))
    loss = losses.CTC(reduction=None)
    y32, p32 = xp.asarray(labels.astype("float32")), xp.asarray(logits.astype("float32"))
    values, grad = loss.call(y32, p32), loss.grad(y32, p32)
    assert values.dtype == numpy.float32 and grad.dtype == numpy.float32 and loss(y32, p32).dtype == numpy.float32
    numpy.testing.assert_allclose(to_numpy(values), exact, rtol=2e-6)
    numpy.testing.assert_allclose(to_numpy(grad), to_numpy(loss.grad(xp.asarray(labels), xp.asarray(logits))),
                                  atol=1e-5)
    # Integer logits compute in float32, as Keras's do.
    assert losses.ctc(xp.asarray(labels), xp.asarray(logits.round().astype(int))).dtype == numpy.float32


def test_long_sequences_and_large_logits_stay_finite(xp, rng):
    """Log space: 300 steps of small probabilities, and logits in the hundreds, underflow nothing."""
    labels = padded_labels(rng, 4, 20, 30, fits=300)
    logits = rng.standard_normal((4, 300, 30)).astype("float32") * 3
    values, grad = ctc_loss(xp.asarray(labels), xp.asarray(logits))
    exact = to_numpy(ctc_loss(xp.asarray(labels), xp.asarray(logits.astype(float)), want_grad=False)[0])
    assert numpy.isfinite(to_numpy(values)).all() and numpy.isfinite(to_numpy(grad)).all()
    numpy.testing.assert_allclose(to_numpy(values), exact, rtol=1e-5)
    values, grad = ctc_loss(xp.asarray(labels[:, :3]), xp.asarray(logits[:, :40] * 100))
    assert numpy.isfinite(to_numpy(values)).all() and numpy.isfinite(to_numpy(grad)).all()


# --------------------------------------------------------------- gradients
GRAD_SHAPES = [(1, 1, 2, 1), (3, 4, 3, 2), (4, 9, 5, 3), (3, 17, 6, 5), (2, 7, 4, 0)]


@pytest.mark.parametrize("batch,steps,classes,length", GRAD_SHAPES, ids=str)
def test_gradients_match_finite_differences(xp, rng, batch, steps, classes, length):
    labels = padded_labels(rng, batch, length, classes, fits=steps)
    if length >= 3 and steps >= 3:
        labels[-1, :3] = [0, 1, 0] if batch > 1 else labels[-1, :3]   # Keras reads [0, 1]: a blank label
    y, p = xp.asarray(labels), xp.asarray(rng.standard_normal((batch, steps, classes)))
    loss = losses.CTC(dtype="float64")
    assert_gradient(lambda x: loss.call(y, x).sum(), p, loss.grad(y, p), rng, rtol=1e-6, what="ctc")
    w = xp.asarray(rng.uniform(0.1, 2.0, batch))
    assert_gradient(lambda x: (w * loss.call(y, x)).sum(), p, loss.weighted_grad(y, p, w), rng, what="ctc weighted")
    values = loss.call(y, p)
    for reduction in ("sum_over_batch_size", "sum", "mean_with_sample_weight"):
        reduced = losses.CTC(reduction=reduction, dtype="float64")
        weights = reduced.reduction_weights(y, p, values, w)
        assert_gradient(lambda x: reduced(y, x, sample_weight=w), p, reduced.weighted_grad(y, p, weights), rng,
                        what=f"ctc {reduction}")


def test_rows_that_cannot_fit_are_inf_with_zero_gradient(xp, rng):
    labels = numpy.array([[1, 1, 1], [1, 2, 0], [2, 2, 0], [3, 1, 2]])   # need 5, 2, 3, 3 steps
    logits = rng.standard_normal((4, 3, 4))
    values, grad = ctc_loss(xp.asarray(labels), xp.asarray(logits))
    values, grad = to_numpy(values), to_numpy(grad)
    assert numpy.isinf(values[0]) and values[0] > 0 and numpy.isfinite(values[1:]).all()
    assert (grad[0] == 0).all()
    # The other rows are as they are alone.
    alone_values, alone_grad = ctc_loss(xp.asarray(labels[1:]), xp.asarray(logits[1:]))
    numpy.testing.assert_allclose(values[1:], to_numpy(alone_values), rtol=1e-13)
    numpy.testing.assert_allclose(grad[1:], to_numpy(alone_grad), rtol=1e-12, atol=1e-15)
    assert numpy.isinf(float(to_numpy(losses.CTC()(xp.asarray(labels), xp.asarray(logits)))))


# --------------------------------------------------------------- reductions
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None])
def test_reductions_and_sample_weights(xp, rng, reduction):
    labels = padded_labels(rng, 6, 3, 3, fits=5)
    logits = rng.standard_normal((6, 5, 3))
    per_sample = brute_force_ctc(labels, logits)
    sw = rng.uniform(0, 2, 6)
    loss = losses.CTC(reduction=reduction, dtype="float64")
    for weights in (None, sw):
        got = to_numpy(loss(xp.asarray(labels), xp.asarray(logits),
                            sample_weight=None if weights is None else xp.asarray(weights)))
        weighted = per_sample if weights is None else per_sample * weights
        expected = {"sum": weighted.sum(), "none": weighted, None: weighted,
                    "mean_with_sample_weight": weighted.sum() / (6 if weights is None else weights.sum())}.get(
                        reduction, weighted.mean())
        numpy.testing.assert_allclose(got, expected, rtol=1e-11)


# ------------------------------------------------------------------ models
@pytest.mark.parametrize("loss", ["ctc", losses.CTC()], ids=["name", "instance"])
def test_a_recurrent_model_learns_with_it(xp, rng, loss):
    gpu_dl.backend.set_random_seed(7)
    steps, features, classes = 8, 3, 4
    model = gpu_dl.Sequential([layers.Input((steps, features)), layers.LSTM(12, return_sequences=True),
                               layers.TimeDistributed(layers.Dense(classes))])
    model.compile(optimizer=gpu_dl.optimizers.Adam(0.02), loss=loss)
    x = rng.standard_normal((16, steps, features)).astype("float32")
    y = padded_labels(rng, 16, 3, classes, fits=steps)
    history = model.fit(x, y, epochs=12, batch_size=8, verbose=0).history["loss"]
    assert history[-1] < 0.8 * history[0], history
    # evaluate reports the loss of the model's own predictions.
    value = model.evaluate(x, y, verbose=0)
    assert value == pytest.approx(float(to_numpy(losses.ctc(y, model.predict(x, verbose=0))).mean()), rel=1e-5)


def test_a_training_step_runs_the_alpha_pass_once(xp, rng, monkeypatch):
    # call's values and grad's gradient in one step share one forward recursion; a call on its own (evaluate)
    # leaves nothing behind that a later gradient of other arrays could take. The alpha pass is the array
    # recursion on NumPy and the ctc_alpha kernel on CuPy: both are counted.
    from gpu_dl.ops import ctc
    passes = []
    for name in ("_forward", "ctc_alpha_cuda"):
        original = getattr(ctc, name)
        monkeypatch.setattr(ctc, name, lambda *args, _f=original: passes.append(1) or _f(*args))
    model = gpu_dl.Sequential([layers.Input((5, 2)), layers.Dense(3)])
    model.compile(optimizer="sgd", loss="ctc")
    x = rng.standard_normal((4, 5, 2)).astype("float32")
    y = padded_labels(rng, 4, 2, 3, fits=5)
    model.train_on_batch(x, y)
    assert len(passes) == 1
    loss = losses.CTC(dtype="float64")
    labels, logits = xp.asarray(y), xp.asarray(rng.standard_normal((4, 5, 3)))
    loss.call(labels, logits)
    other = xp.asarray(rng.standard_normal((4, 5, 3)))
    numpy.testing.assert_allclose(to_numpy(loss.grad(labels, other)), to_numpy(ctc_loss(labels, other)[1]))
    loss.call(labels, logits)
    numpy.testing.assert_allclose(to_numpy(loss.grad(labels, logits)), to_numpy(ctc_loss(labels, logits)[1]))


def test_a_rejected_fit_changes_nothing(rng):
    model = gpu_dl.Sequential([layers.Input((6, 2)), layers.Dense(3)])
    model.compile(optimizer="sgd", loss="ctc")
    x = rng.standard_normal((4, 6, 2)).astype("float32")
    model.build((None, 6, 2))
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"Loss 'ctc': labels must be class ids in \[0, 3\)"):
        model.fit(x, numpy.array([[1, 3], [1, 0], [2, 0], [0, 0]]), verbose=0)
    with pytest.raises(ValueError, match="Loss 'ctc' expects `y` of integer labels"):
        model.fit(x, numpy.array([1, 2, 1, 0]), verbose=0)
    assert all((a == b).all() for a, b in zip(before, model.get_weights()))


def test_a_masked_output_is_refused_clearly(rng):
    model = gpu_dl.Sequential([layers.Input((6, 2)), layers.Masking(), layers.LSTM(4, return_sequences=True),
                               layers.Dense(3)])
    model.compile(optimizer="sgd", loss="ctc")
    x = rng.standard_normal((4, 6, 2)).astype("float32")
    x[0, 4:] = 0
    model.build((None, 6, 2))
    before = model.get_weights()
    with pytest.raises(ValueError, match="Loss 'ctc' counts every output step and cannot take the model output's "
                                         "mask"):
        model.fit(x, numpy.array([[1, 2], [1, 0], [2, 2], [0, 0]]), verbose=0)
    assert all((a == b).all() for a, b in zip(before, model.get_weights()))


# -------------------------------------------------------- registry, config
def test_registry_and_config_round_trip():
    assert isinstance(losses.get("ctc"), losses.CTC) and losses.get("ctc").name == "ctc"
    assert isinstance(losses.get("CTC"), losses.CTC)
    assert losses.FUNCTIONS[losses.CTC] is losses.ctc
    assert losses.CTC().get_config() == {"name": "ctc", "reduction": "sum_over_batch_size"}
    loss = losses.CTC(reduction="sum", name="mine")
    config = losses.serialize(loss)
    assert config["class_name"] == "CTC" and config["module"] == "keras.losses"
    again = losses.deserialize(config)
    assert type(again) is losses.CTC and again.get_config() == loss.get_config()
    assert losses.CTC.from_config(loss.get_config()).get_config() == loss.get_config()


def test_a_saved_model_keeps_the_loss(tmp_path, rng):
    model = gpu_dl.Sequential([layers.Input((5, 2)), layers.Dense(3)])
    model.compile(optimizer="adam", loss=losses.CTC(reduction="sum"))
    x, y = rng.standard_normal((4, 5, 2)).astype("float32"), numpy.array([[1, 2], [2, 0], [1, 1], [0, 0]])
    model.fit(x, y, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "m.keras")
    assert type(loaded.loss) is losses.CTC and loaded.loss.reduction == "sum"
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)


# --------------------------------------------------------------- bad input
@pytest.mark.parametrize("y_true,y_pred,error,message", [
    (numpy.zeros(4, int), numpy.zeros((4, 5, 3)), ValueError, r"ctc: needs `y_true` of integer labels"),
    (numpy.zeros((4, 2, 1), int), numpy.zeros((4, 5, 3)), ValueError, r"y_true.shape=\(4, 2, 1\)"),
    (numpy.zeros((4, 2), int), numpy.zeros((4, 5)), ValueError, r"y_pred.shape=\(4, 5\)"),
    (numpy.zeros((3, 2), int), numpy.zeros((4, 5, 3)), ValueError, "ctc: `y_true` and `y_pred` need the same batch"),
    (numpy.zeros((4, 2), int), numpy.zeros((4, 0, 3)), ValueError, "at least one time step"),
    (numpy.array([[1, 3]]), numpy.zeros((1, 5, 3)), ValueError, r"ctc: labels must be class ids in \[0, 3\)"),
    (numpy.array([[-1, 1]]), numpy.zeros((1, 5, 3)), ValueError, "got values from -1 to 1"),
    (numpy.array([[1.5, 1]]), numpy.zeros((1, 5, 3)), ValueError, "ctc: `y_true` must hold integer class ids"),
    (numpy.array([["a", "b"]]), numpy.zeros((1, 5, 3)), TypeError, "ctc: `y_true` must hold integer"),
    (numpy.zeros((1, 2), int), numpy.full((1, 5, 3), "x"), TypeError, "ctc: `y_pred` must hold float logits"),
])
def test_bad_inputs_say_what_the_loss_needs(y_true, y_pred, error, message):
    with pytest.raises(error, match=message):
        losses.ctc(y_true, y_pred)
    with pytest.raises(error, match=message):
        losses.CTC().grad(y_true, y_pred)


def test_validate_targets():
    loss = losses.CTC()
    with pytest.raises(ValueError, match=r"Loss 'ctc' needs a model output of per-step logits"):
        loss.validate_targets(numpy.zeros((4, 2), int), (None, 3))
    with pytest.raises(ValueError, match=r"shape \(batch, max_label_length\)"):
        loss.validate_targets(numpy.zeros((4, 2, 1), int), (None, 5, 3))
    with pytest.raises(ValueError, match="integer class ids"):
        loss.validate_targets(numpy.array([[0.5, 0]]), (None, 5, 3))
    with pytest.raises(ValueError, match=r"in \[0, 3\).*got values from 0 to 3"):
        loss.validate_targets(numpy.array([[1, 3], [0, 0]]), (None, 5, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss.validate_targets(numpy.array([[1, 1, 2], [2, 0, 0], [0, 0, 0]]), (None, 4, 3))
    with pytest.warns(RuntimeWarning, match="a 0 before a nonzero label"):
        loss.validate_targets(numpy.array([[1, 0, 2]]), (None, 5, 3))
    with pytest.warns(RuntimeWarning, match=r"1 rows of `y` need more than the model's 3 output steps \(up to 4"):
        loss.validate_targets(numpy.array([[1, 1, 2], [2, 0, 0]]), (None, 3, 3))
