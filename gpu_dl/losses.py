"""Losses: the Keras 3 catalogue, with gradients.

The arithmetic and the classes live in ``loss_base`` (the common losses) and in
``loss_focal``, ``loss_overlap``, ``loss_circle`` and ``loss_ctc``; this module
gathers them under their Keras names and aliases, with ``get``, ``serialize``
and ``deserialize``. See ``loss_base`` for what a loss offers (``call``, ``grad``,
reductions, target checks).
"""
from __future__ import annotations

import inspect
import types

from .catalogue import from_keras_config, keras_config, keras_snake_case, lookup, snake_case
from .loss_base import (EPSILON, BinaryCrossentropy, CategoricalCrossentropy, CategoricalHinge,
                        CosineSimilarity, Hinge, Huber, KLDivergence, LogCosh, Loss, LossFunctionWrapper,
                        MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredError,
                        MeanSquaredLogarithmicError, Poisson, SparseCategoricalCrossentropy, SquaredHinge,
                        aligned_shapes, binary_crossentropy, categorical_crossentropy, categorical_hinge,
                        cosine_similarity, hinge, huber, kl_divergence, log_cosh, mean_absolute_error,
                        mean_absolute_percentage_error, mean_squared_error, mean_squared_logarithmic_error, poisson,
                        reduce_weighted_values, reduction_weights, sparse_categorical_crossentropy, squared_hinge,
                        squeeze_or_expand_to_same_rank)
from .loss_circle import Circle, circle
from .loss_ctc import CTC, ctc
from .loss_focal import (BinaryFocalCrossentropy, CategoricalFocalCrossentropy, CategoricalGeneralizedCrossEntropy,
                         binary_focal_crossentropy, categorical_focal_crossentropy,
                         categorical_generalized_cross_entropy)
from .loss_overlap import Dice, Tversky, dice, tversky

__all__ = [
    "aligned_shapes", "bce", "binary_crossentropy", "binary_focal_crossentropy", "BinaryCrossentropy",
    "BinaryFocalCrossentropy", "categorical_crossentropy", "categorical_focal_crossentropy",
    "categorical_generalized_cross_entropy", "categorical_hinge", "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy", "CategoricalGeneralizedCrossEntropy", "CategoricalHinge", "Circle", "circle",
    "cosine_proximity", "cosine_similarity", "CosineSimilarity", "CTC", "ctc", "deserialize", "Dice", "dice",
    "EPSILON", "FUNCTIONS", "get", "Hinge", "hinge", "Huber", "huber", "kl_divergence", "KLD", "kld", "KLDivergence",
    "kullback_leibler_divergence", "log_cosh", "LogCosh", "logcosh", "Loss", "LossFunctionWrapper", "MAE", "mae",
    "MAPE", "mape", "mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_error",
    "mean_squared_logarithmic_error", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredError",
    "MeanSquaredLogarithmicError", "MSE", "mse", "MSLE", "msle", "Poisson", "poisson", "reduce_weighted_values",
    "reduction_weights", "serialize", "sparse_categorical_crossentropy", "SparseCategoricalCrossentropy",
    "squared_hinge", "SquaredHinge", "squeeze_or_expand_to_same_rank", "Tversky", "tversky",
]

# ---------------------------------------------------------------- registry
_CLASSES = {cls.__name__: cls for cls in (
    MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError, Hinge,
    SquaredHinge, CategoricalHinge, LogCosh, Huber, CategoricalCrossentropy, SparseCategoricalCrossentropy,
    BinaryCrossentropy, KLDivergence, Poisson, CosineSimilarity)}

# Function names and aliases (Keras 3's, and the older ones its users still write) -> class.
_FUNCTION_NAMES = {
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError, "mape": MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError, "msle": MeanSquaredLogarithmicError,
    "hinge": Hinge, "squared_hinge": SquaredHinge, "categorical_hinge": CategoricalHinge,
    "log_cosh": LogCosh, "logcosh": LogCosh,
    "huber": Huber, "huber_loss": Huber,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy,
    "kl_divergence": KLDivergence, "kld": KLDivergence, "kullback_leibler_divergence": KLDivergence,
    "poisson": Poisson,
    "cosine_similarity": CosineSimilarity, "cosine_proximity": CosineSimilarity,
}
_NAMES = dict(_FUNCTION_NAMES)
_NAMES.update({snake_case(name): cls for name, cls in _CLASSES.items()})

# The per-sample function of each class, for metrics that average a loss.
FUNCTIONS = {
    MeanSquaredError: mean_squared_error, MeanAbsoluteError: mean_absolute_error,
    MeanAbsolutePercentageError: mean_absolute_percentage_error,
    MeanSquaredLogarithmicError: mean_squared_logarithmic_error, Hinge: hinge, SquaredHinge: squared_hinge,
    CategoricalHinge: categorical_hinge, LogCosh: log_cosh, Huber: huber,
    CategoricalCrossentropy: categorical_crossentropy,
    SparseCategoricalCrossentropy: sparse_categorical_crossentropy, BinaryCrossentropy: binary_crossentropy,
    KLDivergence: kl_divergence, Poisson: poisson, CosineSimilarity: cosine_similarity,
}

# Short names of the function forms, as Keras 3 and older Keras export them.
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh
bce = binary_crossentropy
cosine_proximity = cosine_similarity

# The losses kept in modules of their own.
_MORE = {
    BinaryFocalCrossentropy: binary_focal_crossentropy, CategoricalFocalCrossentropy: categorical_focal_crossentropy,
    Dice: dice, Tversky: tversky, Circle: circle, CTC: ctc,
    CategoricalGeneralizedCrossEntropy: categorical_generalized_cross_entropy,
}
_CLASSES.update({cls.__name__: cls for cls in _MORE})
_FUNCTION_NAMES.update({fn.__name__: cls for cls, fn in _MORE.items()})
_NAMES.update(_FUNCTION_NAMES)
_NAMES.update({snake_case(cls.__name__): cls for cls in _MORE})
FUNCTIONS.update(_MORE)

_SHAPE_WORDS = ("crossentropy", "ce")
# gpu_dl's per-sample functions (and their aliases, the same objects) -> their classes.
_CLASS_OF_FUNCTION = {fn: cls for cls, fn in FUNCTIONS.items()}


def serialize(loss):
    """Keras's config dict: ``{"module", "class_name", "config", "registered_name"}``."""
    if not isinstance(loss, Loss):
        raise TypeError(f"serialize expects a gpu_dl Loss, got {loss!r}.")
    return keras_config(loss, "keras.losses", _CLASSES.get(type(loss).__name__) is type(loss))


def deserialize(name, custom_objects=None):
    """The loss a ``serialize`` dict (or a Keras one) describes (Keras names the argument ``name``);
    ``custom_objects`` maps names to classes and functions."""
    return from_keras_config("losses", name, _NAMES, custom_objects)


def _from_function(fn):
    """The Loss compile makes of a function ``fn(y_true, y_pred)``, named as Keras names it (its snake-cased
    ``__name__``, or the object's ``name``): one of gpu_dl's functions (``losses.mse``) gives its class; any other,
    written with ``gpu_dl.ops``, a ``LossFunctionWrapper`` that trains through the graph its call records
    (``Loss.traced``) and that a saved file writes as the function itself, as Keras writes it."""
    name = getattr(fn, "name", None)
    if not isinstance(name, str):
        name = keras_snake_case(getattr(fn, "__name__", None) or type(fn).__name__)
    cls = _CLASS_OF_FUNCTION.get(fn) if isinstance(fn, types.FunctionType) else None
    if cls is not None:
        return cls(name=name)
    wrapper = LossFunctionWrapper(fn, name=name)
    wrapper.given_as_function = True
    return wrapper


def get(identifier):
    """A Loss from a name (class name, function name or alias), a Loss, a Loss class, a function or a config dict.

    A function name gives the class with its defaults, named as written
    (``get("mse").name == "mse"``), as Keras names a loss given by string; a function, ``_from_function``'s loss.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        if identifier.strip().lower() in _SHAPE_WORDS:
            raise ValueError(f"loss={identifier!r}: name the cross-entropy: 'binary_crossentropy' (one sigmoid "
                             "output), 'sparse_categorical_crossentropy' (integer class ids) or "
                             "'categorical_crossentropy' (one-hot targets).")
        cls = lookup("losses", identifier, _NAMES)
        # A class name gives the class's own default name; a function name or alias names the loss.
        return cls() if identifier.strip() in _CLASSES else cls(name=identifier)
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if inspect.isclass(identifier) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier) and not inspect.isclass(identifier):
        return _from_function(identifier)
    raise TypeError(f"Could not interpret loss identifier {identifier!r}: expected a loss name such as 'mse', "
                    "a gpu_dl.losses.Loss instance, or a config dict {'class_name': ..., 'config': ...}.")
