"""``gpu_dl.Function(inputs, outputs, name=None)``: Keras 3's ``keras.Function``, a graph of symbolic tensors run on
arrays.

A ``Function`` captures the calls (layers and ``gpu_dl.ops`` operations) between ``inputs`` and ``outputs``, each a
symbolic tensor or a nested structure of them (lists, tuples, dicts), and runs them again on arrays (NumPy, or CuPy
on a GPU): ``fn(values)`` takes the values in the structure of ``inputs`` and gives the results in the structure of
``outputs``. Unlike a functional ``Model`` it has no training API; the layers in it keep their weights.

The graph runs on ``Functional``'s machinery (``functional.py``): the function holds a functional model of the
inputs the outputs use, whose calls run in its ``forward``; called on symbolic tensors, that model is one call of
the graph being made, as Keras records a ``Function`` as one operation. As Keras's, a function may start at
tensors made by layers (the calls before them are not part of it), may take inputs its outputs do not use, and may
give one tensor as several outputs; an output that needs a tensor not among ``inputs`` is refused with Keras's
words (``Output with path `...` is not connected to `inputs```).
"""
from __future__ import annotations

from ..layers.base import unique_name
from ..layers.symbolic import KerasTensor, any_symbolic, flatten_structure, map_structure, pack_like
from .functional import Functional, _check_structure, _node_of


def _paths(structure, prefix=()):
    """The path of each leaf of ``structure`` as Keras's ``tree.flatten_with_path`` gives them: dict keys in sorted
    order and list positions."""
    if isinstance(structure, dict):
        return [p for k in sorted(structure) for p in _paths(structure[k], prefix + (k,))]
    if isinstance(structure, (list, tuple)):
        return [p for i, item in enumerate(structure) for p in _paths(item, prefix + (i,))]
    return [prefix]


def _used_inputs(inputs, outputs, outputs_struct):
    """The tensors of ``inputs`` the ``outputs`` are computed from (in the order of ``inputs``), walking back from
    each output and stopping at the inputs; a ValueError in Keras's words for an output that needs another input."""
    stops = set(inputs)
    used, seen = set(), set()
    for output, path in zip(outputs, _paths(outputs_struct)):
        stack = [output]
        while stack:
            tensor = stack.pop()
            if tensor in stops:
                used.add(tensor)
                continue
            if tensor in seen:
                continue
            seen.add(tensor)
            node = _node_of(tensor)
            if node.is_input:
                raise ValueError(f"Output with path `{'.'.join(str(p) for p in path)}` is not connected to `inputs`: "
                                 f"it needs the input '{tensor.name}', which is not among them.")
            stack.extend(node.input_tensors)
    return [t for t in inputs if t in used]


def _same_structure(value, reference):
    """Whether ``value`` nests lists/tuples and dicts as ``reference`` does (same lengths and keys)."""
    if isinstance(reference, dict):
        return isinstance(value, dict) and set(value) == set(reference) and \
            all(_same_structure(value[k], reference[k]) for k in reference)
    if isinstance(reference, (list, tuple)):
        return isinstance(value, (list, tuple)) and len(value) == len(reference) and \
            all(_same_structure(v, r) for v, r in zip(value, reference))
    return not isinstance(value, (list, tuple, dict))


class Function:
    """``Function(inputs, outputs, name=None)``: see the module docstring."""

    def __init__(self, inputs, outputs, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Function: `name` must be a string or None, got {name!r:.100}.")
        for value, what in ((inputs, "inputs"), (outputs, "outputs")):
            if not flatten_structure(value) or (isinstance(value, (list, tuple, dict)) and not value):
                raise ValueError(f"`{what}` argument cannot be empty. Received:\ninputs={inputs!r:.200}\n"
                                 f"outputs={outputs!r:.200}")
        self.name = name or unique_name("function")
        self._inputs_struct = map_structure(lambda t: t, inputs)
        self._outputs_struct = map_structure(lambda t: t, outputs)
        self._inputs = _check_structure(inputs, "inputs")
        self._outputs = _check_structure(outputs, "outputs")
        used = _used_inputs(self._inputs, self._outputs, outputs)
        # The graph's model computes each distinct output once; a tensor given as several outputs is read from it.
        self._distinct_outputs = list(dict.fromkeys(self._outputs))
        self._used_positions = [self._inputs.index(t) for t in used]
        self._graph = Functional(used, self._distinct_outputs, name=self.name)

    # ------------------------------------------------------------------ the graph
    @property
    def inputs(self):
        """The symbolic inputs, as a flat list."""
        return list(self._inputs)

    @property
    def outputs(self):
        """The symbolic outputs, as a flat list (a tensor given as several outputs appears at each place)."""
        return list(self._outputs)

    @property
    def operations(self):
        """The layers and operations of the graph, the input layers first, by decreasing depth from the outputs, as
        Keras orders them."""
        return self._graph._operations

    def __repr__(self):
        return f"<Function name={self.name!r}, inputs={len(self._inputs)}, outputs={len(self._outputs)}>"

    # ------------------------------------------------------------------ calls
    def _check_inputs(self, values):
        if not _same_structure(values, self._inputs_struct):
            raise ValueError(f"Function was called with an invalid input structure. Expected input structure: "
                             f"{self._inputs_struct!r:.300}\nReceived input structure: {values!r:.300}")
        flat = flatten_structure(values)
        for value, ref in zip(flat, self._inputs):
            shape = getattr(value, "shape", None)
            if shape is None:
                raise TypeError(f"Function '{self.name}': input '{ref.name}' must be an array or a symbolic tensor, "
                                f"got {type(value).__name__}.")
            if len(shape) != len(ref.shape) or any(d is not None and r is not None and d != r
                                                   for d, r in zip(shape, ref.shape)):
                raise ValueError(f"Function was passed incompatible inputs. For input '{ref.name}', expected shape "
                                 f"{ref.shape}, but received instead a tensor with shape {tuple(shape)}.")
        return [flat[i] for i in self._used_positions]

    def _packed(self, distinct):
        found = dict(zip(self._distinct_outputs, distinct))
        return pack_like(self._outputs_struct, [found[t] for t in self._outputs])

    def __call__(self, inputs):
        """The outputs for ``inputs`` (arrays in the structure of the function's inputs), in the structure of its
        outputs. On symbolic tensors the function is one call of the graph being made: it gives symbolic tensors."""
        used = self._check_inputs(inputs)
        if any_symbolic(*used):
            out = self._graph(used if len(used) > 1 else used[0])
        else:
            # training=None: each call keeps the `training` it was recorded with (inference otherwise), as in Keras
            out = self._graph.forward(used, training=None)
        return self._packed(out if isinstance(out, list) else [out])

    call = __call__

    def compute_output_spec(self, inputs):
        """Symbolic tensors of the outputs' shapes and dtypes for ``inputs`` (tensors, or anything with ``shape``,
        in the structure of the function's inputs)."""
        used = self._check_inputs(inputs)
        shapes = self._graph._propagate([tuple(t.shape) for t in used])
        shapes = shapes if len(self._distinct_outputs) > 1 else [shapes]
        return self._packed([KerasTensor(s, dtype=t.dtype) for s, t in zip(shapes, self._distinct_outputs)])

    def compute_output_shape(self, input_shape):
        """The outputs' shapes for ``input_shape`` (a shape per input, in the structure of the function's inputs)."""
        specs = pack_like(self._inputs_struct, [KerasTensor(s, dtype=t.dtype) for s, t in zip(
            _shape_leaves(input_shape), self._inputs)])
        return map_structure(lambda t: t.shape, self.compute_output_spec(specs))


def _shape_leaves(structure):
    """The shapes (tuples or lists of ints and None) in a structure of shapes, in flattening order."""
    if isinstance(structure, (list, tuple)) and all(d is None or isinstance(d, int) for d in structure):
        return [tuple(structure)]
    if isinstance(structure, dict):
        return [s for k in sorted(structure) for s in _shape_leaves(structure[k])]
    if isinstance(structure, (list, tuple)):
        return [s for item in structure for s in _shape_leaves(item)]
    raise ValueError(f"compute_output_shape: expected shapes (tuples of ints and None), got {structure!r:.100}.")
