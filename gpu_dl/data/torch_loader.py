"""PyTorch's ``torch.utils.data.DataLoader`` as the input of fit/evaluate/predict, as Keras 3 takes it.

gpu_dl never imports torch: a DataLoader (or a Dataset) can only exist once
its program has imported ``torch.utils.data``, so the checks here look the
classes up in ``sys.modules`` and say False where torch is not loaded.

A DataLoader is iterated afresh for each pass over its data (it shuffles and
batches by itself); each batch is turned into NumPy arrays on the host, its
structure kept: a tensor, ``(x,)``, ``(x, y)``, ``(x, y, sample_weight)``,
with ``x`` (or ``y``) a tensor, a list or tuple of them, or a dict of them.
Tensors are detached and copied off their device (``tensor.detach().cpu()``);
NumPy arrays and numbers pass as they are. ``len(loader)`` is the number of
batches of a pass where its dataset has a length (an ``IterableDataset``
without one gives None: a pass ends when the loader does).
"""
from __future__ import annotations

import sys

import numpy


def _torch_data():
    return sys.modules.get("torch.utils.data")


def is_torch_dataloader(x) -> bool:
    """Whether ``x`` is a ``torch.utils.data.DataLoader`` (False where torch is not loaded)."""
    data = _torch_data()
    return data is not None and isinstance(x, data.DataLoader)


def is_torch_dataset(x) -> bool:
    """Whether ``x`` is a ``torch.utils.data.Dataset`` or ``IterableDataset`` (which Keras takes only inside a
    DataLoader)."""
    data = _torch_data()
    return data is not None and isinstance(x, (data.Dataset, data.IterableDataset))


def dataset_refusal(name):
    """The error for a torch Dataset given where its DataLoader belongs."""
    return TypeError(f"`{name}` is a torch Dataset; gpu_dl (as Keras) takes it inside a DataLoader, which batches "
                     f"it: pass torch.utils.data.DataLoader(dataset, batch_size=32) as `{name}`.")


def _is_tensor(value):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def to_numpy(batch):
    """A batch of a DataLoader with each tensor as a NumPy array, its lists, tuples and dicts kept."""
    if _is_tensor(batch):
        return batch.detach().cpu().numpy()
    if isinstance(batch, dict):
        return {key: to_numpy(value) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_numpy(value) for value in batch) if type(batch) in (list, tuple) else \
            tuple(to_numpy(value) for value in batch)       # a named tuple: its fields in order
    return batch if isinstance(batch, numpy.ndarray) or batch is None else numpy.asarray(batch)


def num_batches(loader):
    """Batches in one pass of ``loader``: ``len(loader)``, or None where its dataset has no length."""
    try:
        return len(loader)
    except TypeError:
        return None


def numpy_batches(loader):
    """One pass of ``loader``, each batch as ``to_numpy`` gives it."""
    for batch in loader:
        yield to_numpy(batch)
