"""gpu_dl.backend.result_type (Keras's dtype promotion) and get_uid: chosen cases against the lattice's rules,
every pair and some triples against Keras 3 itself where it is installed."""
import itertools
import os

import numpy
import pytest

from gpu_dl import backend, layers
from gpu_dl.backend import get_uid, result_type
from gpu_dl.utils import clear_session

DTYPES = ["bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "bfloat16", "float16",
          "float32", "float64", "complex64", "complex128", int, float, bool, None]


@pytest.mark.parametrize("args, expected", [
    ((), "float32"),
    ((None,), "float32"),
    (("int8", "uint8"), "int16"),
    (("int8", int), "int8"),                  # a Python int is weak: it takes the other's type
    (("uint8", int), "uint8"),
    (("float16", float), "float16"),
    (("bfloat16", int), "bfloat16"),
    (("bfloat16", "float16"), "float32"),
    (("int32", "float16"), "float16"),
    (("int32", float), "float32"),
    ((int, float), "float32"),                # all weak: floatx's precision
    ((int, int), "int32"),
    (("bool", "bool"), "bool"),
    (("bool", int), "int32"),
    (("uint32", "int32"), "int32"),           # int64, narrowed to 32 bits as on Keras's non-TensorFlow backends
    (("float32", "float64"), "float32"),
    (("complex64", "float64"), "complex64"),
    ((numpy.dtype("int16"), numpy.float16), "float16"),
    (("int8", "int16", "uint16"), "int32"),
])
def test_promotion_rules(args, expected):
    assert result_type(*args) == expected


def test_weak_results_follow_floatx():
    previous = backend.floatx()
    backend.set_floatx("float64")
    try:
        assert result_type(int, float) == "float32"      # float64 is then narrowed, as in Keras
        assert result_type() == "float64"
    finally:
        backend.set_floatx(previous)


def test_bad_dtypes_are_refused():
    with pytest.raises(ValueError, match="no implicit conversions from float8"):
        result_type("float8_e4m3fn", "float32")
    with pytest.raises(ValueError, match="invalid dtype 'float128'"):
        result_type("float128", "float32")
    with pytest.raises(ValueError, match="not a valid dtype for Keras type promotion"):
        result_type("string", "int32")


def test_get_uid_counts_per_prefix_and_shares_the_layer_names():
    clear_session()
    assert [get_uid("block"), get_uid("block"), get_uid("other"), get_uid("block")] == [1, 2, 1, 3]
    assert layers.Dense(2).name == "dense"
    assert get_uid("dense") == 2
    assert layers.Dense(2).name == "dense_2"
    clear_session()
    assert get_uid("block") == 1
    with pytest.raises(TypeError, match="prefix"):
        get_uid(3)


@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def test_same_as_keras(keras):
    for args in itertools.chain(itertools.product(DTYPES, repeat=2),
                                itertools.product(["int8", "uint16", "float16", "bfloat16", int, float, "bool"],
                                                  repeat=3)):
        try:
            expected = keras.backend.result_type(*args)
        except ValueError:
            with pytest.raises(ValueError):
                result_type(*args)
            continue
        assert result_type(*args) == expected, args
    keras.utils.clear_session()
    assert [keras.backend.get_uid("block"), keras.backend.get_uid("block")] == [1, 2]
    assert keras.layers.Dense(2).name == "dense"
    assert keras.backend.get_uid("dense") == 2
    assert keras.layers.Dense(2).name == "dense_2"
