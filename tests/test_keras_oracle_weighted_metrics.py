"""compile(weighted_metrics=...) against Keras 3 itself (where Keras is installed): the same models, weights and data
give the same log names and values in evaluate (its dict and its list), in fit's history per epoch with weighted
validation data, with class weights, for several outputs (lists, dicts, weights per output), and through .keras
files written by one library and read by the other."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402


def _regressor(lib):
    inputs = lib.Input((3,))
    return lib.Model(inputs, lib.layers.Dense(2, name="out")(inputs))


def _two_outputs(lib):
    inputs = lib.Input((3,))
    return lib.Model(inputs, [lib.layers.Dense(2, name="a")(inputs), lib.layers.Dense(2, name="b")(inputs)])


def _pair(make, rng):
    ours, theirs = make(gpu_dl), make(keras)
    weights = [rng.standard_normal(w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    return ours, theirs


def _data(rng, n=8):
    return (rng.standard_normal((n, 3)).astype("float32"), rng.standard_normal((n, 2)).astype("float32"),
            rng.random(n).astype("float32"))


def _same_logs(ours, theirs):
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        numpy.testing.assert_allclose(ours[key], theirs[key], rtol=2e-5, atol=1e-6, err_msg=key)


ONE_OUTPUT = [(["mae"], ["mae"]), (["mae", "mae"], ["mae", "mse"]), (["mse"], ["mae"]), (None, ["mae"]),
              (["mse"], ["mae", "mae", "mae"]), (["mae"], None)]


@pytest.mark.parametrize("plain, weighted", ONE_OUTPUT, ids=[f"{p}-{w}" for p, w in ONE_OUTPUT])
def test_one_output_names_values_order_and_history_as_keras(plain, weighted):
    rng = numpy.random.default_rng(0)
    models = _pair(_regressor, rng)
    x, y, sw = _data(rng)
    vx, vy, vsw = _data(rng, 6)
    for m in models:
        m.compile(optimizer="sgd", loss="mse", metrics=plain, weighted_metrics=weighted)
    _same_logs(*[m.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True) for m in models])
    listed = [m.evaluate(x, y, sample_weight=sw, verbose=0) for m in models]
    numpy.testing.assert_allclose(listed[0], listed[1], rtol=2e-5)
    histories = [m.fit(x, y, sample_weight=sw, batch_size=4, epochs=2, shuffle=False, verbose=0,
                       validation_data=(vx, vy, vsw)).history for m in models]
    _same_logs(*histories)
    assert models[0].metrics_names == models[1].metrics_names


def test_class_weights_weigh_weighted_metrics_as_keras():
    rng = numpy.random.default_rng(1)

    def classifier(lib):
        inputs = lib.Input((4,))
        return lib.Model(inputs, lib.layers.Dense(3, activation="softmax")(inputs))
    models = _pair(classifier, rng)
    x, labels = rng.standard_normal((12, 4)).astype("float32"), rng.integers(0, 3, 12)
    for m in models:
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  weighted_metrics=["accuracy", "sparse_categorical_crossentropy"])
    histories = [m.fit(x, labels, class_weight={0: 1.0, 1: 3.0, 2: 0.5}, batch_size=5, epochs=2, shuffle=False,
                       verbose=0).history for m in models]
    _same_logs(*histories)


SEVERAL = [({"a": ["mse", "mae"]}, {"b": ["mae"], "a": ["mse"]}, None),
           ([["mae"], None], [["mae"], "mae"], "per output"),
           (None, ["mae", "mse"], None),
           ({"b": "mae"}, {"b": ["mae", "mae"]}, "per output")]


@pytest.mark.parametrize("plain, weighted, per_output", SEVERAL, ids=[str(i) for i in range(len(SEVERAL))])
def test_several_outputs_as_keras(plain, weighted, per_output):
    rng = numpy.random.default_rng(2)
    models = _pair(_two_outputs, rng)
    x, y, sw = _data(rng)
    weights = [sw, numpy.ones_like(sw)] if per_output else sw
    for m in models:
        m.compile(optimizer="sgd", loss=["mse", "mse"], metrics=plain, weighted_metrics=weighted)
    _same_logs(*[m.evaluate(x, [y, y], sample_weight=weights, verbose=0, return_dict=True) for m in models])
    listed = [m.evaluate(x, [y, y], sample_weight=weights, verbose=0) for m in models]
    numpy.testing.assert_allclose(listed[0], listed[1], rtol=2e-5)
    _same_logs(*[m.fit(x, [y, y], sample_weight=weights, batch_size=4, epochs=2, shuffle=False, verbose=0).history
                 for m in models])


def test_files_keep_the_weighted_metrics_both_ways(tmp_path):
    rng = numpy.random.default_rng(3)
    ours, theirs = _pair(_regressor, rng)
    x, y, sw = _data(rng)
    ours.compile(optimizer="adam", loss="mse", metrics=["mae"], weighted_metrics=["mae", "mse"])
    theirs.compile(optimizer="adam", loss="mse", metrics=["mae"], weighted_metrics=["mae", "mse"])
    ours.save(tmp_path / "ours.keras")
    theirs.save(tmp_path / "theirs.keras")
    expected = theirs.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    _same_logs(keras.models.load_model(tmp_path / "ours.keras").evaluate(x, y, sample_weight=sw, verbose=0,
                                                                         return_dict=True), expected)
    _same_logs(gpu_dl.models.load_model(tmp_path / "theirs.keras").evaluate(x, y, sample_weight=sw, verbose=0,
                                                                            return_dict=True), expected)
    several = _pair(_two_outputs, rng)
    for m in several:
        m.compile(optimizer="adam", loss="mse", weighted_metrics={"b": ["mae"]})
    several[0].save(tmp_path / "several.keras")
    loaded = keras.models.load_model(tmp_path / "several.keras")
    _same_logs(loaded.evaluate(x, [y, y], sample_weight=sw, verbose=0, return_dict=True),
               several[1].evaluate(x, [y, y], sample_weight=sw, verbose=0, return_dict=True))
