"""compile(weighted_metrics=...) on both backends against NumPy: weighted metrics take the sample (and class)
weights of fit and evaluate, plain metrics do not; Keras's log names (``weighted_<name>`` where the name is taken,
``<output>_weighted_<name>``), evaluate's list order, resets per epoch, validation weights, masks of padded steps,
several outputs (lists, dicts, weights per output), batches from a generator, saving and clear errors. Against
Keras itself: tests/test_keras_oracle_weighted_metrics.py."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers, metrics, optimizers


def _regressor(rng, outputs=2):
    inputs = gpu_dl.Input((3,))
    model = gpu_dl.Model(inputs, layers.Dense(outputs, name="out")(inputs))
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    return model


def _data(rng, n=8):
    return (rng.standard_normal((n, 3)).astype("float32"), rng.standard_normal((n, 2)).astype("float32"),
            rng.random(n).astype("float32"))


def _weighted_mean(values, weights):
    return float((values * weights).sum() / weights.sum())


def test_weighted_and_plain_metrics_against_numpy(xp, rng):
    model = _regressor(rng)
    x, y, sw = _data(rng)
    model.compile(optimizers.SGD(learning_rate=0.0), "mse", metrics=["mae"], weighted_metrics=["mae", "mse"])
    errors = model.predict(x, verbose=0) - y
    abs_rows, sq_rows = numpy.abs(errors).mean(-1), (errors ** 2).mean(-1)
    logs = model.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    assert logs == pytest.approx({"loss": (sq_rows * sw).mean(), "mae": abs_rows.mean(),
                                  "weighted_mae": _weighted_mean(abs_rows, sw), "mse": _weighted_mean(sq_rows, sw)},
                                 rel=1e-5)
    # As Keras lists them: the loss, each metric's own name as often as it is compiled, then the rest sorted.
    assert model.evaluate(x, y, sample_weight=sw, verbose=0) == pytest.approx(
        [logs["loss"], logs["mae"], logs["mae"], logs["mse"], logs["weighted_mae"]], rel=1e-6)
    assert model.metrics_names == ["loss", "compile_metrics"]      # Keras's: its Model.metrics' names
    unweighted = model.evaluate(x, y, verbose=0, return_dict=True)
    assert unweighted["weighted_mae"] == pytest.approx(unweighted["mae"], rel=1e-6)
    assert unweighted["mse"] == pytest.approx(sq_rows.mean(), rel=1e-5)


def test_names_taken_several_times_are_numbered_as_keras(xp, rng):
    model = _regressor(rng)
    x, y, sw = _data(rng)
    model.compile("sgd", "mse", metrics=["mse"], weighted_metrics=["mae", "mae", "mae"])
    logs = model.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    assert sorted(logs) == ["loss", "mae", "mse", "weighted_mae", "weighted_mae_1"]
    assert logs["mae"] == logs["weighted_mae"] == logs["weighted_mae_1"]


def test_class_weights_reach_weighted_metrics(xp, rng):
    inputs = gpu_dl.Input((4,))
    model = gpu_dl.Model(inputs, layers.Dense(3, activation="softmax")(inputs))
    x, labels = rng.standard_normal((12, 4)).astype("float32"), rng.integers(0, 3, 12)
    model.compile(optimizers.SGD(learning_rate=0.0), "sparse_categorical_crossentropy", metrics=["accuracy"],
                  weighted_metrics=["accuracy"])
    class_weight = {0: 1.0, 1: 3.0, 2: 0.5}
    logs = model.fit(x, labels, class_weight=class_weight, batch_size=5, epochs=1, verbose=0).history
    correct = (model.predict(x, verbose=0).argmax(-1) == labels).astype("float64")
    weights = numpy.array([class_weight[int(k)] for k in labels])
    assert logs["accuracy"] == pytest.approx([correct.mean()], rel=1e-6)
    assert logs["weighted_accuracy"] == pytest.approx([_weighted_mean(correct, weights)], rel=1e-6)


def test_reset_each_epoch_and_validation_takes_its_own_weights(xp, rng):
    model = _regressor(rng)
    x, y, sw = _data(rng, 10)
    vx, vy, vsw = _data(rng, 6)
    model.compile(optimizers.SGD(learning_rate=0.0), "mse", weighted_metrics=[metrics.TruePositives(thresholds=0.0)])
    history = model.fit(x, (y > 0).astype("float32"), sample_weight=sw, batch_size=4, epochs=3, verbose=0,
                        validation_data=(vx, (vy > 0).astype("float32"), vsw)).history
    positives = (model.predict(x, verbose=0) > 0) & (y > 0)
    expected = float((positives * sw[:, None]).sum())
    assert history["true_positives"] == pytest.approx([expected] * 3, rel=1e-6)    # one epoch's, never summed
    val_positives = (model.predict(vx, verbose=0) > 0) & (vy > 0)
    assert history["val_true_positives"] == pytest.approx([float((val_positives * vsw[:, None]).sum())] * 3,
                                                          rel=1e-6)


def test_mask_of_padded_steps_reaches_weighted_metrics(xp, rng):
    inputs = gpu_dl.Input((4, 2))
    model = gpu_dl.Model(inputs, layers.Dense(1)(layers.Masking(mask_value=0.0)(inputs)))
    x = rng.standard_normal((5, 4, 2)).astype("float32")
    x[0, 2:] = 0.0
    x[3, 1:] = 0.0
    y = rng.standard_normal((5, 4, 1)).astype("float32")
    model.compile("sgd", "mse", metrics=["mae"], weighted_metrics=["mae"])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    errors = numpy.abs(model.predict(x, verbose=0) - y)[..., 0]
    steps = numpy.any(x != 0, axis=-1).astype("float64")
    assert logs["mae"] == pytest.approx(_weighted_mean(errors, steps), rel=1e-5)
    assert logs["weighted_mae"] == pytest.approx(logs["mae"], rel=1e-6)


def test_metric_weights_multiply_sample_weights_into_the_mask(xp, rng):
    from gpu_dl.models.compiled_metrics import metric_weights
    sw, steps = xp.asarray(rng.random(3)), xp.asarray((rng.random((3, 4)) > 0.5).astype("float64"))
    assert metric_weights(None, None) is None
    assert metric_weights(sw, None) is sw and metric_weights(None, steps) is steps
    numpy.testing.assert_allclose(gpu_dl.backend.to_numpy(metric_weights(sw, steps)),
                                  gpu_dl.backend.to_numpy(steps) * gpu_dl.backend.to_numpy(sw)[:, None])
    numpy.testing.assert_allclose(gpu_dl.backend.to_numpy(metric_weights(sw[:, None], steps)),
                                  gpu_dl.backend.to_numpy(steps) * gpu_dl.backend.to_numpy(sw)[:, None])


def _two_outputs(rng):
    inputs = gpu_dl.Input((3,))
    model = gpu_dl.Model(inputs, [layers.Dense(2, name="a")(inputs), layers.Dense(2, name="b")(inputs)])
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    return model


def test_several_outputs_dicts_lists_and_weights_per_output(xp, rng):
    model = _two_outputs(rng)
    x, y, sw = _data(rng)
    first, second = model.predict(x, verbose=0)
    rows = {"a": (numpy.abs(first - y).mean(-1), ((first - y) ** 2).mean(-1)),
            "b": (numpy.abs(second - y).mean(-1), ((second - y) ** 2).mean(-1))}
    model.compile("sgd", ["mse", "mse"], metrics={"a": ["mse", "mae"]}, weighted_metrics={"b": ["mae"], "a": ["mse"]})
    logs = model.evaluate(x, [y, y], sample_weight=sw, verbose=0, return_dict=True)
    assert logs["a_mse"] == pytest.approx(rows["a"][1].mean(), rel=1e-5)
    assert logs["a_weighted_mse"] == pytest.approx(_weighted_mean(rows["a"][1], sw), rel=1e-5)
    assert logs["b_mae"] == pytest.approx(_weighted_mean(rows["b"][0], sw), rel=1e-5)
    listed = model.evaluate(x, [y, y], sample_weight=sw, verbose=0)
    assert listed == pytest.approx([logs[k] for k in ("loss", "a_loss", "b_loss", "a_mae", "a_mse", "a_weighted_mse",
                                                      "b_mae")], rel=1e-6)
    model.compile("sgd", ["mse", "mse"], metrics=[["mae"], None], weighted_metrics=[["mae"], "mae"])
    ones = numpy.ones_like(sw)
    logs = model.evaluate(x, [y, y], sample_weight=[sw, ones], verbose=0, return_dict=True)
    assert logs["a_weighted_mae"] == pytest.approx(_weighted_mean(rows["a"][0], sw), rel=1e-5)
    assert logs["b_mae"] == pytest.approx(rows["b"][0].mean(), rel=1e-5)
    assert "b_weighted_mae" not in logs


def test_batches_from_a_generator_weigh_the_metrics(xp, rng):
    model = _regressor(rng)
    x, y, sw = _data(rng, 9)
    model.compile("sgd", "mse", weighted_metrics=["mae"])

    def batches():
        for start in range(0, 9, 3):
            yield x[start:start + 3], y[start:start + 3], sw[start:start + 3]
    logs = model.evaluate(batches(), steps=3, verbose=0, return_dict=True)
    rows = numpy.abs(model.predict(x, verbose=0) - y).mean(-1)
    assert logs["mae"] == pytest.approx(_weighted_mean(rows, sw), rel=1e-5)


def test_saved_compile_settings_keep_the_weighted_metrics(xp, rng, tmp_path):
    model = _regressor(rng)
    x, y, sw = _data(rng)
    model.compile("sgd", "mse", metrics=["mae"], weighted_metrics=["mae", metrics.MeanSquaredError(name="wmse")])
    model.save(tmp_path / "m.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "m.keras")
    assert loaded.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True) == pytest.approx(
        model.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True), rel=1e-6)
    several = _two_outputs(rng)
    several.compile("sgd", "mse", weighted_metrics={"b": ["mae"]})
    several.save(tmp_path / "s.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "s.keras")
    assert sorted(loaded.evaluate(x, [y, y], sample_weight=sw, verbose=0, return_dict=True)) == \
        ["a_loss", "b_loss", "b_mae", "loss"]


def test_bad_weighted_metrics_are_refused(rng):
    sequential = gpu_dl.Sequential([gpu_dl.Input((3,)), layers.Dense(2)])
    with pytest.raises(ValueError, match=r"one output: `weighted_metrics` must be a list, not a dict"):
        sequential.compile("sgd", "mse", weighted_metrics={"dense": ["mae"]})
    with pytest.raises(ValueError, match=r"Unknown metric|could not interpret|not a metric|'maee'"):
        sequential.compile("sgd", "mse", weighted_metrics=["maee"])
    with pytest.raises(ValueError, match=r"`weighted_metrics` is keyed by 'c', which is not an output"):
        _two_outputs(rng).compile("sgd", "mse", weighted_metrics={"c": ["mae"]})
    with pytest.raises(ValueError, match=r"`weighted_metrics` as a list must have one entry per output, got 3"):
        _two_outputs(rng).compile("sgd", "mse", weighted_metrics=["mae", "mae", "mae"])
