"""Layer and operation names in one functional model, as Keras 3 gives them.

Automatic names count up per kind ('dense', 'dense_1'; `a + b` and layers.Add() share 'add'); a name given
explicitly does not advance that count, so it can meet an automatic one. Keras refuses such a model with
'The name "..." is used N times in the model. All operation names should be unique.'; gpu_dl says the same and
what to do, and the layers stay usable: renamed, they make the model.
"""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers, utils

DUPLICATE = r'The name "{}" is used 2 times in the model\. All operation names should be unique\.'


@pytest.fixture(autouse=True)
def fresh_names():
    utils.clear_session(free_memory=False)
    yield
    utils.clear_session(free_memory=False)


def test_automatic_names_count_per_kind_and_operations_share_the_layers_counts():
    a, b = gpu_dl.Input((3,)), gpu_dl.Input((3,))
    s = a + b
    t = layers.Add()([s, b])
    p = a * b
    u = layers.Multiply()([p, t])
    d = u - b
    out = layers.Dense(2)(d)
    made = [a, b, s, t, p, u, d, out]
    assert [x._keras_history.operation.name for x in made] == ["input_layer", "input_layer_1", "add", "add_1",
                                                               "multiply", "multiply_1", "subtract", "dense"]
    model = gpu_dl.Model([a, b], out)
    assert len({op.name for op in model._operations}) == len(model._operations) == 8


@pytest.mark.parametrize("case", ["explicit_then_automatic", "automatic_then_explicit", "operation_then_layer",
                                  "layer_then_operation", "explicit_numbered"])
def test_an_explicit_name_meeting_an_automatic_one_is_refused_as_keras_refuses_it(case):
    a, b = gpu_dl.Input((3,)), gpu_dl.Input((3,))
    if case == "explicit_then_automatic":
        name, first = "dense", layers.Dense(3, name="dense")
        second = layers.Dense(3)
        out = second(first(a))
    elif case == "automatic_then_explicit":
        name, first = "dense", layers.Dense(3)
        second = layers.Dense(3, name="dense")
        out = second(first(a))
    elif case == "operation_then_layer":
        name, s = "add", a + b
        first, second = s._keras_history.operation, layers.Dense(3, name="add")
        out = second(s)
    elif case == "layer_then_operation":
        name, first = "add", layers.Dense(3, name="add")
        out = first(a) + b
        second = out._keras_history.operation
    else:
        name, first = "dense_1", layers.Dense(3, name="dense_1")
        middle = layers.Dense(3)            # 'dense'
        second = layers.Dense(3)            # 'dense_1'
        out = second(middle(first(a)))
    assert first.name == second.name == name
    inputs = [a, b] if "operation" in case else a
    with pytest.raises(ValueError, match=DUPLICATE.format(name) + r".*give one of them another `name`"):
        gpu_dl.Model(inputs, out)
    # Nothing was changed by the refusal: renamed, the same calls make the model.
    first.name = "renamed"
    model = gpu_dl.Model(inputs, out)
    assert len({op.name for op in model._operations}) == len(model._operations)
    x = [numpy.ones((2, 3), "float32")] * 2 if "operation" in case else numpy.ones((2, 3), "float32")
    assert model.predict(x, verbose=0).shape == (2, 3)


def test_the_same_name_in_an_inner_model_and_the_outer_one_is_taken():
    inp = gpu_dl.Input((3,))
    inner = gpu_dl.Model(inp, layers.Dense(3, name="dense")(inp), name="inner")
    outer_in = gpu_dl.Input((3,))
    model = gpu_dl.Model(outer_in, layers.Dense(2, name="dense")(inner(outer_in)))
    assert [layer.name for layer in model.layers][1:] == ["inner", "dense"]


def test_a_duplicate_name_is_reported_even_with_an_input_the_output_does_not_use():
    # Keras checks the names, and takes an input the outputs do not use once they are unique.
    a, b = gpu_dl.Input((3,), name="a"), gpu_dl.Input((3,), name="b")
    first = layers.Dense(4, name="twin")
    out = layers.Dense(2, name="twin")(first(a))
    with pytest.raises(ValueError, match=DUPLICATE.format("twin")):
        gpu_dl.Model([a, b], out)
    first.name = "first"
    assert [layer.name for layer in gpu_dl.Model([a, b], out).layers] == ["a", "first", "b", "twin"]
    assert gpu_dl.Model(a, out).compute_output_shape((None, 3)) == (None, 2)
