"""scikit-learn estimators around gpu_dl models, as Keras 3's ``keras.wrappers``.

``SKLearnClassifier``, ``SKLearnRegressor`` and ``SKLearnTransformer`` take a compiled model, or a callable
``model(X=..., y=..., **model_kwargs)`` that builds and compiles one from the training data, and give it
scikit-learn's estimator interface: ``fit``/``predict``/``score`` (``decision_function`` for the classifier,
``transform`` for the transformer), ``get_params``/``set_params`` and ``sklearn.base.clone``, so the model can
sit in a ``Pipeline`` or be handed to ``cross_val_score`` and ``GridSearchCV``.

As in Keras, the classifier one-hot encodes its targets before ``model.fit`` (so its model has one output per
class and trains with ``categorical_crossentropy``-like losses), and ``predict`` maps the model's outputs back to
the class labels by their arg-max; a regressor's or transformer's targets go to the model as they are, a 1-D
target as a column.
"""
import copy

import numpy as np

try:
    import sklearn
    import sklearn.pipeline
    import sklearn.preprocessing
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
except ImportError:         # scikit-learn is a dependency; this keeps `import gpu_dl.wrappers` working without it
    sklearn = None

    class BaseEstimator:
        pass

    class ClassifierMixin:
        pass

    class RegressorMixin:
        pass

    class TransformerMixin:
        pass

__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"]


def _require_sklearn(name):
    if sklearn is None:
        raise ImportError(f"{name} requires scikit-learn: `pip install scikit-learn`.")


def _validate_data(estimator, *args, **kwargs):
    # scikit-learn 1.6 moved BaseEstimator._validate_data to a function.
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:
        return estimator._validate_data(*args, **kwargs)
    return validate_data(estimator, *args, **kwargs)


def _target_type(y):
    from sklearn.utils.multiclass import type_of_target
    kind = type_of_target(y)
    if kind == "unknown":
        raise ValueError(f"Unknown label type for data: {y!r:.200}")
    return kind


def _check_compiled(model, owner):
    from .models import Model
    if not isinstance(model, Model):
        raise TypeError(f"{owner}: `model` must be a gpu_dl Model, or a callable returning one; it gave "
                        f"{model!r:.200}.")
    if not model.compiled or not model.loss or not model.optimizer:
        raise RuntimeError(f"{owner}: the model needs to be compiled, with a loss and an optimizer.")


class TargetReshaper(TransformerMixin, BaseEstimator):
    """Makes a 1-D target a column for ``transform`` and squeezes a column back to 1-D in ``inverse_transform``
    where the fitted target was 1-D (scikit-learn's encoders take 2-D input only)."""

    def fit(self, y):
        self.ndim_ = y.ndim
        return self

    def transform(self, y):
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def inverse_transform(self, y):
        from sklearn.utils.validation import check_is_fitted
        check_is_fitted(self)
        return np.squeeze(y, axis=1) if self.ndim_ == 1 and y.ndim == 2 else y


class SKLBase(BaseEstimator):
    """What the three wrappers share.

    Args:
        model: a compiled gpu_dl ``Model``, or a callable returning one. A model is cloned
            (``gpu_dl.models.clone_model``, which compiles the clone as the original) before each fit, so the
            estimator given is never trained itself. A callable is called as ``model(X=X, y=y, **model_kwargs)``
            with the validated training inputs and the encoded targets, and must return a compiled model.
        warm_start: False (the default): each ``fit`` starts from a new model. True: a ``fit`` after the first
            goes on training the fitted ``model_`` (Keras 3.15 documents this and ignores the flag).
        model_kwargs: keyword arguments for the callable ``model``.
        fit_kwargs: keyword arguments for ``model.fit`` (``epochs``, ``batch_size``, ...); those given to
            ``fit`` itself take precedence.

    Attributes (after ``fit``):
        model_: the fitted model.
        history_: the ``History`` its ``fit`` returned.
    """

    def __init__(self, model, warm_start=False, model_kwargs=None, fit_kwargs=None):
        _require_sklearn(type(self).__name__)
        self.model = model
        self.warm_start = warm_start
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs

    def _more_tags(self):           # scikit-learn < 1.6
        return {"non_deterministic": True}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True
        return tags

    def __sklearn_clone__(self):
        """An unfitted copy with the same parameters: a model instance deep-copied, a callable ``model`` shared
        (``sklearn.base.clone`` calls this)."""
        from .models import Model
        # A Model is callable too: test for it first.
        model = copy.deepcopy(self.model) if isinstance(self.model, Model) else self.model
        return type(self)(model=model, warm_start=self.warm_start, model_kwargs=self.model_kwargs,
                          fit_kwargs=self.fit_kwargs)

    @property
    def epoch_(self):
        """The number of epochs the last ``fit`` ran (0 before one)."""
        history = getattr(self, "history_", None)
        return 0 if history is None else len(history.epoch)

    def _get_model(self, X, y):
        from .models import Model, clone_model
        if self.warm_start and hasattr(self, "model_"):
            return self.model_
        if isinstance(self.model, Model):
            return clone_model(self.model)
        if not callable(self.model):
            raise TypeError(f"{type(self).__name__}: `model` must be a compiled gpu_dl Model or a callable "
                            f"returning one; got {self.model!r:.200}.")
        return self.model(X=X, y=y, **(self.model_kwargs or {}))

    def fit(self, X, y, **kwargs):
        """Fit a model (see ``model`` and ``warm_start``) on ``X`` (n_samples, n_features) and ``y``
        (n_samples,) or (n_samples, n_outputs); ``kwargs`` go to ``model.fit`` over ``fit_kwargs``.
        Returns the estimator."""
        X, y = _validate_data(self, X, y)
        y = self._process_target(y, reset=True)
        model = self._get_model(X, y)
        _check_compiled(model, type(self).__name__)
        fit_kwargs = dict(self.fit_kwargs or {})
        fit_kwargs.update(kwargs)
        self.history_ = model.fit(X, y, **fit_kwargs)
        self.model_ = model
        return self

    def predict(self, X):
        """The fitted model's predictions for ``X``, as targets (class labels for the classifier)."""
        from sklearn.utils.validation import check_is_fitted
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False)
        return self._reverse_process_target(self.model_.predict(X))

    def _process_target(self, y, reset=False):
        _target_type(y)
        if reset:
            self._target_encoder = TargetReshaper().fit(y)
        return self._target_encoder.transform(y)

    def _reverse_process_target(self, y):
        return self._target_encoder.inverse_transform(y)


class SKLearnClassifier(ClassifierMixin, SKLBase):
    """A scikit-learn classifier around a gpu_dl model (Keras 3's ``keras.wrappers.SKLearnClassifier``).

    The targets (binary or multiclass labels of any type) are one-hot encoded before ``model.fit``: the model
    needs one output per class. ``predict`` returns the label of each row's largest output, ``decision_function``
    the model's raw outputs, ``score`` the accuracy. ``classes_`` holds the sorted labels after ``fit``.
    See ``SKLBase`` for the arguments.

    Example::

        def make(X, y, hidden=10):
            inputs = gpu_dl.Input((X.shape[1],))
            h = gpu_dl.layers.Dense(hidden, activation="relu")(inputs)
            model = gpu_dl.Model(inputs, gpu_dl.layers.Dense(y.shape[1], activation="softmax")(h))
            model.compile(loss="categorical_crossentropy", optimizer="rmsprop")
            return model

        clf = SKLearnClassifier(make, model_kwargs={"hidden": 20}, fit_kwargs={"epochs": 5, "verbose": 0})
        clf.fit(X, y).score(X_test, y_test)
    """

    def decision_function(self, X):
        """The fitted model's raw outputs for ``X``, one column per class."""
        from sklearn.utils.validation import check_is_fitted
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False)
        return self.model_.predict(X)

    def _process_target(self, y, reset=False):
        kind = _target_type(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"SKLearnClassifier: only binary and multiclass targets are supported; the target "
                             f"type is {kind!r}.")
        if reset:
            self._target_encoder = sklearn.pipeline.make_pipeline(
                TargetReshaper(), sklearn.preprocessing.OneHotEncoder(sparse_output=False)).fit(y)
            self.classes_ = np.unique(y)
            if len(self.classes_) == 1:
                raise ValueError("SKLearnClassifier can't train when only one class is present.")
        return self._target_encoder.transform(y)

    def _more_tags(self):
        return {"poor_score": True}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags


class SKLearnRegressor(RegressorMixin, SKLBase):
    """A scikit-learn regressor around a gpu_dl model (Keras 3's ``keras.wrappers.SKLearnRegressor``): the
    targets go to ``model.fit`` as given (a 1-D target as a column, and back to 1-D from ``predict``);
    ``score`` is R². See ``SKLBase`` for the arguments."""

    def _more_tags(self):
        return {"poor_score": True}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        return tags


class SKLearnTransformer(TransformerMixin, SKLBase):
    """A scikit-learn transformer around a gpu_dl model (Keras 3's ``keras.wrappers.SKLearnTransformer``):
    ``fit`` trains the model on (X, y), ``transform`` returns its outputs for X (an embedding, say), so a trained
    network can be a step of a ``Pipeline``. See ``SKLBase`` for the arguments."""

    def transform(self, X):
        """The fitted model's outputs for ``X`` (n_samples, n_features)."""
        from sklearn.utils.validation import check_is_fitted
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False)
        return self.model_.predict(X)

    def _more_tags(self):
        return {"preserves_dtype": []}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        return tags
