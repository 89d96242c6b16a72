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


def _functional_names_after_sequentials(lib):
    """The name a new functional model gets after each step of building, growing and shrinking Sequentials."""
    import numpy
    L = lib.layers

    def next_name():
        i = lib.Input((3,))
        return lib.Model(i, L.Dense(2)(i)).name

    names = []
    model = lib.Sequential([L.Dense(2), L.Dense(3)])
    names.append(next_name())
    model(numpy.ones((1, 4), "float32"))        # built by its first call
    names.append(next_name())
    model.add(L.Dense(4))
    names.append(next_name())
    model.pop()
    names.append(next_name())
    lib.Sequential([lib.Input((4,)), L.Dense(2), L.Dense(3)])       # built once for the whole list
    names.append(next_name())
    model = lib.Sequential()
    model.add(lib.Input((4,)))
    names.append(next_name())
    model.add(L.Dense(2))
    names.append(next_name())
    model = lib.Sequential([lib.Input((4,)), L.Dense(2)])
    lib.Sequential.from_config(model.get_config())
    names.append(next_name())
    model.pop()                                 # only the Input is left: nothing to build
    names.append(next_name())
    return names


def test_sequentials_draw_functional_names_as_keras_does():
    # Keras runs a built Sequential through a functional model it makes at each build, add and pop; a model made
    # afterwards is numbered after them, as a guide's printed summaries show ('functional_1').
    keras.utils.clear_session()
    theirs = _functional_names_after_sequentials(keras)
    gpu_dl.utils.clear_session(free_memory=False)
    ours = _functional_names_after_sequentials(gpu_dl)
    assert ours == theirs
    assert ours[:2] == ["functional", "functional_2"]
