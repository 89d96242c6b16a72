import numpy
import pytest

from gpu_dl import utils


def test_to_categorical_one_hot_rows():
    out = utils.to_categorical([2, 0, 1], num_classes=4)
    numpy.testing.assert_array_equal(out, numpy.eye(4, dtype="float32")[[2, 0, 1]])
    assert out.dtype == numpy.float32
    assert utils.to_categorical(numpy.array([[1], [0]])).shape == (2, 2)


@pytest.mark.parametrize("labels,num_classes,error,message", [
    ([0, 5], 3, ValueError, "out of range"),
    ([-1], None, ValueError, ">= 0"),
    ([0.5], None, ValueError, "whole class ids"),
    (["a"], None, TypeError, "integer class ids"),
    ([1], 0, ValueError, "num_classes"),
])
def test_to_categorical_rejects_bad_labels(labels, num_classes, error, message):
    with pytest.raises(error, match=message):
        utils.to_categorical(labels, num_classes)


def test_normalize_rows():
    out = utils.normalize(numpy.array([[3.0, 4.0], [0.0, 0.0]]))
    numpy.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_sequence_helpers_are_where_keras_3_has_them():
    # keras.utils.pad_sequences and keras.utils.timeseries_dataset_from_array: the same functions
    from gpu_dl import data, utils
    assert utils.pad_sequences is data.pad_sequences
    assert utils.timeseries_dataset_from_array is data.timeseries_dataset_from_array
    numpy.testing.assert_array_equal(utils.pad_sequences([[1, 2], [3]], maxlen=3), [[0, 1, 2], [0, 0, 3]])
