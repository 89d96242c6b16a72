"""The models ``gpu-dl train`` builds by name, and models from a user's Python file.

Each builder takes the shape of one input image (H, W, C) and the number of
classes and returns an uncompiled ``Sequential``.
"""
from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

from .. import layers
from .functional import Functional
from .sequential import Sequential


def build_mlp(input_shape, classes):
    """Two hidden Dense layers of 64 on the flattened image."""
    return Sequential([
        layers.Input(shape=tuple(input_shape)),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dropout(0.1),
        layers.Dense(64, activation="relu"),
        layers.Dense(classes, activation="softmax"),
    ], name="mlp")


def build_cnn(input_shape, classes):
    """The seed notes' network: INPUT -> [CONV -> RELU -> POOL]*2 -> FC -> RELU -> FC."""
    return Sequential([
        layers.Input(shape=tuple(input_shape)),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(classes, activation="softmax"),
    ], name="cnn")


def build_lstm(input_shape, classes):
    """An LSTM reading the image row by row: rows are the time steps, a row's pixels the features."""
    rows = input_shape[0]
    features = 1
    for d in input_shape[1:]:
        features *= d
    return Sequential([
        layers.Input(shape=tuple(input_shape)),
        layers.Reshape((rows, features)),
        layers.LSTM(64),
        layers.Dense(classes, activation="softmax"),
    ], name="lstm")


MODELS = {"mlp": build_mlp, "cnn": build_cnn, "lstm": build_lstm}


def build_from_file(path, input_shape, classes):
    """The model a Python file's ``build_model()`` returns (called with ``input_shape`` and ``classes`` when it
    takes them). The file is the user's own program: it runs, as ``python FILE`` would run it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Model file {str(path)!r} does not exist (expected a Python file defining build_model()).")
    spec = importlib.util.spec_from_file_location(f"gpu_dl_user_model_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ValueError(f"Model file {str(path)!r} is not valid Python: {e.msg} (line {e.lineno}).") from None
    build = getattr(module, "build_model", None)
    if not callable(build):
        raise ValueError(f"Model file {str(path)!r} defines no function build_model().")
    # build_model(), build_model(input_shape) or build_model(input_shape, classes), as it is written
    positional = [p for p in inspect.signature(build).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes = 2 if any(p.kind is p.VAR_POSITIONAL for p in inspect.signature(build).parameters.values()) \
        else min(len(positional), 2)
    model = build(*(tuple(input_shape), classes)[:takes])
    if not isinstance(model, (Sequential, Functional)):
        raise ValueError(f"build_model() in {str(path)!r} returned {type(model).__name__}, not a gpu_dl model.")
    return model


def build_model(name_or_path, input_shape, classes):
    if name_or_path in MODELS:
        return MODELS[name_or_path](input_shape, classes)
    if str(name_or_path).endswith(".py"):
        return build_from_file(name_or_path, input_shape, classes)
    raise ValueError(f"Unknown model {name_or_path!r}: one of {', '.join(MODELS)}, or a Python file defining "
                     "build_model().")
