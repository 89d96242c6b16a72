"""keras.Input and keras.layers.InputLayer against Keras 3 itself (where Keras is installed): a shape given as a
bare int is refused in both libraries, a tuple or list is taken, and ``batch_shape`` gives the batch size and the
sample shape."""
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

MAKERS = {
    "Input(shape)": lambda lib, shape: lib.Input(shape=shape),
    "Input(batch_shape)": lambda lib, shape: lib.Input(batch_shape=shape),
    "InputLayer(shape)": lambda lib, shape: lib.layers.InputLayer(shape=shape).output,
    "InputLayer(batch_shape)": lambda lib, shape: lib.layers.InputLayer(batch_shape=shape).output,
}


@pytest.mark.parametrize("maker", sorted(MAKERS))
def test_a_bare_int_shape_is_refused_as_keras_refuses_it(maker):
    make = MAKERS[maker]
    with pytest.raises(ValueError, match="Cannot convert '784' to a shape"):
        make(keras, 784)
    with pytest.raises(ValueError, match=r"cannot convert `(batch_)?shape`=784 to a shape: give a tuple of sizes "
                                         r"such as \(784,\)"):
        make(gpu_dl, 784)


@pytest.mark.parametrize("maker", sorted(MAKERS))
@pytest.mark.parametrize("shape", [(4, 784), [4, 784], (None, 3, 5)])
def test_sequences_give_the_shapes_keras_gives(maker, shape):
    make = MAKERS[maker]
    expected = tuple(make(keras, shape).shape)
    got = tuple(make(gpu_dl, shape).shape)
    assert got == expected
    assert got == ((None,) + tuple(shape) if "(shape)" in maker else tuple(shape))


def test_shape_and_batch_shape_together_are_refused_in_both():
    with pytest.raises(ValueError, match="both `shape` and `batch_shape`"):
        keras.layers.InputLayer(shape=(3,), batch_shape=(2, 3))
    with pytest.raises(ValueError, match=r"give `shape` \(and `batch_size`\) or `batch_shape`, not both"):
        gpu_dl.layers.InputLayer(shape=(3,), batch_shape=(2, 3))
