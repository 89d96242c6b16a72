"""Masks of padded steps through layer calls, as Keras 3 passes them on.

A mask is a boolean array, True at the steps that count (``Embedding(mask_zero=True)``: the ids other than 0;
``Masking``: the steps not all ``mask_value``). Keras attaches it to the tensor it belongs to (``_keras_mask``);
gpu_dl's arrays are NumPy's and CuPy's, which take no attributes, so on arrays a model carries each tensor's mask
beside it and ``layer.compute_mask(inputs, mask=None)`` gives the mask of a layer's output. On symbolic tensors
``_keras_mask`` is there, as in Keras (``symbolic.py``).

After a call, Keras's rule gives the mask of the output (``output_mask`` on arrays, ``set_node_masks`` on
symbolic tensors):

- a layer that supports masking (``supports_masking = True``, or a ``compute_mask`` of its own) gives
  ``compute_mask(inputs, mask)``, whose default is the input's mask (a pass-through);
- any other layer gives none, except that the output of a layer made of other layers (a composite layer: its
  call is traced into a graph, ``models/composite.py``) keeps the mask that reached it inside the call, as a
  Keras tensor keeps the mask an inner layer attached to it; a composite layer that supports masking keeps those
  and takes ``compute_mask`` for the outputs none reached.

On symbolic tensors a user's ``compute_mask`` runs on the symbolic inputs and mask, as Keras runs it (``ops``
on them record operations of the graph), or, where it cannot (it uses NumPy), on small arrays standing in for
them, which tell whether a mask comes out and of what rank. gpu_dl's own layers that compute their mask on
arrays (Embedding, Masking, the merges) are asked that way too (``from_arrays``). A mask known that way is a
``MaskSpec`` until something reads it: then it becomes a ``TensorMask`` of its tensor, an operation whose value
in the running graph is the mask that reached the tensor.
"""
from __future__ import annotations

import numpy

from .base import Layer
from .operations import Operation
from .symbolic import MaskSpec, is_symbolic


def from_arrays(function):
    """Marks a gpu_dl layer's ``compute_mask`` that computes on arrays only: on symbolic tensors it runs on small
    arrays standing in for them, for whether a mask comes out and its rank."""
    function._mask_from_arrays = True
    return function


def supports_masking(layer) -> bool:
    """Keras's ``supports_masking``: set by the layer, or implied by a ``compute_mask`` of its own."""
    return bool(layer.supports_masking) or type(layer).compute_mask is not Layer.compute_mask


def per_output(layer, mask, count):
    """A layer's output mask as a list of one per output: a list as it is, one mask for each of the two sequences
    of a Bidirectional layer that does not merge them, else the first output's."""
    if isinstance(mask, (list, tuple)):
        masks = list(mask)[:count]
        return masks + [None] * (count - len(masks))
    if count > 1 and getattr(layer, "merge_mode", "") is None:
        return [mask] * count
    return [mask] + [None] * (count - 1)


def _filled(carried, computed, count, layer):
    """Keras's ``_set_mask_metadata``: each output keeps the mask it carries; those without one take ``computed``."""
    return [c if c is not None else k for c, k in zip(carried, per_output(layer, computed, count))]


# ------------------------------------------------------------------ on arrays
def output_mask(layer, x, mask):
    """The mask of ``layer``'s output after its call on arrays ``x`` (its first argument) reached by ``mask``: one
    mask (or None), or a list of one per output where its output mask is a list."""
    if not layer._composite:
        return layer.compute_mask(x, mask) if supports_masking(layer) else None
    carried = layer.__dict__.get("_output_mask")
    several = isinstance(carried, list)
    flat = carried if several else [carried]
    if not supports_masking(layer) or all(m is not None for m in flat):
        return carried
    masks = _filled(flat, layer.compute_mask(x, mask), len(flat), layer)
    return masks if several else masks[0]


# ------------------------------------------------------------------ on symbolic tensors
class TensorMask(Operation):
    """The mask of padded steps reaching a tensor, as a boolean tensor of the graph: its value when the graph runs
    is the mask that reached its one argument there (``_keras_mask`` of a tensor makes it). No gradient."""

    arity = 1
    casts_inputs = False
    keras_module = None

    def __init__(self, shape, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.mask_shape = tuple(shape)

    def result_dtype(self, tensors, arguments):
        return "bool"

    def output_shape_of(self, arguments, shapes):
        return self.mask_shape

    def __call__(self, x, training=None, mask=None, initial_state=None):
        if is_symbolic(x) or (isinstance(x, (list, tuple)) and any(is_symbolic(t) for t in x)):
            return super().__call__(x, training=training, mask=mask, initial_state=initial_state)
        if mask is None:
            raise ValueError(f"{self._where()}: no mask of padded steps reached its tensor when the graph ran, "
                             "though one did when the graph was made; the layers before it give a mask for some "
                             "inputs only.")
        self._saved = () if training else None
        self._activity_output = None
        return mask

    def compute_mask(self, x, mask=None):
        return None

    def backward(self, dy):
        self.saved()
        return None

    def get_config(self):
        raise ValueError(f"{self._where()}: a model that computes with a tensor's _keras_mask cannot be written as a "
                         "config (Keras would write the operations that made the mask); compute the mask with ops "
                         "from the inputs instead (ops.not_equal(ids, 0)).")


def input_masks(x, mask_of):
    """The masks of ``x`` (a tensor, or a list or tuple of them) by ``mask_of``, in its structure; None where none
    of its tensors has one."""
    if isinstance(x, (list, tuple)):
        masks = [mask_of(t) if is_symbolic(t) else None for t in x]
        return None if all(m is None for m in masks) else masks
    return mask_of(x) if is_symbolic(x) else None


def _mask_of_tensor(tensor):
    return tensor._mask


def drop_masks(tensors):
    """Keras's MultiHeadAttention takes the masks off its query, value and key tensors once it has read them; in a
    call on arrays (a composite layer's call, which gpu_dl traces) the calls after it on the same tensors then read
    none. In a functional model Keras's later calls read the masks their nodes recorded, so nothing changes there:
    only a call being traced drops them."""
    from .symbolic import tracing_symbolic
    if not tracing_symbolic():
        return
    for t in tensors:
        if is_symbolic(t):
            t._mask, t._mask_dropped = None, True


def edge_mask(node, tensor, mask_of):
    """The mask ``node`` reads from its input ``tensor`` (``mask_of(tensor)``), or None where a call traced before
    it took that mask away (``drop_masks``)."""
    return None if id(tensor) in getattr(node, "unmasked_inputs", ()) else mask_of(tensor)


def set_node_masks(node, carried=None):
    """Set ``_keras_mask`` on the outputs of ``node`` (a call on symbolic tensors) by Keras's rule, from the masks
    on its inputs (or the ``mask`` it was given). ``carried``: for a composite layer, the masks that reached the
    outputs of its graph."""
    for tensor, mask in zip(node.outputs, node_output_masks(node, _mask_of_tensor, carried)):
        tensor._mask = mask


def node_output_masks(node, mask_of, carried=None):
    """The masks (None, a KerasTensor or a MaskSpec) of the outputs of ``node``, whose input tensors have the masks
    ``mask_of(tensor)``; ``carried`` as in ``set_node_masks`` (found here for a composite layer when not given)."""
    layer = node.layer
    count = len(node.outputs)
    x = node.args[0] if node.args else None
    read = mask_of
    mask_of = lambda t: edge_mask(node, t, read)        # noqa: E731
    mask = node.kwargs["mask"] if node.kwargs.get("mask") is not None else input_masks(x, mask_of)
    if carried is None:
        carried = layer._carried_masks(node, mask_of) if layer._composite else [None] * count
    if not supports_masking(layer) or all(m is not None for m in carried):
        return list(carried)
    return _filled(carried, _symbolic_compute_mask(layer, x, mask, node.outputs), count, layer)


def _symbolic_compute_mask(layer, x, mask, outputs):
    """``layer.compute_mask(x, mask)`` on symbolic tensors, as a list of one mask per output."""
    count = len(outputs)
    own = getattr(layer, "symbolic_compute_mask", None)
    if own is not None:         # a model: what reaches its outputs through its layers
        return per_output(layer, own(x, mask, outputs), count)
    function = type(layer).compute_mask
    if getattr(function, "_mask_from_arrays", False):
        return _from_stand_ins(layer, x, mask, outputs)
    if function.__module__.startswith("gpu_dl."):     # gpu_dl's own: passes a mask on, picks one, or gives none
        return per_output(layer, layer.compute_mask(x, mask), count)
    try:            # the user's, on symbolic tensors as Keras runs it
        result = layer.compute_mask(x, _materialized(x, mask))
        masks = per_output(layer, result, count)
        if all(m is None or is_symbolic(m) for m in masks):
            return masks
        symbolic_error = f"it returned {type(result).__name__}"
    except Exception as e:         # it computes on arrays: its own code, whatever it raises on tensors
        symbolic_error = f"{type(e).__name__}: {e}"
    try:
        return _from_stand_ins(layer, x, mask, outputs)
    except Exception as e:
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): its compute_mask runs neither on symbolic "
                         f"tensors ({symbolic_error}) nor on arrays ({type(e).__name__}: {e}); it takes the layer's "
                         "input and the mask reaching it (None or a boolean tensor) and returns the output's mask "
                         "(gpu_dl.ops work on both).") from None


def _materialized(x, mask):
    """``mask`` with each MaskSpec made the TensorMask of its tensor in ``x``."""
    def one(tensor, m):
        if not isinstance(m, MaskSpec):
            return m
        return tensor._keras_mask if tensor._mask is m else TensorMask(m.shape).apply(tensor)
    if isinstance(mask, (list, tuple)):
        tensors = x if isinstance(x, (list, tuple)) else [x] * len(mask)
        return [one(t, m) for t, m in zip(tensors, mask)]
    return one(x, mask)


def _known_sizes(tensors):
    """Per rank, the size of each axis where some tensor of ``tensors`` of that rank knows it."""
    sizes = {}
    for t in tensors:
        if t is None or not hasattr(t, "shape"):
            continue
        known = sizes.setdefault(len(t.shape), [None] * len(t.shape))
        for i, d in enumerate(t.shape):
            if known[i] is None and d is not None:
                known[i] = d
    return sizes


def _stand_in_shape(shape, sizes):
    """``shape`` with each unknown size taken from ``sizes`` (an axis's size another input knows), else 1."""
    return tuple(d if d is not None else (sizes[i] if sizes is not None and i < len(sizes) and sizes[i] is not None
                                          else 1) for i, d in enumerate(shape))


def _standing(x, mask):
    """Arrays standing in for symbolic ``x`` (a tensor or a list of them) and its ``mask`` (in its structure, None
    where none): zeros of its dtype and all-True masks. An unknown size is 1, or, in a list, the size another
    input of the same rank has on that axis: a merge's inputs agree there (``EinsumDense(..., output_shape=(None,
    3))`` leaves the steps unknown beside a Dense whose steps are known), and stand-ins that did not would make
    the merge's compute_mask fail on sizes the real inputs never have. A mask's axes are its tensor's leading ones."""
    several = isinstance(x, (list, tuple))
    xs = list(x) if several else [x]
    if mask is None:
        ms = [None] * len(xs)
    elif isinstance(mask, (list, tuple)):
        ms = list(mask)
    else:
        ms = [mask] * len(xs) if several else [mask]
    sizes = _known_sizes(xs)
    arrays, masks = [], []
    for t, m in zip(xs, ms):
        if t is None or not hasattr(t, "shape"):
            arrays.append(t)
            shape = ()
        else:
            shape = _stand_in_shape(t.shape, sizes.get(len(t.shape)))
            arrays.append(numpy.zeros(shape, dtype=t.dtype))
        masks.append(m if m is None or not hasattr(m, "shape") else
                     numpy.ones(_stand_in_shape(m.shape, list(shape)), dtype=bool))
    if len(ms) > len(xs):       # masks without tensors to go with: each as it is, all True
        masks += [m if m is None else numpy.ones(_stand_in_shape(m.shape, None), dtype=bool) for m in ms[len(xs):]]
    mask_stand_in = masks if isinstance(mask, (list, tuple)) else None if mask is None else masks[0]
    return (arrays if several else arrays[0]), mask_stand_in


def _from_stand_ins(layer, x, mask, outputs):
    """Whether ``compute_mask`` gives a mask for each output, and of what rank: run on arrays standing in for ``x``
    and ``mask``."""
    result = layer.compute_mask(*_standing(x, mask))
    masks = per_output(layer, result, len(outputs))
    return [None if m is None else MaskSpec(_mask_shape(numpy.ndim(m), numpy.shape(m), out))
            for m, out in zip(masks, outputs)]


def _mask_shape(rank, stand_in_shape, output):
    """A mask's symbolic shape: the leading axes of its output's (a mask covers the steps of its tensor), else
    the stand-in's with the batch axis unknown."""
    if rank <= len(output.shape):
        return (None,) + tuple(output.shape[1:rank]) if rank else ()
    return (None,) + tuple(stand_in_shape[1:])


def spec_of(mask):
    """A MaskSpec of the shape of ``mask`` (a symbolic mask or a MaskSpec), or None."""
    return None if mask is None else MaskSpec(mask.shape)

