"""PearsonCorrelation and ConcordanceCorrelation: per-sample coefficients against values worked by hand and
NumPy's corrcoef, averaged over batches as Keras's streaming metrics do, and against Keras 3; both backends."""
import json
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import metrics
from gpu_dl.backend import to_numpy


def pearson_rows(t, p):
    return numpy.array([numpy.corrcoef(a, b)[0, 1] for a, b in zip(t, p)])


def concordance_rows(t, p):
    """Lin's coefficient written out: 2 cov / (var_t + var_p + (mean_t - mean_p)^2), population moments."""
    return numpy.array([2 * numpy.mean((a - a.mean()) * (b - b.mean()))
                        / (a.var() + b.var() + (a.mean() - b.mean()) ** 2)
                        for a, b in zip(t, p)])


def regression_batches(rng, sizes=(17, 1, 3, 33), weighted=(False, True, False, True), width=5):
    out = []
    for n, w in zip(sizes, weighted):
        t = rng.standard_normal((n, width))
        out.append((t, 0.6 * t + rng.standard_normal((n, width)), rng.random(n) if w else None))
    return out


def test_values_worked_by_hand(xp):
    t = xp.asarray([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    # deviations (-1, 0, 1) and (-1, 1, 0), both of variance 2/3: mean product 1/3 over 2/3
    got = metrics.pearson_correlation(t, xp.asarray([[1.0, 3.0, 2.0], [6.0, 4.0, 2.0]]))
    numpy.testing.assert_allclose(to_numpy(got), [0.5, -1.0], rtol=1e-12)
    # shifted by one: covariance 2/3, variances 2/3 each, means 1 apart: (4/3) / (7/3)
    assert metrics.ConcordanceCorrelation()(t, t + 1) == pytest.approx(4 / 7, rel=1e-6)
    assert metrics.PearsonCorrelation()(t[:1], xp.asarray([[1.0, 3.0, 2.0]])) == pytest.approx(0.5, rel=1e-12)


@pytest.mark.parametrize("name,rows", [("PearsonCorrelation", pearson_rows),
                                       ("ConcordanceCorrelation", concordance_rows)])
def test_the_mean_over_samples_of_all_batches(xp, rng, name, rows):
    batches = regression_batches(rng)
    metric = getattr(metrics, name)(dtype="float64")
    for t, p, w in batches:
        metric.update_state(xp.asarray(t), xp.asarray(p), None if w is None else xp.asarray(w))
    values = numpy.concatenate([rows(t, p) for t, p, _ in batches])
    weights = numpy.concatenate([numpy.ones(len(t)) if w is None else w for t, _, w in batches])
    assert metric.result() == pytest.approx((values * weights).sum() / weights.sum(), rel=1e-6)
    metric.reset_state()
    assert metric.result() == 0.0


@pytest.mark.parametrize("axis", [1, (1, 2)])
def test_other_axes(xp, rng, axis):
    t, p = rng.standard_normal((7, 3, 4)), rng.standard_normal((7, 3, 4))
    metric = metrics.PearsonCorrelation(axis=axis, dtype="float64")
    metric.update_state(xp.asarray(t), xp.asarray(p))
    if axis == 1:      # one coefficient per (sample, column); each sample's mean of them, then their mean
        want = numpy.mean([pearson_rows(t[:, :, j], p[:, :, j]) for j in range(4)])
    else:
        want = pearson_rows(t.reshape(7, -1), p.reshape(7, -1)).mean()
    assert metric.result() == pytest.approx(want, rel=1e-10)


def test_a_constant_sample_has_no_pearson_coefficient(xp):
    with numpy.errstate(all="raise"):      # NaN, as Keras gives, without a floating-point warning
        value = metrics.pearson_correlation(xp.ones((1, 3)), xp.asarray([[1.0, 2.0, 3.0]]))
    assert numpy.isnan(float(value[0]))


def test_configs_round_trip_and_are_keras_s():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    for name in ("PearsonCorrelation", "ConcordanceCorrelation"):
        for kwargs in ({}, {"axis": (1, 2), "name": "c", "dtype": "float64"}):
            ours = getattr(metrics, name)(**kwargs)
            assert ours.get_config() == getattr(keras.metrics, name)(**kwargs).get_config()
            again = metrics.deserialize(json.loads(json.dumps(metrics.serialize(ours))))   # the tuple comes back a list
            assert type(again) is type(ours) and again.get_config() == ours.get_config()
            again.update_state(numpy.ones((2, 3, 4)), numpy.arange(24.0).reshape(2, 3, 4))


def test_they_match_keras(rng):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    batches = [(t.astype("float32"), p.astype("float32"), None if w is None else w.astype("float32"))
               for t, p, w in regression_batches(rng)]
    deep = [(rng.standard_normal((n, 3, 4)).astype("float32"), rng.standard_normal((n, 3, 4)).astype("float32"), None)
            for n in (5, 7)]
    for name in ("PearsonCorrelation", "ConcordanceCorrelation"):
        for kwargs, data in (({}, batches), ({"axis": 1}, deep), ({"axis": (1, 2)}, deep)):
            ours, theirs = getattr(metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
            for y_true, y_pred, sw in data:
                ours.update_state(y_true, y_pred, sample_weight=sw)
                theirs.update_state(y_true, y_pred, sample_weight=sw)
            assert ours.result() == pytest.approx(float(keras.ops.convert_to_numpy(theirs.result())), rel=2e-6,
                                                  abs=1e-7), f"{name} {kwargs}"
    t, p, _ = batches[0]
    for fn in ("pearson_correlation", "concordance_correlation"):
        numpy.testing.assert_allclose(getattr(metrics, fn)(t, p),
                                      keras.ops.convert_to_numpy(getattr(keras.metrics, fn)(t, p)), rtol=2e-6,
                                      atol=1e-7)


def test_bad_axis_names_the_metric():
    for make, match in [(lambda: metrics.PearsonCorrelation(axis="last"), "PearsonCorrelation: axis must be"),
                        (lambda: metrics.ConcordanceCorrelation(axis=(1, 1.5)), "ConcordanceCorrelation: axis"),
                        (lambda: metrics.ConcordanceCorrelation(axis=()), "ConcordanceCorrelation: axis")]:
        with pytest.raises(ValueError, match=match):
            make()


def test_a_compiled_model_reports_them(xp, rng, capsys):
    x = rng.standard_normal((48, 5)).astype("float32")
    y = (x @ rng.standard_normal((5, 4))).astype("float32")
    gpu_dl.utils.set_random_seed(0)
    model = gpu_dl.Sequential([gpu_dl.layers.Input((5,)), gpu_dl.layers.Dense(4)])
    model.compile(optimizer="adam", loss="mse", metrics=["pearson_correlation", metrics.ConcordanceCorrelation()])
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=2)
    assert len(history.history["pearson_correlation"]) == 2
    last = history.history["concordance_correlation"][-1]
    # Keras's verbose=2 line: 4 decimals above 1e-3, else (negative values too) 4 significant digits in e-notation
    shown = f"{last:.4f}" if last > 1e-3 else f"{last:.4e}"
    assert f"concordance_correlation: {shown}" in capsys.readouterr().out
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0).astype("float64")
    assert logs["pearson_correlation"] == pytest.approx(pearson_rows(y, p).mean(), rel=1e-5)
    assert logs["concordance_correlation"] == pytest.approx(concordance_rows(y, p).mean(), rel=1e-5)
