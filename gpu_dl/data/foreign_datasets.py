"""Data sets of other libraries as the input of fit/evaluate/predict, as Keras 3's data adapters take them: a
``tf.data.Dataset``, a grain ``MapDataset`` / ``IterDataset`` / ``DataLoader``, and PyTorch's ``DataLoader``
(``torch_loader.py``).

All three are iterables of batches that start a new pass each time they are iterated, so the loops run them
alike (``models/streaming.py``); this module is the one place that knows each kind: how to recognise it, how
many batches a pass has, and how its batches become NumPy arrays.

gpu_dl depends on neither TensorFlow nor grain and never imports them: an object is recognised by the module
and name of its classes (as Keras's ``is_tf_dataset`` and ``is_grain_dataset`` do), and read through what it
offers (iteration, ``cardinality()``, a tensor's ``numpy()``).

- A ``tf.data.Dataset``'s pass has ``cardinality()`` batches where TensorFlow knows it; an unknown cardinality
  (after ``filter``, say) gives None: a pass ends when the data set does. An infinite one (``repeat()``) needs
  ``steps_per_epoch`` (``steps``, ``validation_steps``), which Keras would loop without forever. Its tensors
  become arrays through ``numpy()``; string tensors become object arrays of bytes, which inputs of dtype
  "string" take (``TextVectorization``, ``StringLookup``). A ``RaggedTensor`` or ``SparseTensor`` in a batch
  is refused: gpu_dl's layers take dense arrays only.
- A grain data set's pass has no length known beforehand, as in Keras's grain adapter (a pass ends when the data
  set does); its elements are NumPy arrays already, and anything else with ``__array__`` is made one.
"""
from __future__ import annotations

import numpy

from . import torch_loader

TF_DATASET, GRAIN_DATASET, TORCH_DATALOADER = "tf.data.Dataset", "grain dataset", "torch DataLoader"

# tf.data's cardinality for a data set that never ends (tf.data.INFINITE_CARDINALITY)
_TF_INFINITE = -1


def _has_class(x, names, module_part):
    return any(parent.__name__ in names and module_part in str(parent.__module__) for parent in type(x).__mro__)


def is_tf_dataset(x) -> bool:
    """Whether ``x`` is a ``tf.data.Dataset`` (or a distributed one), told by its classes (TensorFlow is never
    imported)."""
    return _has_class(x, ("DatasetV2", "DistributedDataset", "DistributedDatasetsFromFunction"), "tensorflow.python.")


def is_grain_dataset(x) -> bool:
    """Whether ``x`` is a grain ``MapDataset``, ``IterDataset`` or ``DataLoader``, told by its classes."""
    return _has_class(x, ("MapDataset", "IterDataset", "DataLoader"), "grain")


def kind(x):
    """The kind of data set ``x`` is, in the words messages use (``TF_DATASET``, ``GRAIN_DATASET``,
    ``TORCH_DATALOADER``), or None where it is none of them."""
    if torch_loader.is_torch_dataloader(x):
        return TORCH_DATALOADER
    if is_tf_dataset(x):
        return TF_DATASET
    if is_grain_dataset(x):
        return GRAIN_DATASET
    return None


def _cardinality(dataset):
    cardinality = dataset.cardinality
    # a tensor from Dataset.cardinality(); a distributed data set has it as a number
    return int(cardinality() if callable(cardinality) else cardinality)


def num_batches(x):
    """Batches in one pass of the data set ``x`` where known beforehand, else None."""
    if torch_loader.is_torch_dataloader(x):
        return torch_loader.num_batches(x)
    if is_tf_dataset(x):
        cardinality = _cardinality(x)
        return cardinality if cardinality >= 0 else None
    return None


def is_endless(x) -> bool:
    """Whether a pass of ``x`` never ends (a ``tf.data.Dataset`` made with ``repeat()``)."""
    return is_tf_dataset(x) and _cardinality(x) == _TF_INFINITE


def _tf_class(value):
    """The name of ``value``'s TensorFlow class where it is a TensorFlow value, else None."""
    module = type(value).__module__
    return type(value).__name__ if module.startswith("tensorflow.") else None


def _leaf(value):
    if value is None or isinstance(value, numpy.ndarray):
        return value
    tf_class = _tf_class(value)
    if tf_class in ("RaggedTensor", "SparseTensor"):
        dense = "x.to_tensor()" if tf_class == "RaggedTensor" else "tf.sparse.to_dense(x)"
        raise TypeError(f"a batch holds a tf.{tf_class}; gpu_dl's layers take dense arrays: make it dense in the "
                        f"data set first (`.map(lambda x, ...: ...)` with `{dense}`).")
    if tf_class is not None and callable(getattr(value, "numpy", None)):
        return numpy.asarray(value.numpy())
    return torch_loader.to_numpy(value)        # a torch tensor; anything else through numpy.asarray


def to_numpy(batch):
    """A batch with each tensor as a NumPy array, its dicts, lists and tuples kept (a named tuple as a tuple of its
    fields); raises TypeError for ragged or sparse tensors."""
    if isinstance(batch, dict):
        return {key: to_numpy(value) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_numpy(v) for v in batch) if type(batch) in (list, tuple) else \
            tuple(to_numpy(v) for v in batch)
    return _leaf(batch)


def numpy_batches(x, name="x"):
    """One pass of the data set ``x`` (given as ``name``), each batch as NumPy arrays; an error names its batch."""
    if torch_loader.is_torch_dataloader(x):
        yield from torch_loader.numpy_batches(x)
        return
    for index, batch in enumerate(x):
        try:
            batch = to_numpy(batch)
        except TypeError as exc:
            raise TypeError(f"Batch {index} of `{name}`: {exc}") from None
        yield batch
