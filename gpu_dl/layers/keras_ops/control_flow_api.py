"""The control flow of Keras's ``keras.ops.core`` (``cond``, ``switch``, ``fori_loop``, ``while_loop``,
``scan``, ``map``, ``associative_scan``, ``vectorized_map``, ``vectorize``, ``custom_gradient``), as
``gpu_dl.ops.<name>``.

The control flow runs Python's control flow on arrays, as Keras's torch backend does. On symbolic tensors
(``keras.Input``, the traced call of a composite layer) a loop whose trip count is known while the model is
made is unrolled into the graph, each step's operations recorded (exact gradients, and a model Keras reads
back): ``fori_loop`` with int bounds, ``scan`` and ``map`` over a leading axis of known size,
``associative_scan`` along an axis of known size, ``vectorized_map`` over a leading axis of known size,
``while_loop`` whose condition gives a Python bool (or a known array), ``cond`` and ``switch`` on a known
predicate or index. A predicate, index or bound that is itself a symbolic tensor has no value until the model
runs: those calls raise a ValueError saying what to write instead (``ops.where`` for a choice per element).
``custom_gradient`` on symbolic tensors records one operation whose backward is the function's ``grad_fn``
(not saved: a Python function is not part of a config); on arrays it gives the value.
"""
from __future__ import annotations

import numbers

import numpy

from ... import backend
from ..symbolic import is_symbolic
from . import custom_gradient_operation as _custom
from .nn_api import _symbolic

__all__ = [
    "cond", "switch", "fori_loop", "while_loop", "scan", "map", "associative_scan", "vectorized_map", "vectorize",
    "custom_gradient",
]


def _flatten(structure):
    if isinstance(structure, dict):
        return [leaf for key in sorted(structure) for leaf in _flatten(structure[key])]
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in _flatten(item)]
    return [structure]


def _pack(structure, leaves):
    """``leaves`` (a flat list) in the nesting of ``structure``."""
    leaves = iter(leaves)

    def pack(s):
        if isinstance(s, dict):
            return {key: pack(s[key]) for key in sorted(s)}
        if isinstance(s, (list, tuple)):
            items = [pack(item) for item in s]
            return type(s)(items) if not hasattr(s, "_fields") else type(s)(*items)
        return next(leaves)
    return pack(structure)


def _nested(structure):
    return isinstance(structure, (list, tuple, dict))


def _known(value, function, argument):
    """A predicate, index or bound as a Python value; a symbolic tensor has none while the model is made."""
    if is_symbolic(value):
        raise ValueError(f"{function}: `{argument}` is a symbolic tensor, whose value is known only when the model "
                         "runs; gpu_dl records control flow whose decisions are known while the model is made "
                         f"(Python numbers and arrays). {_INSTEAD[function]}")
    if hasattr(value, "shape"):
        if int(numpy.prod(value.shape)) != 1:
            raise ValueError(f"{function}: `{argument}` must be a single value, got an array of shape "
                             f"{tuple(value.shape)}.")
        return backend.to_numpy(value).reshape(()).item()
    return value


_INSTEAD = {
    "cond": "Compute both branches and choose per element with ops.where(pred, true_value, false_value).",
    "switch": "Compute the branches and choose per element with ops.where (or a one-hot weighted sum).",
    "fori_loop": "Give the bounds as Python ints (the loop is unrolled into the graph).",
    "while_loop": "Use fori_loop (or scan) with a trip count known while the model is made, and ops.where to "
                  "keep a step's result only while the condition holds.",
}


def cond(pred, true_fn, false_fn):
    """``true_fn()`` if ``pred`` holds, else ``false_fn()``."""
    if not callable(true_fn) or not callable(false_fn):
        raise TypeError("cond: `true_fn` and `false_fn` must be callables taking no arguments.")
    return true_fn() if bool(_known(pred, "cond", "pred")) else false_fn()


def switch(index, branches, *operands):
    """``branches[index](*operands)``, the index clamped to the branches' range."""
    if not isinstance(branches, (list, tuple)) or not branches or not all(callable(b) for b in branches):
        raise TypeError("switch: `branches` must be a non-empty list of callables.")
    value = _known(index, "switch", "index")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"switch: `index` must be an integer, got {value!r:.80}.")
    return branches[min(max(int(value), 0), len(branches) - 1)](*operands)


def fori_loop(lower, upper, body_fun, init_val):
    """``val = body_fun(i, val)`` for i in range(lower, upper)."""
    if not callable(body_fun):
        raise TypeError("fori_loop: `body_fun` must be a callable of (i, val).")
    lower, upper = (_known(v, "fori_loop", name) for v, name in ((lower, "lower"), (upper, "upper")))
    for name, v in (("lower", lower), ("upper", upper)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) and not float(v).is_integer():
            raise TypeError(f"fori_loop: `{name}` must be an integer, got {v!r:.80}.")
    val = init_val
    for i in range(int(lower), int(upper)):
        val = body_fun(i, val)
    return val


def while_loop(cond, body, loop_vars, maximum_iterations=None):
    """``loop_vars = body(*loop_vars)`` while ``cond(*loop_vars)`` holds (and fewer than ``maximum_iterations``
    steps ran); a tuple or list of loop variables is returned as a tuple, a single one as itself."""
    if not callable(cond) or not callable(body):
        raise TypeError("while_loop: `cond` and `body` must be callables of the loop variables.")
    is_tuple = isinstance(loop_vars, (tuple, list))
    loop_vars = tuple(loop_vars) if is_tuple else (loop_vars,)
    loop_vars = _pack(loop_vars, [v if is_symbolic(v) else _ops().convert_to_tensor(v) for v in _flatten(loop_vars)])
    count = 0
    while (maximum_iterations is None or count < maximum_iterations) and \
            bool(_known(cond(*loop_vars), "while_loop", "cond(*loop_vars)")):
        loop_vars = body(*loop_vars)
        loop_vars = tuple(loop_vars) if isinstance(loop_vars, (list, tuple)) else (loop_vars,)
        count += 1
    return loop_vars if is_tuple else loop_vars[0]


def _ops():
    from .. import keras_ops
    return keras_ops


def _leading_size(x, function):
    size = x.shape[0] if x.shape else None
    if size is None:
        raise ValueError(f"{function}: the leading axis of {x!r:.80} has no size known while the model is made "
                         "(the batch axis of a symbolic tensor); gpu_dl unrolls these loops, so they run over an "
                         "axis of known size. Move the axis to scan over to the front with ops.transpose (a "
                         "model's batch axis cannot be scanned).")
    return int(size)


def scan(f, init, xs=None, length=None, reverse=False, unroll=1):
    """``carry, y = f(carry, x)`` over the leading axis of ``xs`` (or ``length`` steps of x None): the last
    carry and the ys stacked."""
    if not callable(f):
        raise TypeError(f"scan: `f` must be a callable, got {f!r:.80}.")
    if not isinstance(unroll, bool) and (not isinstance(unroll, int) or unroll < 1):
        raise ValueError(f"scan: `unroll` must be a positive integer or a bool, got {unroll!r}.")
    if xs is None and length is None:
        raise ValueError("scan: got no `xs` to scan over and no `length`.")
    ops = _ops()
    xs_flat = [] if xs is None else [v if is_symbolic(v) else ops.convert_to_tensor(v) for v in _flatten(xs)]
    if length is not None:
        n = int(length)
    else:
        n = _leading_size(xs_flat[0], "scan")
    for x in xs_flat:
        if _leading_size(x, "scan") != n:
            raise ValueError(f"scan: every array of `xs` must have {n} entries along its leading axis, got shape "
                             f"{tuple(x.shape)}.")
    init_flat = [v if is_symbolic(v) else ops.convert_to_tensor(v) for v in _flatten(init)]
    carry = _pack(init, init_flat) if _nested(init) else init_flat[0]
    ys = []
    for i in (reversed(range(n)) if reverse else range(n)):
        xs_slice = [x[i] for x in xs_flat]
        packed = None if xs is None else (_pack(xs, xs_slice) if _nested(xs) else xs_slice[0])
        carry, y = f(carry, packed)
        ys.append(y if y is not None else [ops.zeros_like(v) for v in init_flat])
    if reverse:
        ys = ys[::-1]
    if not ys:
        raise ValueError("scan: zero steps give no ys to stack.")
    leaves = [_flatten(y) for y in ys]
    stacked = [ops.stack([step[k] for step in leaves]) for k in range(len(leaves[0]))]
    template = ys[0]
    return carry, (_pack(template, stacked) if _nested(template) else stacked[0])


def map(f, xs):
    """``f`` on each entry of the leading axis of ``xs``, the results stacked."""
    def step(_, x):
        return (), f(x)
    return scan(step, (), xs)[1]


def _along(x, axis, start, stop, step=1):
    return x[(slice(None),) * (axis % len(x.shape)) + (slice(start, stop, step),)]


def associative_scan(f, elems, reverse=False, axis=0):
    """The inclusive scan of the associative ``f`` along ``axis`` of ``elems`` (arrays or a nest of them), in
    about 2 log2(n) calls of ``f`` on strided slices (JAX's and Keras's algorithm)."""
    if not callable(f):
        raise TypeError(f"associative_scan: `f` must be a callable, got {f!r:.80}.")
    ops = _ops()
    flat = [v if is_symbolic(v) else ops.convert_to_tensor(v) for v in _flatten(elems)]
    sizes = {None if not x.shape else x.shape[axis] for x in flat}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"associative_scan: every array must have the same, known size along axis {axis}, got "
                         f"shapes {[tuple(x.shape) for x in flat]}.")
    if reverse:
        flat = [ops.flip(x, axis=axis) for x in flat]

    def combine(a, b):
        c = f(_pack(elems, a) if _nested(elems) else a[0], _pack(elems, b) if _nested(elems) else b[0])
        return _flatten(c)

    def interleave(even, odd):
        count = even.shape[axis] + odd.shape[axis]
        order = numpy.empty(count, dtype="int32")
        order[0::2] = numpy.arange(even.shape[axis])
        order[1::2] = even.shape[axis] + numpy.arange(odd.shape[axis])
        return ops.take(ops.concatenate([even, odd], axis=axis), order, axis=axis)

    def scanned(values):
        n = values[0].shape[axis]
        if n < 2:
            return values
        reduced = combine([_along(v, axis, 0, -1, 2) for v in values], [_along(v, axis, 1, None, 2) for v in values])
        odd = scanned(reduced)
        if n % 2 == 0:
            even = combine([_along(v, axis, 0, -1) for v in odd], [_along(v, axis, 2, None, 2) for v in values])
        else:
            even = combine(odd, [_along(v, axis, 2, None, 2) for v in values])
        even = [ops.concatenate([_along(v, axis, 0, 1), e], axis=axis) for v, e in zip(values, even)]
        return [interleave(e, o) for e, o in zip(even, odd)]

    result = scanned(flat)
    if reverse:
        result = [ops.flip(x, axis=axis) for x in result]
    return _pack(elems, result) if _nested(elems) else result[0]


def vectorized_map(function, elements):
    """``function`` on each entry of the leading axis of ``elements``, the results stacked (one call per entry,
    as ``map``)."""
    if not callable(function):
        raise TypeError(f"vectorized_map: `function` must be a callable, got {function!r:.80}.")
    ops = _ops()
    flat = [v if is_symbolic(v) else ops.convert_to_tensor(v) for v in _flatten(elements)]
    n = _leading_size(flat[0], "vectorized_map")
    results = [function(_pack(elements, [x[i] for x in flat]) if _nested(elements) else flat[0][i])
               for i in range(n)]
    leaves = [_flatten(r) for r in results]
    stacked = [ops.stack([step[k] for step in leaves]) for k in range(len(leaves[0]))]
    return _pack(results[0], stacked) if _nested(results[0]) else stacked[0]


def _parse_signature(signature):
    def dims(part):
        part = part.strip()
        groups = []
        for group in part.split("),"):
            group = group.strip().strip("()")
            groups.append(tuple(d.strip() for d in group.split(",") if d.strip()))
        return groups
    try:
        inputs, outputs = signature.split("->")
    except ValueError:
        raise ValueError(f"vectorize: `signature` must look like '(n),(n)->()', got {signature!r}.") from None
    return dims(inputs), dims(outputs)


def vectorize(pyfunc, *, excluded=None, signature=None):
    """``pyfunc`` vectorised as ``numpy.vectorize`` does: called once per position of the broadcast loop
    axes (all axes, or those before each argument's core axes of ``signature``), the results stacked.
    Arguments named in ``excluded`` (positions or keywords) are passed as they are."""
    if not callable(pyfunc):
        raise TypeError(f"vectorize: `pyfunc` must be a callable, got {pyfunc!r:.80}.")
    excluded = set(excluded or ())
    core = _parse_signature(signature) if signature is not None else None

    def vectorized(*args, **kwargs):
        ops = _ops()
        varying = [i for i in range(len(args)) if i not in excluded]
        keys = [k for k in sorted(kwargs) if k not in excluded]
        values = [args[i] for i in varying] + [kwargs[k] for k in keys]
        if _symbolic(*values):
            raise ValueError("vectorize: gpu_dl calls the function once per element, which needs arrays; on "
                             "symbolic tensors write the function with gpu_dl.ops, which apply element-wise "
                             "already.")
        arrays = [ops.convert_to_tensor(v) for v in values]
        in_core = core[0] if core is not None else [()] * len(arrays)
        if len(in_core) != len(arrays):
            raise ValueError(f"vectorize: the signature {signature!r} names {len(in_core)} inputs, got "
                             f"{len(arrays)}.")
        loops = [tuple(a.shape[:a.ndim - len(c)]) for a, c in zip(arrays, in_core)]
        loop_shape = numpy.broadcast_shapes(*loops) if loops else ()
        xp = backend.array_module(*arrays)
        arrays = [xp.broadcast_to(a, loop_shape + tuple(a.shape[a.ndim - len(c):])) for a, c in zip(arrays, in_core)]
        results = []
        for index in numpy.ndindex(*loop_shape):
            given = list(args)
            call_kwargs = dict(kwargs)
            for position, a in zip(varying + keys, arrays):
                if isinstance(position, str):
                    call_kwargs[position] = a[index]
                else:
                    given[position] = a[index]
            results.append(pyfunc(*given, **call_kwargs))
        if not results:
            raise ValueError("vectorize: the loop axes hold no element.")
        leaves = [_flatten(r) for r in results]
        outputs = []
        for k in range(len(leaves[0])):
            stacked = xp.stack([xp.asarray(_array_of(step[k])) for step in leaves])
            outputs.append(stacked.reshape(loop_shape + stacked.shape[1:]))
        return _pack(results[0], outputs) if _nested(results[0]) else outputs[0]
    vectorized.__name__ = getattr(pyfunc, "__name__", "vectorized")
    vectorized.__doc__ = getattr(pyfunc, "__doc__", None)
    return vectorized


def _array_of(value):
    return value if hasattr(value, "shape") else numpy.asarray(value)


def custom_gradient(f):
    """Keras's decorator of a function returning ``(value, grad_fn)``; the decorated function returns the value.
    On symbolic tensors (a functional model, a composite layer's traced call) its call is one operation whose
    backward is ``grad_fn`` (``custom_gradient_operation.CustomGradient``: ``grad_fn(*args, upstream=dy)`` where
    ``grad_fn`` takes ``upstream`` by keyword only, as on Keras's torch backend; else ``grad_fn(dy)``, as on JAX).
    On arrays it gives the value, as Keras's NumPy backend does (gpu_dl differentiates layers' calls there, not
    functions)."""
    if not callable(f):
        raise TypeError(f"custom_gradient: `f` must be a callable, got {f!r:.80}.")

    def wrapper(*args, **kwargs):
        if _symbolic(*args, *kwargs.values()):
            if kwargs:
                raise TypeError("custom_gradient: on symbolic tensors the decorated function takes its tensors "
                                "positionally.")
            return _custom.CustomGradient(f).apply(*args)
        result = f(*args, **kwargs)
        if not isinstance(result, (tuple, list)) or len(result) != 2 or not callable(result[1]):
            raise TypeError("custom_gradient: the decorated function must return (value, grad_fn).")
        return result[0]
    wrapper.__name__ = getattr(f, "__name__", "custom_gradient")
    wrapper.__doc__ = getattr(f, "__doc__", None)
    return wrapper

