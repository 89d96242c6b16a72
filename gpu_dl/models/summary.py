"""``model.summary()``: Keras 3's table of layers, output shapes and parameter counts.

A model among the layers is one row, ``name (Sequential)`` or ``name
(Functional)``, with its output shape and all its parameters; with
``expand_nested=True`` its layers follow it, each label led by ``└ `` indented
three spaces per level, as Keras prints them (in a table with a *Connected to*
column, theirs reads ``-``: their calls are not the outer model's).

The text is the one Keras prints without a colour terminal (to ``print_fn``, or
to a stdout that is not a terminal): Keras lays its table out with ``rich``,
and this module follows the same rules without it: ``positions`` cut
``line_length`` (default 88, or 108 with a *Connected to* column, 12 more with
a *Trainable* column, at most the terminal's width less 4) into columns, which
shrink evenly to make room for their borders; each cell's text breaks between
words, a word too long for its column cut short with "…"; the header sits at
the bottom of its row, each row's cells at the top; every line is cut at the
console's width (COLUMNS, else the terminal's, else 80).

Keras's functional graph holds the operations that make a mask a layer's call
reads (its ``mask`` argument: the recurrent layers, ...), and its summary lists
them: ``not_equal (NotEqual)`` after an ``Embedding(mask_zero=True)``,
``not_equal (NotEqual)`` and ``any (Any)`` after a ``Masking``, ``logical_or
(LogicalOr)`` after an element-wise merge of such masks, with the edges they
add (*Connected to*). gpu_dl carries masks beside its graph but records those
operations on its symbolic tensors too, and its summary lists them as Keras
does. A mask gpu_dl's layers compute on arrays only (Concatenate's) has no
such operations: where Keras records some for it, Keras's summary has rows
gpu_dl's lacks.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import sys

import numpy

from .. import backend
from ..layers import build_shapes
from ..utils import io_utils

def readable_size(n_bytes):
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n_bytes / 1024 < 1:
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.2f} PB"


def _unicode_output():
    # Keras's console draws its box with ASCII characters where stdout's encoding is not a UTF one.
    return (getattr(sys.stdout, "encoding", None) or "utf-8").lower().startswith("utf")


def _format_shape(shape):
    # As Keras's summary writes a shape: a one-axis shape without Python's trailing comma, "(None)"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def params_text(layer):
    """The Param # cell of ``layer``: its count, or "0 (unbuilt)" before it is built; a layer Keras builds when it
    is made (Dropout, ReLU, pooling, ...) shows its count (0) even before its first call, as Keras shows it."""
    if layer.built or build_shapes.built_at_init(layer):
        return f"{layer.count_params():,}"
    return "0 (unbuilt)"


def trainable_text(layer):
    """The Trainable cell: Y or N for a layer with weights, "-" for one without, as Keras shows it."""
    return ("Y" if layer.trainable else "N") if layer.weights else "-"


def summary_rows(model):
    """(layer label, output shape text, parameter count text, trainable text, connections) per layer;
    connections (a list of ``layer[node][tensor]`` texts) only for a functional model that is not a plain chain,
    else None."""
    if model._composite:
        return model._subclassed_summary_rows()
    if hasattr(model, "summary_rows"):
        return model.summary_rows()
    rows = []
    # A Sequential built from data (or inside a traced call, or with an Input of a batch size): Keras's graph has
    # that batch size
    shape = build_shapes.with_batch(model.input_spec, model.__dict__.get("_build_batch"))
    for layer in model.layers:
        if shape is not None:
            shape = layer._flat_output_shape(shape)
            shape = [tuple(s) for s in shape] if isinstance(shape, list) else tuple(shape)
        if shape is None:
            shape_text = "?"
        elif isinstance(shape, list):       # a last layer of several outputs, as Keras prints them
            shape_text = "[" + ", ".join(_format_shape(s) for s in shape) + "]"
        else:
            shape_text = _format_shape(shape)
        rows.append((f"{layer.name} ({type(layer).__name__})", shape_text, params_text(layer),
                     trainable_text(layer), None))
    return rows


def summary_members(model):
    """The layers (and operations) the rows of ``summary_rows`` describe, in their order."""
    from .nested import members
    own = getattr(model, "summary_members", None)
    return own() if own is not None and not model._composite else members(model)


def _expanded_rows(model, level=0, bounds=None):
    """The rows of ``model``'s layers (those in ``bounds``, at the top level), each model among them followed by
    the rows of its own layers (without the arithmetic operations between them, which Keras lists for the outer
    model only)."""
    from .nested import is_model
    rows = []
    layer_ids = {id(layer) for layer in model.layers}
    pairs = list(zip(summary_members(model), summary_rows(model)))
    if bounds is not None:
        pairs = pairs[bounds[0]:bounds[1]]
    for layer, row in pairs:
        if level:
            if id(layer) not in layer_ids:
                continue
            row = ("   " * level + "└ " + row[0],) + tuple(row[1:4]) + (None,)
        rows.append(row)
        if is_model(layer) and layer.layers:
            rows.extend(_expanded_rows(layer, level + 1))
    return rows


def _total_bytes(variables):
    return sum(int(numpy.prod(v.shape)) * numpy.dtype(v.dtype).itemsize for v in variables)


def _terminal_columns():
    # Keras sizes the table to the terminal as shutil sees it (COLUMNS, else stdout's terminal, else 80).
    return shutil.get_terminal_size().columns


def _console_width():
    """The width Keras's console crops its lines to: that of the first of stdin, stdout and stderr that is a
    terminal, COLUMNS overriding it, else 80 (rich's rule)."""
    width = None
    for descriptor in (0, 1, 2):
        try:
            width = os.get_terminal_size(descriptor).columns
        except (AttributeError, ValueError, OSError):
            continue
        break
    columns = os.environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        width = int(columns)
    return width or 80


def _ratio_reduce(total, ratios, maximums, values):
    """``values`` less ``total`` shared out by ``ratios`` (each share at most its maximum, rounded half to even):
    how Keras's table takes the room for its borders from its columns."""
    ratios = [ratio if most else 0 for ratio, most in zip(ratios, maximums)]
    total_ratio = sum(ratios)
    if not total_ratio:
        return list(values)
    result = []
    for ratio, most, value in zip(ratios, maximums, values):
        if ratio and total_ratio > 0:
            taken = min(most, round(ratio * total / total_ratio))
            result.append(value - taken)
            total -= taken
            total_ratio -= ratio
        else:
            result.append(value)
    return result


def _ratio_distribute(total, ratios):
    """``total`` shared out by ``ratios``, each share rounded up: how Keras's table gives its columns the room
    that ``positions`` ending before 1.0 leave over."""
    result = []
    total_ratio = sum(ratios)
    for ratio in ratios:
        given = math.ceil(ratio * total / total_ratio) if total_ratio > 0 else total
        result.append(given)
        total_ratio -= ratio
        total -= given
    return result


def _column_widths(line_length, positions):
    """Each column's width, its one-space margins included and its borders not, as Keras's table lays it out:
    ``positions`` cut ``line_length`` into columns, which then shrink evenly to leave room for the borders."""
    asked, current = [], 0
    for position in positions:
        width = int(position * line_length) - current
        if width < 4:
            raise ValueError(f"summary: line_length={line_length} with positions={list(positions)} leaves a "
                             f"column {width} characters wide, fewer than 4 (insufficient console width to print "
                             "summary); give a larger line_length")
        asked.append(width)
        current += width
    room = line_length - len(asked) - 1
    widths = [min(width + 2, room) for width in asked]
    if sum(widths) > room:
        widths = _ratio_reduce(sum(widths) - room, [1] * len(widths), widths, widths)
        widths = [min(width + 2, cut) for width, cut in zip(asked, widths)]
    elif sum(widths) < room:
        widths = [width + extra for width, extra in zip(widths, _ratio_distribute(room - sum(widths), widths))]
    return widths


def _break_points(text, width, fold):
    """Where a line of ``text`` breaks to fit ``width``: between words, a word longer than the width folded
    (``fold``) or left whole to be cut short."""
    breaks, offset = [], 0
    for match in re.finditer(r"\s*\S+\s*", text):
        start, word = match.start(), match.group(0)
        length = len(word.rstrip())
        if width - offset >= length:
            offset += len(word)
        elif length > width:
            if fold:
                pieces = [word[i:i + width] for i in range(0, len(word), width)]
                for k, piece in enumerate(pieces):
                    if start:
                        breaks.append(start)
                    if k == len(pieces) - 1:
                        offset = len(piece)
                    else:
                        start += len(piece)
            else:
                if start:
                    breaks.append(start)
                offset = len(word)
        elif offset and start:
            breaks.append(start)
            offset = len(word)
    return breaks


def _wrap(text, width, justify=None, fold=False):
    """``text`` as the lines of a cell ``width`` wide: broken between words, a line still too long cut short
    with "…" (or folded, ``fold``), each line padded as ``justify`` says ("left", "right", "center"; None leaves
    it as it is)."""
    lines = []
    for paragraph in text.split("\n"):
        cuts = [0] + _break_points(paragraph, width, fold) + [len(paragraph)]
        for a, b in zip(cuts, cuts[1:]):
            line = paragraph[a:b]
            if len(line) > width:
                trailing = len(line) - len(line.rstrip())
                line = line[:len(line) - min(trailing, len(line) - width)]
            if justify in ("right", "center"):
                line = line.rstrip()
            if len(line) > width:
                line = line[:width] if fold else line[:width - 1] + "…"
            if justify == "left":
                line = line.ljust(width)
            elif justify == "right":
                line = line.rjust(width)
            elif justify == "center":
                line = " " * ((width - len(line)) // 2) + line
                line = line.ljust(width)
            lines.append(line)
    return lines


def _table(headers, rows, widths, justify, box):
    """The lines of Keras's table: a heavy header, a light rule between rows, each cell wrapped to its column."""
    def block(cells, header):
        wrapped = [[" " + line + " " for line in _wrap(text, max(width - 2, 1), how)]
                   for text, width, how in zip(cells, widths, justify)]
        height = max(len(lines) for lines in wrapped)
        blank = [" " * width for width in widths]
        # a header's cells sit at the bottom of their row, a row's at the top
        wrapped = [([b] * (height - len(lines)) + lines) if header else (lines + [b] * (height - len(lines)))
                   for lines, b in zip(wrapped, blank)]
        vertical = box["hv"] if header else box["v"]
        return [vertical + vertical.join(cell[k] for cell in wrapped) + vertical for k in range(height)]

    def rule(left, horizontal, cross, right):
        return left + cross.join(horizontal * width for width in widths) + right

    lines = [rule(*box["top"])] + block(headers, True) + [rule(*box["head"])]
    for i, row in enumerate(rows):
        lines += block(row, False)
        if i < len(rows) - 1:
            lines.append(rule(*box["row"]))
    return lines + [rule(*box["bottom"])]


_BOXES = {
    True: dict(top="┏━┳┓", hv="┃", head="┡━╇┩", v="│", row="├─┼┤", bottom="└─┴┘"),
    False: dict(top="+--+", hv="|", head="|-+|", v="|", row="|-+|", bottom="+--+"),
}


def _layer_range_bounds(names, layer_range):
    """[first, last + 1] of the rows ``layer_range`` (two names or regular expressions) picks, as Keras picks
    them."""
    if layer_range is None:
        return 0, len(names)
    if len(layer_range) != 2:
        raise ValueError("summary: layer_range must be a list or tuple of length 2. Received: "
                         f"layer_range = {layer_range} of length {len(layer_range)}")
    if not all(isinstance(name, str) for name in layer_range):
        raise ValueError(f"summary: layer_range should contain string type only. Received: {layer_range}")
    lower = [i for i, name in enumerate(names) if re.match(layer_range[0], name)]
    upper = [i for i, name in enumerate(names) if re.match(layer_range[1], name)]
    if not lower or not upper:
        raise ValueError("summary: passed layer_names do not match the layer names in the model. "
                         f"Received: {layer_range}")
    if min(lower) > max(upper):
        return min(upper), max(lower) + 1
    return min(lower), max(upper) + 1


def print_summary(model, line_length=None, positions=None, print_fn=None, expand_nested=False,
                  show_trainable=False, layer_range=None):
    """Print ``model``'s summary as Keras 3 prints it without a colour terminal, character for character: the
    table sized as Keras sizes it (``line_length``, default 88 columns, or 108 with a *Connected to* column, at
    most the terminal's width less 4; ``positions``, each column's right end as a fraction of the line), each
    line cut at the console's width, the whole text given to ``print_fn`` in one call (else written to stdout,
    or logged where interactive logging is off)."""
    if not print_fn and not io_utils.is_interactive_logging_enabled():
        print_fn = io_utils.print_msg
    found = summary_rows(model)
    bounds = _layer_range_bounds([layer.name for layer in summary_members(model)], layer_range)
    connected = any(r[4] is not None for r in found)
    if expand_nested:
        picked = _expanded_rows(model, bounds=bounds)
    else:
        picked = found[bounds[0]:bounds[1]]
    if connected:
        default_length, positions = 108, positions or [0.3, 0.56, 0.74, 1.0]
        headers = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
    else:
        default_length, positions = 88, positions or [0.45, 0.80, 1.0]
        headers = ["Layer (type)", "Output Shape", "Param #"]
    justify = ["left", "left", "right", "left"][:len(headers)]
    if show_trainable:
        default_length += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        headers.append("Trainable")
        justify.append("center")
    line_length = line_length or min(default_length, _terminal_columns() - 4)
    widths = _column_widths(line_length, positions)
    rows = []
    for r in picked:
        cells = [r[0], r[1], r[2]]
        if connected:
            cells.append(", ".join(r[4] or ["-"]))
        if show_trainable:
            cells.append(r[3])
        rows.append(cells)
    box = _BOXES[_unicode_output()]
    lines = _wrap(f'Model: "{model.name}"', _console_width(), fold=True)
    lines += _table(headers, rows, widths, justify, box)
    trainable = model.trainable_weights
    frozen = model.non_trainable_weights
    n_trainable, n_frozen = _count(trainable), _count(frozen)
    size_trainable, size_frozen = _total_bytes(trainable), _total_bytes(frozen)
    counted = _optimizer_counts(model) or (0, 0)
    totals = [("Total params", n_trainable + n_frozen + counted[0], size_trainable + size_frozen + counted[1]),
              ("Trainable params", n_trainable, size_trainable),
              ("Non-trainable params", n_frozen, size_frozen)]
    if _optimizer_counts(model) is not None:
        totals.append(("Optimizer params",) + tuple(counted))
    for label, count, size in totals:
        lines += _wrap(f" {label}: {count:,} ({readable_size(size)})", _console_width(), fold=True)
    text = "".join(line[:_console_width()] + "\n" for line in lines)
    if print_fn is io_utils.print_msg:
        print_fn(text, line_break=False)
    elif print_fn:
        print_fn(text)
    else:
        sys.stdout.write(text)


def _count(variables):
    return sum(int(numpy.prod(v.shape)) for v in variables)


def _optimizer_counts(model):
    """(values, bytes) of the optimizer's variables as Keras 3 counts them once it is built (its int32
    iteration count, its learning rate where it is a number, the slots, any extra scalar), which its summary
    adds to the total; None before."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(optimizer, "built", False) or not hasattr(optimizer, "_keras_arrays"):
        return None
    if hasattr(optimizer, "optimizers"):
        # A MultiOptimizer: its own iteration and learning rate, then each inner optimizer's variables (an
        # inner optimizer no variable went to still has its iteration and learning rate).
        values, size = 2, 4 + numpy.dtype(backend.floatx()).itemsize
        for inner in optimizer.optimizers:
            counted = _counts(inner) if inner.built else (2, 4 + numpy.dtype(backend.floatx()).itemsize)
            values, size = values + counted[0], size + counted[1]
        return values, size
    return _counts(optimizer)


def _counts(optimizer):
    # its variables: the iteration count, the learning rate where it is a number, the slots
    variables = optimizer.variables
    values = sum(int(numpy.prod(v.shape)) for v in variables)
    size = sum(int(numpy.prod(v.shape)) * numpy.dtype(v.dtype).itemsize for v in variables)
    extra = len(optimizer._extra_state())
    return values + extra, size + extra * (numpy.dtype(optimizer._built[0].value.dtype).itemsize)
