"""InputSpec: each field accepted and refused with Keras's messages, on arrays and on symbolic tensors; a custom
layer that sets its spec in __init__ or in build (checked on the call that builds it, as Keras does); config round
trip; gpu_dl's own layers keep their built-shape checks."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.layers import InputSpec


class Doubler(layers.Layer):
    """A layer written for Keras: sets ``input_spec`` itself."""

    def __init__(self, spec=None, spec_in_build=None, **kwargs):
        super().__init__(**kwargs)
        self.input_spec = spec
        self.spec_in_build = spec_in_build

    def build(self, input_shape):
        if self.spec_in_build is not None:
            self.input_spec = self.spec_in_build

    def call(self, x, training=False):
        return x * 2

    def backward(self, dy):
        return dy * 2


def call_on(xp, spec, shape, dtype="float32"):
    return Doubler(spec, name="doubler")(xp.zeros(shape, dtype=dtype))


@pytest.mark.parametrize("spec,good,bad,message", [
    (InputSpec(ndim=3), (2, 3, 4), (2, 3), "expected ndim=3, found ndim=2. Full shape received: (2, 3)"),
    (InputSpec(max_ndim=2), (2, 3), (2, 3, 4), "expected max_ndim=2, found ndim=3"),
    (InputSpec(min_ndim=3), (2, 3, 4, 5), (2, 3), "expected min_ndim=3, found ndim=2. Full shape received: (2, 3)"),
    (InputSpec(axes={-1: 4}), (2, 7, 4), (2, 4, 5),
     "expected axis -1 of input shape to have value 4, but received input with shape (2, 4, 5)"),
    (InputSpec(axes={1: 3}, ndim=2), (5, 3), (5, 4),
     "expected axis 1 of input shape to have value 3, but received input with shape (5, 4)"),
    (InputSpec(shape=(None, 3, 2)), (7, 3, 2), (7, 3, 5), "expected shape=(None, 3, 2), found shape=(7, 3, 5)"),
    (InputSpec(shape=(None, 3)), (7, 3), (7, 3, 1),
     "expected ndim=2, found ndim=3. Full shape received: (7, 3, 1)"),
    (InputSpec(shape=(None, 28, 28, 1), allow_last_axis_squeeze=True), (2, 28, 28), (2, 28, 27),
     "expected shape=(None, 28, 28, 1), found shape=(2, 28, 27)"),
])
def test_each_field_accepts_and_refuses(xp, spec, good, bad, message):
    out = call_on(xp, spec, good)
    assert out.shape == good
    with pytest.raises(ValueError) as caught:
        call_on(xp, spec, bad)
    assert str(caught.value) == f"Input 0 with name 'None' of layer 'doubler' is incompatible with the layer: {message}"


def test_dtype_and_squeeze_and_name(xp):
    spec = InputSpec(dtype="float64", name="features")
    assert call_on(xp, spec, (2, 3), "float64").shape == (2, 3)     # checked before the cast to its dtype
    with pytest.raises(ValueError, match="Input 0 with name 'features' of layer 'doubler' is incompatible with the "
                                         "layer: expected dtype=float64, found dtype=float32"):
        call_on(xp, spec, (2, 3))
    squeeze = InputSpec(shape=(None, 5), allow_last_axis_squeeze=True)
    assert call_on(xp, squeeze, (2, 5, 1)).shape == (2, 5, 1)
    assert call_on(xp, InputSpec(dtype=float), (1,), "float32").shape == (1,)


def test_several_specs_count_the_inputs():
    specs = [InputSpec(ndim=2), InputSpec(ndim=2)]
    with pytest.raises(ValueError, match=r'Layer "pair" expects 2 input\(s\), but it received 1 input tensors'):
        Doubler(specs, name="pair")(numpy.zeros((2, 3), "float32"))
    named = [InputSpec(name="a"), InputSpec(name="b")]
    with pytest.raises(ValueError, match=r"Layer \"pair\" expects 2 named input\(s\) with keys \['a', 'b'\].*"
                                         r"`layer\(\{'a': \.\.\., 'b': \.\.\.\}\)`"):
        Doubler(named, name="pair")(numpy.zeros((2, 3), "float32"))


def test_spec_set_in_build_applies_from_the_building_call(xp):
    layer = Doubler(spec_in_build=InputSpec(ndim=2, axes={-1: 3}), name="late")
    with pytest.raises(ValueError, match="layer 'late' is incompatible with the layer: expected ndim=2, found ndim=3"):
        layer(xp.zeros((2, 3, 3), dtype="float32"))     # Keras checks again after build
    assert not layer.built and layer.input_spec is None    # a refused call leaves it as it was
    layer = Doubler(spec_in_build=InputSpec(min_ndim=2, axes={-1: 3}), name="late")
    assert layer(xp.zeros((2, 3), dtype="float32")).shape == (2, 3)
    assert isinstance(layer.input_spec, InputSpec)       # kept, not replaced by the built shape
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        layer(xp.zeros((2, 4), dtype="float32"))


def test_symbolic_calls_are_checked_and_models_build_and_save(tmp_path):
    layer = Doubler(spec_in_build=InputSpec(ndim=2, axes={-1: 4}), name="checked")
    with pytest.raises(ValueError, match="layer 'checked' is incompatible with the layer: expected axis -1"):
        layer(layers.Input((5,)))
    assert not layer._inbound_nodes                      # a refused call records nothing
    inputs = layers.Input((4,))
    model = gpu_dl.Model(inputs, layers.Dense(2)(layer(inputs)))
    with pytest.raises(ValueError, match="expected ndim=2, found ndim=3"):
        layer(layers.Input((4, 4)))
    assert model.predict(numpy.ones((3, 4), "float32"), verbose=0).shape == (3, 2)
    entry = gpu_dl.saving.serialize_keras_object(layer)
    assert entry["build_config"] == {"input_shape": [None, 4]}
    seq = gpu_dl.Sequential([Doubler(spec_in_build=InputSpec(ndim=2), name="first"), layers.Dense(1)])
    seq.build((None, 3))
    assert seq.input_spec == (None, 3)


def test_config_round_trip_and_repr():
    spec = InputSpec(dtype="float32", shape=[None, 4], axes={"-1": 4}, optional=True)
    config = spec.get_config()
    assert config == {"dtype": "float32", "shape": (None, 4), "ndim": 2, "max_ndim": None, "min_ndim": None,
                      "axes": {-1: 4}, "optional": True}
    again = InputSpec.from_config(config)
    assert again.get_config() == config
    assert repr(spec) == "InputSpec(dtype=float32, shape=(None, 4), ndim=2, axes={-1: 4})"
    assert InputSpec(max_ndim=3, min_ndim=1).get_config()["max_ndim"] == 3


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(axes={"a": 1}), TypeError, r"Argument `axes` must be a dict with integer keys. Received: axes=\{'a': 1\}"),
    (dict(ndim=2, axes={2: 3}), ValueError, "Axis 2 is greater than the maximum allowed value: 1"),
    (dict(max_ndim=3, axes={5: 1}), ValueError, "Axis 5 is greater than the maximum allowed value: 2"),
    (dict(shape=(None, 2.0)), ValueError, "Cannot convert '(None, 2.0)' to a shape. Found invalid dimension '2.0'"),
    (dict(shape=(None, -1)), ValueError, "Negative dimensions are not allowed"),
    (dict(dtype="float7"), ValueError, "invalid dtype 'float7'"),
    (dict(ndim=-1), ValueError, "`ndim` must be a non-negative integer"),
    (dict(min_ndim=1.5), ValueError, "`min_ndim` must be a non-negative integer"),
])
def test_bad_specs_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match.replace("(", r"\(").replace(")", r"\)") if error is ValueError else match):
        InputSpec(**kwargs)


def test_optional_inputs_and_non_tensors():
    from gpu_dl.layers.input_spec import assert_input_compatibility
    assert_input_compatibility([InputSpec(ndim=2), InputSpec(ndim=2, optional=True)], [numpy.zeros((1, 2)), None],
                               "opt")
    with pytest.raises(ValueError, match="Inputs to a layer should be tensors. Got 'None'"):
        assert_input_compatibility([InputSpec(ndim=2)], [None], "opt")
    found = {"b": numpy.zeros((1, 3)), "a": numpy.zeros((1, 2))}
    assert_input_compatibility([InputSpec(name="a", shape=(None, 2)), InputSpec(name="b", shape=(None, 3))],
                               found, "named")
    with pytest.raises(ValueError, match=r'Missing data for input "c". You passed a data dictionary with keys'):
        assert_input_compatibility([InputSpec(name="a"), InputSpec(name="c")], found, "named")


def test_builtin_layers_keep_their_own_checks():
    dense = layers.Dense(3)
    dense(numpy.zeros((2, 4), "float32"))
    assert dense.input_spec == (None, 4)
    with pytest.raises(ValueError, match="Input of layer"):
        dense(numpy.zeros((2, 5), "float32"))


class Block(layers.Layer):
    """A composite layer written for Keras (sublayers, no backward of its own) that sets an input spec."""

    def __init__(self, spec=None, spec_in_build=None, **kwargs):
        super().__init__(**kwargs)
        self.input_spec = spec
        self.spec_in_build = spec_in_build
        self.dense = layers.Dense(2)

    def build(self, input_shape):
        if self.spec_in_build is not None:
            self.input_spec = self.spec_in_build

    def call(self, x):
        return self.dense(x)


def test_composite_layers_honour_their_spec(xp):
    block = Block(InputSpec(ndim=2, axes={-1: 3}), name="block")
    with pytest.raises(ValueError, match="layer 'block' is incompatible with the layer: expected axis -1"):
        block(xp.zeros((2, 4), dtype="float32"))
    assert not block.built
    assert block(xp.zeros((2, 3), dtype="float32")).shape == (2, 2)
    assert isinstance(block.input_spec, InputSpec)
    with pytest.raises(ValueError, match="expected ndim=2, found ndim=3"):
        block(layers.Input((5, 3)))
    late = Block(spec_in_build=InputSpec(ndim=2), name="late_block")
    late(xp.zeros((2, 3), dtype="float32"))
    assert isinstance(late.input_spec, InputSpec)
    with pytest.raises(ValueError, match="layer 'late_block' is incompatible with the layer: expected ndim=2"):
        late(xp.zeros((2, 1, 3), dtype="float32"))
    model = gpu_dl.Model(*(lambda i: (i, late(i)))(layers.Input((3,))))
    assert model.predict(numpy.ones((4, 3), "float32"), verbose=0).shape == (4, 2)
