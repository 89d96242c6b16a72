"""``built`` of a layer just made, against Keras 3 itself (where Keras is installed): every layer class both
libraries have, made with the same arguments, reports the same ``built``, whether Keras builds it in its
constructor (the weightless ones) or at its first call; and the layers built when made still check the shape
their first call gets."""
import inspect
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
from gpu_dl.layers import build_shapes  # noqa: E402

# The first arguments each class takes, tried in this order for a class not listed in _ARGUMENTS.
_TRIED = [(), (0.5,), (2,), ("relu",), ((2,),), (2, 2)]
_ARGUMENTS = {
    "Discretization": ((), {"bin_boundaries": [0.5]}),
    "EinsumDense": (("ab,bc->ac",), {"output_shape": 2}),
    "GRUCell": ((2,), {}), "LSTMCell": ((2,), {}), "SimpleRNNCell": ((2,), {}), "LSTM": ((2,), {}),
    "Reshape": (((2,),), {}),
    "RandomTranslation": ((0.1, 0.1), {}),
    "MaxNumBoundingBoxes": ((2,), {}),      # Keras truncates a fraction to an int; gpu_dl asks for an integer
    "TimeDistributed": None, "Bidirectional": None, "Pipeline": None,     # wrappers: below, around layers
}


def _layer_classes():
    for name in sorted(dir(keras.layers)):
        theirs = getattr(keras.layers, name)
        if inspect.isclass(theirs) and issubclass(theirs, keras.layers.Layer) and hasattr(layers, name):
            yield name, theirs, getattr(layers, name)


def _made(cls, name):
    """A layer of ``cls`` made with the arguments listed for ``name`` (or the first that it takes), and them."""
    if name in _ARGUMENTS:
        args, kwargs = _ARGUMENTS[name]
        try:
            return cls(*args, **kwargs), (args, kwargs)
        except ImportError:     # Keras needs TensorFlow for it
            return None, None
    for args in _TRIED:
        try:
            return cls(*args), (args, {})
        except Exception:       # noqa: BLE001 - the next arguments may be the ones it takes
            continue
    return None, None


def test_every_layer_reports_the_built_keras_does_when_made():
    compared, built_when_made = [], []
    for name, theirs, ours in _layer_classes():
        if name in _ARGUMENTS and _ARGUMENTS[name] is None:
            continue
        their_layer, given = _made(theirs, name)
        if their_layer is None:        # Keras needs TensorFlow for it (the lookup and text layers)
            continue
        args, kwargs = given
        our_layer = ours(*args, **kwargs)
        assert our_layer.built == their_layer.built, name
        compared.append(name)
        if their_layer.built:
            built_when_made.append(name)
    # the comparison covers the weightless layers Keras builds when made and the layers it builds on a call
    assert {"Dropout", "SpatialDropout2D", "GaussianNoise", "Activation", "ReLU", "MaxPooling2D",
            "GlobalAveragePooling1D", "Reshape", "Masking", "UnitNormalization"} <= set(built_when_made)
    assert {"Dense", "Conv2D", "LSTM", "BatchNormalization", "Flatten", "ZeroPadding2D"} <= \
        set(compared) - set(built_when_made)
    # (by their class names: MaxPool2D is MaxPooling2D) the list gpu_dl keeps of them, and InputLayer (built as made)
    assert {getattr(keras.layers, n).__name__ for n in built_when_made} == \
        set(build_shapes.KERAS_BUILT_AT_INIT) | {"InputLayer"}


@pytest.mark.parametrize("wrapper", ["TimeDistributed", "Bidirectional", "Pipeline"])
def test_wrappers_report_the_built_keras_does(wrapper):
    inner = {"TimeDistributed": lambda lib: lib.layers.Dense(2), "Bidirectional": lambda lib: lib.layers.LSTM(2),
             "Pipeline": lambda lib: [lib.layers.Dropout(0.5), lib.layers.ReLU()]}
    theirs = getattr(keras.layers, wrapper)(inner[wrapper](keras))
    ours = getattr(layers, wrapper)(inner[wrapper](gpu_dl))
    assert ours.built == theirs.built


def _subclasses(lib):
    class OwnBuild(lib.layers.Dropout):
        def build(self, input_shape):
            self.seen = tuple(input_shape)

    class NoBuild(lib.layers.Dropout):
        pass
    return OwnBuild(0.5), NoBuild(0.5)


def test_a_subclass_with_a_build_of_its_own_waits_for_its_first_call_as_in_keras():
    their_own, their_plain = _subclasses(keras)
    our_own, our_plain = _subclasses(gpu_dl)
    assert (our_own.built, our_plain.built) == (their_own.built, their_plain.built) == (False, True)
    x = np.ones((2, 3), dtype="float32")
    their_own(x)
    our_own(x)
    assert our_own.built and their_own.built and our_own.seen == (2, 3)


def test_a_layer_built_when_made_still_checks_the_shape_of_its_first_call():
    pool = layers.MaxPooling2D(name="pool_b")
    assert pool.built
    with pytest.raises(ValueError, match=r"pool_b.*rank 4"):
        pool(np.ones((2, 8, 3), dtype="float32"))
    assert pool.built
    out = pool(np.arange(32, dtype="float32").reshape(1, 4, 4, 2))
    expected = np.arange(32, dtype="float32").reshape(1, 2, 2, 2, 2, 2).max(axis=(2, 4))
    np.testing.assert_array_equal(np.asarray(out), expected)
    their_pool = keras.layers.MaxPooling2D()
    their_pool(np.ones((1, 4, 4, 2), dtype="float32"))
    assert pool.get_build_config() is None and their_pool.get_build_config() is None
    reshape = layers.Reshape((3, 2))
    with pytest.raises(ValueError, match="reshape"):
        reshape(np.ones((2, 5), dtype="float32"))
    assert reshape.built
    assert reshape(np.ones((2, 6), dtype="float32")).shape == (2, 3, 2)
