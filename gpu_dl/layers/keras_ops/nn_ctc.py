"""Keras's ``keras.ops.nn`` ``CTCLoss`` and ``CTCDecode`` (greedy and beam search), with Keras's classes,
modules and configs; the loss has an exact backward.
"""
from __future__ import annotations

import numpy

from ... import backend
from ...ops import ctc
from .base import _xp
from .nn_base import NNOperation, _is_symbolic, _promoted

__all__ = ["CTCLoss", "CTCDecode", "OPERATIONS"]


def _lengths(xp, value, count, where, name):
    value = xp.asarray(value).astype("int64").reshape(-1)
    if value.shape[0] != count:
        raise ValueError(f"{where}: `{name}` must hold one length per sample ({count}), got {value.shape[0]}.")
    return value


class CTCLoss(NNOperation):
    """``ctc_loss(target, output, target_length, output_length, mask_index=0)``: the per-sample CTC loss (B,)
    of integer labels ``target`` (B, L) (the first ``target_length`` of each row count) under logits ``output``
    (B, T, C) (the first ``output_length`` steps count), blank class ``mask_index``; +inf where no path
    exists, as torch gives it. The gradient goes to ``output`` (zero past each row's length and on +inf rows).
    The recursion is ``ops/ctc.py``'s (its CUDA kernels on CuPy)."""

    positional = ("target", "output", "target_length", "output_length")
    required = 4
    config_keys = ("mask_index",)
    dtype_from = "output"

    def __init__(self, mask_index=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.mask_index = int(mask_index)

    def integer_operand(self, position):
        return position != 1

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        t, o = given["target"], given["output"]
        if len(t) != 2 or len(o) != 3:
            raise ValueError(f"{self._where()}: `target` must be (batch, max label length) and `output` (batch, "
                             f"steps, classes), got {t} and {o}.")
        if t[0] is not None and o[0] is not None and t[0] != o[0]:
            raise ValueError(f"{self._where()}: `target` {t} and `output` {o} have different batch sizes.")
        return (o[0] if o[0] is not None else t[0],)

    def _prepared(self, target, output, target_length, output_length):
        """The labels and logits ``ops/ctc.py`` takes: the blank moved to class 0, labels past their lengths 0,
        steps past their lengths forced to the blank."""
        xp = _xp(output)
        b, t, c = output.shape
        if not 0 <= self.mask_index < c:
            raise ValueError(f"{self._where()}: `mask_index` {self.mask_index} is not one of the {c} classes.")
        target_length = _lengths(xp, target_length, b, self._where(), "target_length")
        output_length = _lengths(xp, output_length, b, self._where(), "output_length")
        order = [self.mask_index] + [i for i in range(c) if i != self.mask_index]
        labels = target.astype("int64")
        labels = xp.where(labels < self.mask_index, labels + 1, labels)
        labels = xp.where(xp.arange(labels.shape[1])[None] < target_length[:, None], labels, 0)
        logits = output[:, :, order]
        past = xp.arange(t)[None, :] >= output_length[:, None]
        forced = xp.full((c,), -1e30 if output.dtype.itemsize > 2 else -6e4, dtype=output.dtype)
        forced[0] = 0
        logits = xp.where(past[:, :, None], forced, logits)
        return xp.ascontiguousarray(labels), xp.ascontiguousarray(logits), order, past

    def forward_function(self, target, output, target_length, output_length):
        labels, logits, _, _ = self._prepared(target, output, target_length, output_length)
        loss, self._ctc_saved = ctc.ctc_forward(labels, logits)
        return loss

    def backward_function(self, dy, operands, y):
        target, output, target_length, output_length = operands
        xp = _xp(output)
        _, _, order, past = self._prepared(target, output, target_length, output_length)
        dlogits = ctc.ctc_backward(self._ctc_saved)
        dlogits = xp.where(past[:, :, None], output.dtype.type(0), dlogits) * dy[:, None, None]
        doutput = xp.empty_like(dlogits)
        doutput[:, :, order] = dlogits
        return [None, doutput, None, None]


class CTCDecode(NNOperation):
    """``ctc_decode(inputs, sequence_lengths, strategy="greedy", beam_width=100, top_paths=1,
    merge_repeated=True, mask_index=0)``: two outputs. Greedy: the decoded classes (1, B, T) int32 (-1 past the
    end of each row's sequence) and the scores (B, 1), the negative sum of each step's largest input. Beam search
    (Keras's algorithm, ``_beam_search``): the ``top_paths`` best paths (top_paths, B, T) and their
    log-probabilities (B, top_paths). No gradient."""

    positional = ("inputs", "sequence_lengths")
    required = 2
    config_keys = ("strategy", "beam_width", "top_paths", "merge_repeated", "mask_index")

    def __init__(self, strategy="greedy", beam_width=100, top_paths=1, merge_repeated=True, mask_index=0, name=None,
                 **kwargs):
        super().__init__(name=name, **kwargs)
        if strategy not in ("greedy", "beam_search"):
            raise ValueError(f"{self._where()}: `strategy` must be 'greedy' or 'beam_search', got {strategy!r}.")
        self.strategy, self.beam_width, self.top_paths = strategy, int(beam_width), int(top_paths)
        if self.beam_width < 1 or self.top_paths < 1:
            raise ValueError(f"{self._where()}: `beam_width` and `top_paths` must be positive, got {beam_width!r} "
                             f"and {top_paths!r}.")
        self.merge_repeated = bool(merge_repeated)
        self.mask_index = None if mask_index is None else int(mask_index)

    def integer_operand(self, position):
        return position == 1

    def apply(self, inputs, sequence_lengths):
        if not _is_symbolic(inputs):
            raise TypeError(f"{self._where()}: `inputs` must be a symbolic tensor here.")
        from ..symbolic import KerasTensor, Node
        if self.arguments is not None:
            raise ValueError(f"{self._where()} was called already; a later call needs an operation of its own.")
        tensors = [inputs] + ([sequence_lengths] if _is_symbolic(sequence_lengths) else [])
        self.arguments = [None, None if _is_symbolic(sequence_lengths) else
                          self.accept_argument(1, numpy.asarray(backend.to_numpy(sequence_lengths))
                                               if hasattr(sequence_lengths, "shape") else
                                               numpy.asarray(sequence_lengths))]
        shape = tuple(inputs.shape)
        if len(shape) != 3:
            raise ValueError(f"{self._where()}: `inputs` must be (batch, steps, classes), got {shape}.")
        self.dtype = _promoted(inputs.dtype)
        self.built = True
        paths = 1 if self.strategy == "greedy" else self.top_paths
        outputs = [KerasTensor((paths,) + shape[:2], dtype="int32"), KerasTensor((shape[0], paths), dtype=self.dtype)]
        Node(self, args=(tensors if len(tensors) > 1 else tensors[0],), outputs=outputs)
        return outputs

    def result_dtype(self, tensors, arguments):
        return _promoted(tensors[0].dtype)

    def eager_dtype(self, arrays):
        return _promoted(arrays[0].dtype.name)

    def forward_function(self, inputs, sequence_lengths):
        xp = _xp(inputs)
        b, t, c = inputs.shape
        mask_index = c - 1 if self.mask_index is None else self.mask_index
        lengths = _lengths(xp, sequence_lengths, b, self._where(), "sequence_lengths")
        if self.strategy == "beam_search":
            return _beam_search(inputs, backend.to_numpy(lengths).tolist(), self.beam_width, self.top_paths,
                                mask_index)
        indices = inputs.argmax(axis=-1).astype("int32")
        scores = inputs.max(axis=-1)
        past = xp.arange(t)[None, :] >= lengths[:, None]
        indices = xp.where(past, xp.int32(mask_index), indices)
        scores = xp.where(past, inputs.dtype.type(0), scores)
        if self.merge_repeated:
            repeat = xp.concatenate([xp.zeros((b, 1), dtype=bool), indices[:, 1:] == indices[:, :-1]], axis=1)
            indices = xp.where(repeat, xp.int32(mask_index), indices)
        invalid = indices == mask_index
        indices = xp.where(invalid, xp.int32(-1), indices)
        order = xp.where(invalid, t, xp.arange(t)[None, :])
        order = xp.argsort(order, axis=-1, kind="stable")
        indices = xp.take_along_axis(indices, order, axis=-1)
        return [indices[None].astype("int32"), -scores.sum(axis=1, keepdims=True)]

    def backward(self, dy):
        operands, _ = self.saved()
        return None if sum(a is None for a in self.arguments) == 1 else [None, None]


# Beam search, as Keras's JAX and torch backends run it: the same paths, merges, tie-breaks and scores.
_PAD = -1
_HASH_BASE = 2654435769         # Knuth's multiplicative constant: the base of Keras's path hashes


def _unique_rows(paths, size):
    """(the distinct rows of ``paths`` in Keras's order, padded with ``_PAD`` rows to ``size``; each row's index
    among them). Keras's torch backend orders them by a polynomial hash of the row (int64, wrapping), so the
    order (which breaks ties between equal scores) is that one."""
    xp = _xp(paths)
    n, t = paths.shape
    powers = xp.asarray(numpy.full(t, _HASH_BASE, dtype="int64") ** numpy.arange(t, dtype="int64"))
    hashes = ((paths.astype("int64") + 1) * powers).sum(axis=1)
    order = xp.argsort(hashes, kind="stable")
    rows, keys = paths[order], hashes[order]
    duplicate = (keys[1:] == keys[:-1]) & (rows[1:] == rows[:-1]).all(axis=1)
    first = xp.concatenate([xp.ones(1, dtype=bool), ~duplicate])
    inverse = xp.empty(n, dtype="int64")
    inverse[order] = xp.cumsum(first.astype("int64")) - 1
    unique = rows[first]
    if unique.shape[0] < size:
        unique = xp.concatenate([unique, xp.full((size - unique.shape[0], t), _PAD, dtype=unique.dtype)])
    return unique, inverse


def _merged(inverse, scores, count):
    """Log-space sums of ``scores`` per row index (as Keras merges them; all -inf gives NaN, as there)."""
    xp = _xp(scores)
    top = scores.max()
    summed = xp.bincount(inverse, weights=xp.exp(scores - top), minlength=count).astype(scores.dtype)
    return xp.log(summed) + top


def _beam_search(inputs, lengths, beam_width, top_paths, mask_index):
    """(paths (top_paths, B, T) int32, scores (B, top_paths)): Keras's CTC beam search, sample by sample and step
    by step, each step array operations over the beams."""
    xp = _xp(inputs)
    batch, steps, classes = inputs.shape
    shifted = inputs - inputs.max(axis=-1, keepdims=True)
    logp = (shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True)))[:, :, ::-1]
    # Keras flips the classes so that its ascending sorts break ties as it wants; the blank moves with them.
    blank = classes - mask_index - 1
    starts = min(classes, beam_width)
    letters = xp.arange(classes, dtype="int32")
    letters[blank] = _PAD
    all_paths, all_scores = [], []
    with numpy.errstate(invalid="ignore", divide="ignore"):
        for b in range(batch):
            x = logp[b]
            paths = xp.full((2 * beam_width, steps), _PAD, dtype="int32")
            best = xp.argsort(x[0], kind="stable")[-starts:]
            paths[:starts, 0] = xp.where(best == blank, _PAD, best.astype("int32"))
            scores = xp.full((2 * beam_width,), -numpy.inf, dtype=x.dtype)
            scores[:starts] = x[0, best]
            masked = paths[:, 0] == _PAD
            for t in range(1, int(lengths[b])):
                # every beam extended by every class
                paths = xp.repeat(paths, classes, axis=0)
                scores = xp.repeat(scores, classes) + xp.tile(x[t], paths.shape[0] // classes)
                previous = xp.repeat(masked, classes)
                rows = xp.arange(paths.shape[0])
                tail = (paths == _PAD).astype("int32").argmax(axis=1)
                last = xp.where(tail == 0, _PAD, paths[rows, tail - 1])
                extension = xp.tile(letters, paths.shape[0] // classes)
                masked = extension == _PAD
                extension = xp.where(~previous & (last == extension), _PAD, extension)
                paths[rows, tail] = extension
                # the same paths merged, the best beam_width kept, each as an emitting and a blank track
                unique, inverse = _unique_rows(paths, 2 * classes * beam_width)
                emit = _merged(inverse, xp.where(masked, -numpy.inf, scores), unique.shape[0])
                blanks = _merged(inverse, xp.where(masked, scores, -numpy.inf), unique.shape[0])
                top = xp.argsort(xp.logaddexp(emit, blanks), kind="stable")[-beam_width:]
                paths = xp.concatenate([unique[top], unique[top]])
                scores = xp.concatenate([emit[top], blanks[top]])
                masked = xp.concatenate([xp.zeros(beam_width, dtype=bool), xp.ones(beam_width, dtype=bool)])
            unique, inverse = _unique_rows(paths, 2 * classes * beam_width)
            scores = _merged(inverse, scores, unique.shape[0])
            top = xp.argsort(scores, kind="stable")[-top_paths:][::-1]
            all_paths.append(unique[top])
            all_scores.append(scores[top])
    paths = xp.stack(all_paths)
    paths = xp.where(paths == _PAD, _PAD, classes - paths - 1).astype("int32")
    return [xp.ascontiguousarray(paths.transpose(1, 0, 2)), xp.stack(all_scores)]


OPERATIONS = {cls.__name__: cls for cls in (CTCLoss, CTCDecode)}
