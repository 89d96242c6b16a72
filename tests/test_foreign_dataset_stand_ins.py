"""A tf.data.Dataset and a grain data set as the input of fit/evaluate/predict, without TensorFlow or grain: stand-ins
with the classes' module paths and the protocol gpu_dl reads (iteration over batches of tensors, ``cardinality()``,
a tensor's ``numpy()``) run the checks test_tf_dataset_inputs.py runs on real TensorFlow, so that the adapter
(``gpu_dl/data/foreign_datasets.py``) is exercised everywhere; and gpu_dl imports neither library."""
import itertools
import os
import subprocess
import sys
import warnings

import numpy
import pytest

import foreign_dataset_cases as cases
from gpu_dl.data import foreign_datasets
from gpu_dl.models import streaming


def _map(structure, fn):
    if isinstance(structure, dict):
        return {key: _map(value, fn) for key, value in structure.items()}
    if isinstance(structure, tuple):
        return tuple(_map(value, fn) for value in structure)
    return fn(structure)


def _batches(parts, batch_size):
    first = parts
    while not hasattr(first, "shape"):
        first = next(iter(first.values())) if isinstance(first, dict) else first[0]
    return [_map(parts, lambda a, i=i: a[i:i + batch_size]) for i in range(0, len(first), batch_size)]


class EagerTensor:
    """Stand-in for TensorFlow's eager tensor: ``numpy()`` gives its value."""

    def __init__(self, value):
        self._value = numpy.asarray(value)

    def numpy(self):
        return self._value

    def __int__(self):
        return int(self._value)


class RaggedTensor(EagerTensor):
    """Stand-in for tf.RaggedTensor (it too has numpy(), which gives an array of rows)."""


class SparseTensor:
    """Stand-in for tf.SparseTensor."""


EagerTensor.__module__ = "tensorflow.python.framework.ops"
RaggedTensor.__module__ = "tensorflow.python.ops.ragged.ragged_tensor"
SparseTensor.__module__ = "tensorflow.python.framework.sparse_tensor"


class DatasetV2:
    """Stand-in for tf.data.Dataset: iterating gives a new pass over batches of tensors (endlessly where its
    cardinality is infinite, -1); ``cardinality()`` is a scalar tensor (-2 where unknown)."""

    def __init__(self, batches, cardinality):
        self._batches, self._cardinality = batches, cardinality

    def __iter__(self):
        batches = itertools.cycle(self._batches) if self._cardinality == -1 else self._batches
        for batch in batches:
            yield _map(batch, lambda a: a if isinstance(a, (EagerTensor, SparseTensor)) else EagerTensor(a))

    def cardinality(self):
        return EagerTensor(numpy.int64(self._cardinality))


class _BatchDataset(DatasetV2):
    """As ``Dataset.batch()`` makes: a subclass of DatasetV2 in another module."""


DatasetV2.__module__ = "tensorflow.python.data.ops.dataset_ops"
_BatchDataset.__module__ = "tensorflow.python.data.ops.batch_op"


def tf_stand_in(parts, batch_size, cardinality="known"):
    batches = _batches(parts, batch_size)
    return _BatchDataset(batches, {"known": len(batches), "unknown": -2, "infinite": -1}[cardinality])


class MapDataset:
    """Stand-in for a grain MapDataset of batches: NumPy batches, and no length gpu_dl reads (as Keras)."""

    def __init__(self, batches):
        self._batches = batches

    def __len__(self):
        return len(self._batches)

    def __getitem__(self, index):
        return self._batches[index]

    def __iter__(self):
        return iter(self._batches)


MapDataset.__module__ = "grain._src.python.dataset.dataset"


@pytest.mark.parametrize("with_weights", [False, True], ids=["x_y", "x_y_sample_weight"])
def test_fit_evaluate_predict_equal_the_same_arrays(with_weights):
    cases.fit_evaluate_predict_equal_the_same_arrays(tf_stand_in, with_weights)


def test_endless_data_set_with_steps_per_epoch():
    cases.endless_with_steps(tf_stand_in)


def test_data_set_that_ends_before_steps_per_epoch():
    cases.ends_early(tf_stand_in)


def test_cardinality_gives_the_progress_bar_its_steps():
    cases.cardinality_for_the_progress_bar(tf_stand_in)


def test_dicts_of_inputs():
    cases.dicts_of_inputs(tf_stand_in)


def test_tuples_and_dicts_of_targets():
    cases.tuples_and_dicts_of_targets(tf_stand_in)


def test_validation_data_and_validation_steps():
    cases.validation_data_and_steps(tf_stand_in)


def test_class_weight():
    cases.class_weight(tf_stand_in)


def test_refusals():
    cases.refusals(tf_stand_in)



def _samples(parts):
    """The samples of ``parts`` one by one, as a data set made without ``batch()`` gives them."""
    return [_map(parts, lambda a, i=i: a[i]) for i in range(len(_batches(parts, 1)))]


def test_an_unbatched_data_set_gets_a_hint_to_batch_it():
    def unbatched(parts):
        return DatasetV2(_samples(parts), len(_samples(parts)))
    cases.unbatched_data_sets_get_a_hint(tf_stand_in, unbatched, "tf.data.Dataset")
    cases.unbatched_data_sets_get_a_hint(tf_stand_in, lambda parts: MapDataset(_samples(parts)), "grain dataset")
    x, y, _ = cases.arrays()
    with pytest.raises(ValueError, match=r"got \(4,\)") as refused:       # a generator has no batch(): no hint
        cases.classifier().predict((s for s in _samples((x,))), verbose=0)
    assert "unbatched" not in str(refused.value)

@pytest.mark.parametrize("tensor", [RaggedTensor(numpy.zeros((5, 4))), SparseTensor()], ids=["ragged", "sparse"])
def test_ragged_and_sparse_tensors_are_refused(tensor):
    x, y, _ = cases.arrays()
    data = _BatchDataset([(x[:5], y[:5]), (tensor, y[5:10])], 2)
    with pytest.raises(TypeError, match=rf"Batch 1 of `x`: a batch holds a tf.{type(tensor).__name__}; gpu_dl's "
                                        "layers take dense arrays"):
        cases.quiet_fit(cases.classifier(), data)
    with pytest.raises(TypeError, match=r"Batch 1 of `x`.*dense"):
        cases.classifier().predict(_BatchDataset([x[:5], tensor], 2), verbose=0)


def test_what_is_taken_for_a_tf_dataset():
    data = tf_stand_in((numpy.zeros((4, 2)),), 2)
    assert foreign_datasets.is_tf_dataset(data) and foreign_datasets.kind(data) == "tf.data.Dataset"
    assert streaming.is_stream(data) and not foreign_datasets.is_grain_dataset(data)

    class DatasetV2:        # the name alone, in another module, is not TensorFlow's
        pass
    assert foreign_datasets.kind(DatasetV2()) is None and not streaming.is_stream(DatasetV2())
    assert foreign_datasets.num_batches(tf_stand_in(numpy.zeros((5, 2)), 2, "unknown")) is None
    assert foreign_datasets.num_batches(tf_stand_in(numpy.zeros((5, 2)), 2, "infinite")) is None
    assert foreign_datasets.is_endless(tf_stand_in(numpy.zeros((5, 2)), 2, "infinite"))


def test_shuffle_is_ignored_with_keras_words():
    x, y, _ = cases.arrays()
    with pytest.warns(UserWarning, match=r"`shuffle=True` was passed, but will be ignored since the data `x` was "
                                         r"provided as a tf.data.Dataset. The Dataset is expected to already be "
                                         r"shuffled \(via `.shuffle\(buffer_size\)`\)"):
        cases.classifier().fit(tf_stand_in((x, y), 5), verbose=0)


def test_grain_data_set_trains_as_the_same_arrays():
    """A grain data set: no length known beforehand, so each pass ends with Keras's warning; the same weights as
    the arrays."""
    x, y, sw = cases.arrays()
    data = MapDataset(_batches((x, y, sw), 5))
    assert foreign_datasets.kind(data) == "grain dataset" and foreign_datasets.num_batches(data) is None
    ours, expected = cases.classifier(), cases.classifier()
    with pytest.warns(UserWarning) as caught:
        history = ours.fit(data, epochs=2, verbose=0)
    messages = [str(w.message) for w in caught]
    assert sum("Your input ran out of data" in m for m in messages) == 2
    assert any("provided as a grain dataset. The grain dataset is expected to already be shuffled" in m
               for m in messages)
    assert history.history == expected.fit(x, y, sample_weight=sw, batch_size=5, epochs=2, shuffle=False,
                                           verbose=0).history
    cases.assert_same_weights(ours, expected)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Your input ran out of data")
        numpy.testing.assert_array_equal(ours.predict(MapDataset(_batches(x, 5)), verbose=0),
                                         expected.predict(x, verbose=0))
    with pytest.raises(ValueError, match="`class_weight` is not supported for grain dataset inputs"):
        ours.fit(data, class_weight={0: 1.0, 1: 1.0, 2: 1.0}, verbose=0, shuffle=False)


def test_gpu_dl_imports_neither_tensorflow_nor_grain():
    code = ("import sys, numpy\n"
            f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
            "import test_foreign_dataset_stand_ins as t, foreign_dataset_cases as cases\n"
            "x, y, _ = cases.arrays()\n"
            "m = cases.classifier()\n"
            "m.fit(t.tf_stand_in((x, y), 5), verbose=0, shuffle=False)\n"
            "m.fit(t.MapDataset(t._batches((x, y), 5)), verbose=0, shuffle=False)\n"
            "m.predict(numpy.ones((2, 4)), verbose=0)\n"
            "assert not [k for k in sys.modules if k.split('.')[0] in ('tensorflow', 'grain')], "
            "sorted(k for k in sys.modules if 'tensorflow' in k or 'grain' in k)\n")
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_data_set_where_arrays_are_expected_is_refused():
    x, y, _ = cases.arrays()
    model = cases.classifier()
    with pytest.raises(TypeError, match=r"`y` is a tf.data.Dataset, where arrays are expected: fit, evaluate and "
                                        r"predict take one as `x`"):
        model.fit(x, tf_stand_in(y, 5), verbose=0)
    with pytest.raises(TypeError, match=r"`x` is a grain dataset, where arrays are expected"):
        model.train_on_batch(MapDataset(_batches(x, 5)), y)
