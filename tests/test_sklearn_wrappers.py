"""gpu_dl.wrappers: scikit-learn's own estimator checks (with the exceptions Keras's tests allow), the label
encoding of the classifier, get_params/set_params/clone, a Pipeline and cross_val_score on the digits, bad
models refused, and the same fits as Keras 3's wrappers where Keras is installed."""
import functools
import os

import numpy
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_classification, make_regression  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import gpu_dl  # noqa: E402
from gpu_dl.wrappers import SKLearnClassifier, SKLearnRegressor, SKLearnTransformer  # noqa: E402


def dynamic_model(X, y, loss, out_activation_function="softmax", layers=(10,), lib=gpu_dl, optimizer="rmsprop",
                  seed=None):
    """An MLP sized from the data (Keras's test model); with ``seed``, its weights are drawn by NumPy from it, so
    gpu_dl and Keras start from the same weights."""
    inputs = lib.Input((X.shape[1],))
    hidden = inputs
    for units in layers:
        hidden = lib.layers.Dense(units, activation="relu")(hidden)
    outputs = lib.layers.Dense(y.shape[1] if y.ndim > 1 else 1, activation=out_activation_function)(hidden)
    model = lib.Model(inputs, outputs)
    if seed is not None:
        rng = numpy.random.default_rng(seed)
        model.set_weights([0.3 * rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    model.compile(loss=loss, optimizer=optimizer() if callable(optimizer) else optimizer)
    return model


class NamedDynamicModel:
    """``dynamic_model`` under a name: the checks' test ids spell out each estimator's repr, which for a function
    holds its address, different in each process, and pytest-xdist's workers must collect the same ids."""

    def __call__(self, *args, **kwargs):
        return dynamic_model(*args, **kwargs)

    def __repr__(self):
        return "dynamic_model"


EXPECTED_FAILED_CHECKS = {
    "SKLearnClassifier": {
        "check_classifiers_one_label_sample_weights": "0 sample weight is not ignored",
        "check_classifiers_classes": "with small test cases the estimator returns not all classes sometimes",
        "check_classifier_data_not_an_array": "This test assumes reproducibility in fit.",
        "check_supervised_y_2d": "This test assumes reproducibility in fit.",
        "check_fit_idempotent": "This test assumes reproducibility in fit.",
        "check_classifiers_train": "decision_function can return both probabilities and logits",
    },
    "SKLearnRegressor": {},
    "SKLearnTransformer": {},
}


@parametrize_with_checks(
    [SKLearnClassifier(model=NamedDynamicModel(),
                       model_kwargs={"loss": "categorical_crossentropy", "layers": [20, 20, 20]},
                       fit_kwargs={"epochs": 5, "verbose": 0}),
     SKLearnRegressor(model=NamedDynamicModel(), model_kwargs={"loss": "mse"}, fit_kwargs={"verbose": 0}),
     SKLearnTransformer(model=NamedDynamicModel(), model_kwargs={"loss": "mse"}, fit_kwargs={"verbose": 0})],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS[type(estimator).__name__])
def test_sklearn_estimator_checks(estimator, check, on_cpu):
    check(estimator)


def classifier(**fit_kwargs):
    return SKLearnClassifier(dynamic_model, model_kwargs={"loss": "categorical_crossentropy", "layers": [16]},
                             fit_kwargs={"epochs": 30, "verbose": 0, **fit_kwargs})


def test_classifier_encodes_labels_one_hot_and_decodes_by_arg_max(xp):
    X, y = make_classification(n_samples=60, n_features=6, n_informative=4, n_classes=3, random_state=0)
    labels = numpy.array(["cat", "ant", "bee"])[y]
    seen = {}

    def model(X, y, **kwargs):
        seen["X"], seen["y"] = X, y
        return dynamic_model(X, y, **kwargs)

    clf = SKLearnClassifier(model, model_kwargs={"loss": "categorical_crossentropy"},
                            fit_kwargs={"epochs": 2, "verbose": 0}).fit(X, labels)
    assert list(clf.classes_) == ["ant", "bee", "cat"]
    # One column per class in sorted order, as sklearn's OneHotEncoder orders them.
    numpy.testing.assert_array_equal(seen["y"], (labels[:, None] == clf.classes_[None, :]).astype("float64"))
    numpy.testing.assert_array_equal(seen["X"], X)
    outputs = clf.decision_function(X)
    assert outputs.shape == (60, 3)
    numpy.testing.assert_allclose(outputs, clf.model_.predict(X, verbose=0), rtol=1e-6)
    numpy.testing.assert_array_equal(clf.predict(X), clf.classes_[numpy.argmax(outputs, axis=1)])
    assert clf.score(X, labels) == pytest.approx(numpy.mean(clf.predict(X) == labels))
    assert clf.epoch_ == 2 and len(clf.history_.history["loss"]) == 2


def test_classifier_binary_targets_and_fit_kwargs_precedence(on_cpu):
    X, y = make_classification(n_samples=40, n_features=5, random_state=1)
    clf = SKLearnClassifier(dynamic_model, model_kwargs={"loss": "categorical_crossentropy"},
                            fit_kwargs={"epochs": 3, "verbose": 0})
    clf.fit(X, y, epochs=2)
    assert clf.epoch_ == 2
    assert clf.fit_kwargs == {"epochs": 3, "verbose": 0}       # the call's kwargs do not change the parameter
    assert clf.model_.output_shape == (None, 2)
    assert set(clf.predict(X)) <= {0, 1} and clf.predict(X).shape == (40,)


def test_regressor_and_transformer_pass_targets_through(on_cpu):
    X, y = make_regression(n_samples=80, n_features=4, noise=0.0, random_state=2)
    y = y / numpy.std(y)
    reg = SKLearnRegressor(dynamic_model, model_kwargs={"loss": "mse", "out_activation_function": None,
                                                        "optimizer": lambda: gpu_dl.optimizers.Adam(0.02)},
                           fit_kwargs={"epochs": 60, "verbose": 0, "batch_size": 16}).fit(X, y)
    predictions = reg.predict(X)
    assert predictions.shape == (80,)
    numpy.testing.assert_allclose(predictions, reg.model_.predict(X, verbose=0)[:, 0], rtol=1e-6)
    assert reg.score(X, y) > 0.9
    # As Keras's, the wrappers validate y as scikit-learn does by default: one target column.
    with pytest.raises(ValueError, match="1d array"):
        SKLearnRegressor(dynamic_model, model_kwargs={"loss": "mse"}).fit(X, numpy.stack([y, -y], axis=1))
    trs = SKLearnTransformer(dynamic_model, model_kwargs={"loss": "mse", "out_activation_function": None,
                                                          "layers": [6]},
                             fit_kwargs={"epochs": 1, "verbose": 0})
    out = trs.fit(X, y).transform(X)
    assert out.shape == (80, 1)
    numpy.testing.assert_allclose(out, trs.model_.predict(X, verbose=0), rtol=1e-6)
    assert trs.fit_transform(X, y).shape == (80, 1)


def test_params_clone_and_a_model_instance_left_untrained(on_cpu):
    X, y = make_classification(n_samples=30, n_features=4, random_state=3)
    clf = classifier(epochs=1)
    params = clf.get_params()
    assert set(params) == {"model", "warm_start", "model_kwargs", "fit_kwargs"}
    assert params["model"] is dynamic_model and params["warm_start"] is False
    clf.set_params(warm_start=True, fit_kwargs={"epochs": 2, "verbose": 0})
    assert clf.warm_start is True and clf.fit_kwargs["epochs"] == 2
    copy = clone(clf.fit(X, y))
    assert not hasattr(copy, "model_") and copy.get_params() == clf.get_params()

    model = dynamic_model(X, numpy.zeros((30, 2)), loss="categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    wrapped = SKLearnClassifier(model, fit_kwargs={"epochs": 2, "verbose": 0}).fit(X, y)
    assert wrapped.model_ is not model
    for a, b in zip(model.get_weights(), before):
        numpy.testing.assert_array_equal(a, b)
    assert any(not numpy.array_equal(a, b) for a, b in zip(wrapped.model_.get_weights(), before))
    copied = clone(wrapped)
    assert copied.model is not model and isinstance(copied.model, gpu_dl.Model)


def test_warm_start_goes_on_training_the_fitted_model(on_cpu):
    X, y = make_classification(n_samples=30, n_features=4, random_state=4)
    cold = classifier(epochs=1).fit(X, y)
    first = cold.model_
    assert cold.fit(X, y).model_ is not first
    warm = classifier(epochs=1).set_params(warm_start=True).fit(X, y)
    first, weights = warm.model_, [w.copy() for w in warm.model_.get_weights()]
    assert warm.fit(X, y).model_ is first
    assert any(not numpy.array_equal(a, b) for a, b in zip(first.get_weights(), weights))


def test_pipeline_and_cross_val_score_on_the_digits(xp):
    X, y = load_digits(return_X_y=True)
    # Adam at ten times its default rate for 5 epochs learns as much as at its default for 20 (mean scores
    # 0.89 to 0.91 over six seeds, against 0.88 to 0.90), in a quarter of the steps: the CuPy body's are
    # emulated kernel launches on a CPU-only machine.
    net = SKLearnClassifier(dynamic_model, model_kwargs={"loss": "categorical_crossentropy", "layers": [64],
                                                         "optimizer": functools.partial(gpu_dl.optimizers.Adam, 0.01)},
                            fit_kwargs={"epochs": 5, "batch_size": 32, "verbose": 0})
    pipe = make_pipeline(StandardScaler(), net)
    scores = cross_val_score(pipe, X[:900], y[:900], cv=3)
    assert scores.shape == (3,)
    assert scores.mean() > 0.85, scores


def test_bad_models_and_targets_are_refused(on_cpu):
    X, y = make_classification(n_samples=20, n_features=4, random_state=5)
    uncompiled = gpu_dl.Sequential([gpu_dl.Input((4,)), gpu_dl.layers.Dense(2)])
    with pytest.raises(RuntimeError, match="compiled"):
        SKLearnClassifier(uncompiled).fit(X, y)
    with pytest.raises(TypeError, match="SKLearnRegressor: `model` must be"):
        SKLearnRegressor(lambda X, y: "not a model").fit(X, y)
    with pytest.raises(TypeError, match="compiled gpu_dl Model or a callable"):
        SKLearnRegressor(3).fit(X, y)
    with pytest.raises(ValueError, match="only one class"):
        classifier().fit(X, numpy.zeros(20))
    with pytest.raises(ValueError, match="binary and multiclass"):
        classifier().fit(X, numpy.linspace(0, 1, 20))
    with pytest.raises(sklearn.exceptions.NotFittedError):
        classifier().predict(X)


# ---------------------------------------------------------------- Keras 3 as the oracle

@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


@pytest.mark.parametrize("kind", ["classifier", "regressor", "transformer"])
def test_same_fit_as_keras_wrappers(keras, kind, on_cpu):
    """The same data, the same starting weights and the same batches (no shuffling): both wrappers encode the
    targets alike and their models train alike, so the outputs agree to float32 rounding."""
    if kind == "classifier":
        X, y = load_digits(return_X_y=True)
        X, y = X[:200] / 16.0, y[:200]
        loss, activation = "categorical_crossentropy", "softmax"
        ours_class, theirs_class = SKLearnClassifier, keras.wrappers.SKLearnClassifier
    else:
        X, y = make_regression(n_samples=64, n_features=5, random_state=6)
        y = y / numpy.std(y)
        loss, activation = "mse", None
        ours_class, theirs_class = ((SKLearnRegressor, keras.wrappers.SKLearnRegressor) if kind == "regressor"
                                    else (SKLearnTransformer, keras.wrappers.SKLearnTransformer))
    fit_kwargs = {"epochs": 3, "batch_size": 16, "shuffle": False, "verbose": 0}

    def estimator(cls, lib):
        return cls(dynamic_model, fit_kwargs=fit_kwargs,
                   model_kwargs={"loss": loss, "out_activation_function": activation, "layers": [12], "lib": lib,
                                 "optimizer": lambda: lib.optimizers.Adam(0.01), "seed": 7})

    ours, theirs = estimator(ours_class, gpu_dl).fit(X, y), estimator(theirs_class, keras).fit(X, y)
    numpy.testing.assert_allclose(ours.history_.history["loss"], theirs.history_.history["loss"], rtol=1e-4)
    if kind == "classifier":
        numpy.testing.assert_array_equal(ours.classes_, theirs.classes_)
        numpy.testing.assert_allclose(ours.decision_function(X), theirs.decision_function(X), rtol=1e-4,
                                      atol=1e-6)
        numpy.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
        assert ours.score(X, y) == pytest.approx(theirs.score(X, y))
    elif kind == "regressor":
        numpy.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-4, atol=1e-5)
        assert ours.score(X, y) == pytest.approx(theirs.score(X, y), rel=1e-4)
    else:
        numpy.testing.assert_allclose(ours.transform(X), theirs.transform(X), rtol=1e-4, atol=1e-5)
