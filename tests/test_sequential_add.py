"""Sequential.add and pop keep their checks however layers come and go: a layer or a name already in the model is
refused, a popped or renamed layer's name is free again, a refused add changes nothing, and each layer is built for
the output shape of the layers before it."""
import numpy
import pytest

from gpu_dl import layers
from gpu_dl.models import Sequential
from gpu_dl.models.keras_config import model_config, model_from_config


def _kernel_shapes(model):
    return [tuple(layer.get_weights()[0].shape) for layer in model.layers if layer.get_weights()]


def test_names_stay_checked_through_pop_and_add_cycles():
    model = Sequential([layers.Input((4,)), layers.Dense(3, name="a")], name="m")
    for cycle in range(25):
        layer = layers.Dense(2 + cycle % 3, name="b")
        model.add(layer)
        # The same layer again is taken where it fits what the layers before it give, as Keras takes it.
        if layer.units == 3:
            model.add(layer)
            assert model.layers[-2:] == [layer, layer] and model.pop() is layer
        else:
            with pytest.raises(ValueError, match="layer 'b' is in it twice, and its next place gets shape"):
                model.add(layer)
        with pytest.raises(ValueError, match="All layers of Sequential 'm' need unique names; 'b' is taken"):
            model.add(layers.Dense(5, name="b"))
        with pytest.raises(ValueError, match="'a' is taken"):
            model.add(layers.Dense(5, name="a"))
        assert model.pop() is layer
    assert [l.name for l in model.layers] == ["a"]
    popped = model.pop()
    model.add(popped)                       # the same layer object again, after it left
    model.add(layers.Dense(2, name="b"))
    with pytest.raises(ValueError, match="'b' is taken"):
        model.add(layers.Dense(2, name="b"))
    assert [l.name for l in model.layers] == ["a", "b"] and model.output_shape == (None, 2)


def test_a_renamed_layer_holds_its_new_name_and_frees_its_old_one():
    model = Sequential([layers.Input((4,)), layers.Dense(3, name="first"), layers.Dense(2, name="second")])
    model.layers[0].name = "renamed"
    model.add(layers.Dense(2, name="first"))
    with pytest.raises(ValueError, match="'renamed' is taken"):
        model.add(layers.Dense(2, name="renamed"))
    model.pop()
    model.layers[1].name = "renamed_too"   # renamed, then popped: neither of its names stays taken
    model.pop()
    model.add(layers.Dense(2, name="second"))
    model.add(layers.Dense(2, name="renamed_too"))
    assert [l.name for l in model.layers] == ["renamed", "second", "renamed_too"]


def test_a_refused_add_leaves_the_name_free_and_the_shapes_as_they_were():
    model = Sequential([layers.Input((6,)), layers.Dense(4, name="d")])
    with pytest.raises(ValueError):
        model.add(layers.Conv2D(2, 3, name="conv"))            # a convolution cannot take (None, 4)
    assert [l.name for l in model.layers] == ["d"] and model.output_shape == (None, 4)
    model.add(layers.Dense(3, name="conv"))
    assert _kernel_shapes(model) == [(6, 4), (4, 3)]


def test_each_added_layer_is_built_for_the_end_of_the_stack():
    model = Sequential([layers.Input((12,)), layers.Dense(6, name="d0"), layers.Reshape((3, 2), name="r")])
    model.add(layers.Dense(5, name="d1"))                       # (None, 3, 2) -> (None, 3, 5)
    model.add(layers.Flatten(name="f"))                         # (None, 15)
    model.pop()
    model.pop()
    model.add(layers.Flatten(name="f"))                         # (None, 6) after the pops
    model.add(layers.Dense(4, name="d1"))
    assert _kernel_shapes(model) == [(12, 6), (6, 4)]
    assert model.output_shape == (None, 4)
    for _ in range(4):
        model.pop()
    model.add(layers.Dense(7, name="again"))                    # on the Input alone
    assert _kernel_shapes(model) == [(12, 7)] and model.output_shape == (None, 7)
    x = numpy.ones((2, 12), dtype="float32")
    assert model.predict(x, verbose=0).shape == (2, 7)


def test_an_unbuilt_model_builds_then_builds_each_added_layer():
    model = Sequential([layers.Dense(4, name="a"), layers.Dense(3, name="b")])
    model.add(layers.Dense(2, name="c"))
    assert not model.built
    model.build((None, 5))
    model.add(layers.Dense(6, name="d"))
    model.pop()
    model.add(layers.Dense(1, name="d"))
    assert _kernel_shapes(model) == [(5, 4), (4, 3), (3, 2), (2, 1)]
    with pytest.raises(ValueError, match="'a' is taken"):
        model.add(layers.Dense(1, name="a"))


def test_a_long_stack_saves_and_loads_with_its_checks():
    model = Sequential([layers.Input((3,))] + [layers.Dense(3, name=f"d{i}") for i in range(300)])
    rebuilt = model_from_config(model_config(model))
    assert [l.name for l in rebuilt.layers] == [l.name for l in model.layers]
    assert rebuilt.output_shape == (None, 3)
    with pytest.raises(ValueError, match="'d150' is taken"):
        rebuilt.add(layers.Dense(3, name="d150"))
    config = model_config(model)
    config["config"]["layers"][200]["config"]["name"] = "d17"
    with pytest.raises(ValueError, match=r"layers\[200\] \('d17'\).*'d17' is taken"):
        model_from_config(config)


class CountedDense(layers.Dense):
    """A Dense that counts the output shapes asked of it."""

    def compute_output_shape(self, input_shape):
        self.shape_calls = getattr(self, "shape_calls", 0) + 1
        return super().compute_output_shape(input_shape)


def test_adding_a_layer_computes_no_shapes_of_the_layers_before_it_again():
    # Building N layers takes each layer's output shape twice (for the stack, and for its call in the symbolic
    # graph that gives the layers their outputs), not once per layer added after it.
    model = Sequential([layers.Input((3,))] + [CountedDense(3) for _ in range(200)])
    model.pop()
    model.add(CountedDense(3))
    model.add(CountedDense(2))
    calls = [layer.shape_calls for layer in model.layers[:-1]]
    assert calls[0] <= 4 and set(calls[1:]) == {2}, calls   # the first one: the model's build asks it too
    assert model.output_shape == (None, 2)


def test_the_declared_input_stays_when_every_layer_is_popped():
    """As in Keras: the input the first layer declared outlives it, and the next layer is built for it."""
    model = Sequential([layers.Dense(3, input_shape=(4,)), layers.Dense(2)])
    model.pop()
    model.pop()
    assert model.input_spec == (None, 4)
    model.add(layers.Dense(5))
    assert model.layers[0].kernel.shape == (4, 5)
    assert model.predict(numpy.ones((2, 4), "float32"), verbose=0).shape == (2, 5)
    with pytest.raises(ValueError, match=r"expects `x` of shape \(None, 4\)"):
        model.predict(numpy.ones((2, 7), "float32"), verbose=0)
    unknown = Sequential([layers.Dense(3)])          # nothing declared, never built: nothing to keep
    unknown.pop()
    assert unknown.input_spec is None and not unknown.built
