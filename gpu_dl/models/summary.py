"""``model.summary()``: Keras 3's table of layers, output shapes and parameter counts.

A model among the layers is one row, ``name (Sequential)`` or ``name
(Functional)``, with its output shape and all its parameters; with
``expand_nested=True`` its layers follow it, each label led by ``└ `` indented
three spaces per level, as Keras prints them (in a table with a *Connected to*
column, theirs reads ``-``: their calls are not the outer model's).
"""
from __future__ import annotations

import sys

import numpy

from .. import backend
from ..layers import build_shapes

_HEAVY = dict(tl="┏", tm="┳", tr="┓", h="━", v="┃", ml="┡", mm="╇", mr="┩")
_LIGHT = dict(v="│", ml="├", mm="┼", mr="┤", h="─", bl="└", bm="┴", br="┘")
_ASCII = dict(tl="+", tm="+", tr="+", h="-", v="|", ml="+", mm="+", mr="+", bl="+", bm="+", br="+")


def readable_size(n_bytes):
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024


def _encodable(text):
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
        return True
    except (UnicodeEncodeError, LookupError):
        return False


def _format_shape(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def params_text(layer):
    """The Param # cell of ``layer``: its count, or "0 (unbuilt)" before it is built; a layer Keras builds when it
    is made (Dropout, ReLU, pooling, ...) shows its count (0) even before its first call, as Keras shows it."""
    if layer.built or build_shapes.built_at_init(layer):
        return f"{layer.count_params():,}"
    return "0 (unbuilt)"


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
                     "Y" if layer.trainable else "N", None))
    return rows


def _expanded_rows(model, level=0):
    """The rows of ``model``'s layers, each model among them followed by the rows of its own layers (without the
    arithmetic operations between them, which Keras lists for the outer model only)."""
    from .nested import is_model, members
    rows = []
    layer_ids = {id(layer) for layer in model.layers}
    for layer, row in zip(members(model), summary_rows(model)):
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


def print_summary(model, line_length=None, print_fn=None, expand_nested=False, show_trainable=False):
    print_fn = print_fn or print
    fancy = _encodable("┏━┃│└")
    heavy = _HEAVY if fancy else _ASCII
    light = _LIGHT if fancy else _ASCII
    found = _expanded_rows(model) if expand_nested else summary_rows(model)
    connected = any(r[4] is not None for r in found)
    headers = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if connected else []) + \
        (["Trainable"] if show_trainable else [])
    # Each cell is a list of lines: a layer called on several tensors lists one connection per line.
    rows = []
    for r in found:
        cells_of_row = [[r[0]], [r[1]], [r[2]]]
        if connected:
            links = r[4] or ["-"]
            cells_of_row.append([link + ("," if i < len(links) - 1 else "") for i, link in enumerate(links)])
        if show_trainable:
            cells_of_row.append([r[3]])
        rows.append(cells_of_row)
    widths = [max([len(headers[i])] + [len(line) for r in rows for line in r[i]]) + 2 for i in range(len(headers))]
    if line_length:
        widths[0] = max(widths[0], line_length - sum(widths[1:]) - len(widths) - 1)
    right = {2}

    def cells(values, v):
        parts = []
        for i, text in enumerate(values):
            body = text.rjust(widths[i] - 2) if i in right else text.ljust(widths[i] - 2)
            parts.append(f" {body} ")
        return v + v.join(parts) + v

    def row_lines(row, v):
        height = max(len(cell) for cell in row)
        return [cells([cell[k] if k < len(cell) else "" for cell in row], v) for k in range(height)]

    def rule(left, mid, end, h):
        return left + mid.join(h * w for w in widths) + end

    lines = [f'Model: "{model.name}"', rule(heavy["tl"], heavy["tm"], heavy["tr"], heavy["h"]),
             cells(headers, heavy["v"]), rule(heavy["ml"], heavy["mm"], heavy["mr"], heavy["h"])]
    for i, row in enumerate(rows):
        lines.extend(row_lines(row, light["v"]))
        if i < len(rows) - 1:
            lines.append(rule(light["ml"], light["mm"], light["mr"], light["h"]))
    lines.append(rule(light["bl"], light["bm"], light["br"], light["h"]))
    trainable = model.trainable_weights
    frozen = model.non_trainable_weights
    total = sum(int(numpy.prod(v.shape)) for v in trainable + frozen)
    n_trainable = sum(int(numpy.prod(v.shape)) for v in trainable)
    lines += [
        f" Total params: {total:,} ({readable_size(_total_bytes(trainable + frozen))})",
        f" Trainable params: {n_trainable:,} ({readable_size(_total_bytes(trainable))})",
        f" Non-trainable params: {total - n_trainable:,} ({readable_size(_total_bytes(frozen))})",
    ]
    counted = _optimizer_counts(model)
    if counted is not None:
        lines[-3] = f" Total params: {total + counted[0]:,} " \
                    f"({readable_size(_total_bytes(trainable + frozen) + counted[1])})"
        lines.append(f" Optimizer params: {counted[0]:,} ({readable_size(counted[1])})")
    for line in lines:
        print_fn(line)


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
    values, size = 1, 4
    float_bytes = numpy.dtype(backend.floatx()).itemsize
    if optimizer._lr_function is None:
        values, size = values + 1, size + float_bytes
    slots = optimizer.variables
    values += sum(int(numpy.prod(a.shape)) for a in slots)
    size += sum(int(numpy.prod(a.shape)) * numpy.dtype(a.dtype).itemsize for a in slots)
    extra = len(optimizer._extra_state())
    return values + extra, size + extra * (numpy.dtype(optimizer._built[0].value.dtype).itemsize)
