"""Names in one functional model against Keras 3 itself (where Keras is installed): the same calls, made after
each library's clear_session, give the same automatic names, and where an explicit name meets an automatic one
both refuse the model with the same words."""
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402


def _build(lib, case):
    """The names of the model's operations, or the first sentence of the error that refused it."""
    L = lib.layers
    a, b = lib.Input((3,)), lib.Input((3,))
    try:
        if case == "automatic":
            s = a + b
            t = L.Add()([s, b])
            p = a * b
            out = L.Dense(2)(L.Multiply()([p, t]) - abs(-b) ** 2.0 / b)
        elif case == "explicit_then_automatic":
            out = L.Dense(3)(L.Dense(3, name="dense")(a)) + b
        elif case == "automatic_then_explicit":
            out = L.Dense(3, name="dense")(L.Dense(3)(a)) + b
        elif case == "operation_then_layer":
            out = L.Dense(3, name="add")(a + b)
        elif case == "layer_then_operation":
            out = L.Dense(3, name="add")(a) + b
        elif case == "merge_layers":
            first = L.Concatenate()([a, b])
            out = L.Concatenate()([L.Concatenate(name="concatenate_1")([a, first]), b])
        elif case == "input_named_like_an_operation":
            a = lib.Input((3,), name="add")
            out = a + b
        return [op.name for op in lib.Model([a, b], out)._operations]
    except ValueError as e:
        return str(e).split(" Automatic names")[0]


@pytest.mark.parametrize("case", ["automatic", "explicit_then_automatic", "automatic_then_explicit",
                                  "operation_then_layer", "layer_then_operation", "merge_layers",
                                  "input_named_like_an_operation"])
def test_names_and_refusals_match_keras(case):
    keras.utils.clear_session()
    theirs = _build(keras, case)
    gpu_dl.utils.clear_session(free_memory=False)
    ours = _build(gpu_dl, case)
    assert ours == theirs
    if case != "automatic":
        assert "All operation names should be unique." in ours
