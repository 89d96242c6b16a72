"""The functional API: ``gpu_dl.Model(inputs, outputs)``, a model that is a graph of layer calls.

``Input(...)`` gives symbolic tensors; calling layers on them records each
call as a ``Node`` (``layers/symbolic.py``). ``Functional(inputs, outputs)``
walks back from the output to the inputs, as Keras 3's ``map_graph`` does,
and keeps the calls in between in an order where each comes after those it
reads from. Its layers are in Keras's order (by depth from the output, then
by first visit), which names their weight groups in a saved file and orders
``get_weights()`` and the optimizer's slots as Keras orders them.

``forward`` runs the calls on arrays, passing each tensor's mask of padded
steps along its edges as ``Sequential`` does. ``backward`` runs them in
reverse: where a tensor feeds several calls, the gradients they send back are
summed; a layer called more than once (shared weights) has the state its
backward needs kept per call. The backward is one gradient pass
(``layers/gradients.py``): a variable whose gradient several calls set (a
shared layer, a weight read directly in a traced call beside its layer's
call) gets their sum.

One input or several (``x`` as a list in the order of ``inputs``, or a dict
keyed by the inputs' names); one output or several (``outputs`` as a list, or
a dict with keys of its own, which then key the losses, metrics, targets, logs
and predictions in place of the output layers' names). With several outputs, ``forward``
returns a list of one array per output and ``backward`` takes a list of their
gradients (None for an output without one); compile takes a loss, loss weight
and metrics per output and the loop sums the weighted losses, as Keras does
(``multi_output.py``). A call and ``predict`` give the outputs in the structure
``outputs`` was given in, as Keras does (``_structured``: a dict even of one
output; one output of a list as the array itself on arrays; nested lists as given, such as an RNN's
states nested per cell), and
``compute_output_shape`` gives the shapes in that structure too; the models
holding one read its flat shapes (``_flat_output_shape``). Outputs named
alike (several of one layer, such as an RNN's states) are keyed as Keras keys
them: a list entry per output, a dict entry by the shared name for each of
them, their losses' logs merged under that name and their metrics numbered. A model built
from intermediate tensors (``Model(inputs=encoded, outputs=y)``, ``encoded``
made by layers) starts at new ``Input`` tensors of their shapes, the calls
between them and the outputs made again with the same layers, as Keras's
``clone_graph_nodes`` does (``from_intermediate_inputs``).

A model may be a layer of the graph: ``y = base(x)`` on a symbolic tensor
records one node for the whole inner model (a Sequential, or a functional
model of one or several inputs and outputs, called on a list in the order of
its inputs). Its forward and backward run in that node; called several times
(a siamese network), each call's backward state is kept apart as a shared
layer's is, and its weights get the sum of the calls' gradients. The
activity penalties of its layers' calls count in the loss (``nested.py``).
"""
from __future__ import annotations

import inspect
from collections import Counter

import numpy

from .. import backend
from ..backend.nvtx import nvtx_range
from ..backend.user_warnings import warn
from ..layers import gradients as gradient_pass, layer_losses, masks as mask_rules
from ..layers.base import unique_name
from ..layers.operations import Operation
from ..layers.symbolic import KerasTensor, any_symbolic, flatten_structure, flatten_tensors, map_structure, \
    pack_like
from . import data_checks as checks
from . import composite, nested
from .model import Model, checked_training
from .summary import _format_shape, print_summary, trainable_text


def _warn_mask_dropped(layer):
    if not getattr(layer, "_warned_mask_dropped", False):
        layer._warned_mask_dropped = True
        warn(f"Layer '{layer.name}' ({type(layer).__name__}) does not support masking: the mask of padded "
             "steps reaching it is dropped, as Keras drops it.")


def _node_of(tensor):
    layer, index, _ = tensor._keras_history
    return layer._inbound_nodes[index]


def _call_names_mask(layer):
    """Whether a layer's ``call`` names a ``mask`` parameter, which Keras fills with the masks reaching it."""
    try:
        return "mask" in inspect.signature(type(layer).call).parameters
    except (TypeError, ValueError):
        return False


def _describe(tensor):
    layer, index, position = tensor._keras_history
    return f"'{tensor.name}' ({layer.name}[{index}][{position}], {type(layer).__name__})"


def map_graph(inputs, outputs, tensors_of=None):
    """Keras 3's ``map_graph``: the calls between ``inputs`` and ``outputs`` and the layers making them.

    Returns ``(nodes, layers, depths)``: the nodes in an order where each follows the nodes it reads from
    (depth-first from the outputs), the layers by decreasing depth and then by first visit, as Keras orders
    them, and each node's depth (its distance from the outputs). A cycle, a tensor the inputs cannot reach,
    two layers of one name are ValueErrors; an input the outputs do not use is kept. ``tensors_of(node)``: the
    tensors a call reads (its ``input_tensors`` where not given).
    """
    if tensors_of is None:
        def tensors_of(node):
            return node.input_tensors
    finished, in_progress = set(), set()
    order, first_visit = [], {}
    input_set = set(inputs)
    for output in outputs:
        # Depth-first, with an explicit stack: a deep graph must not hit Python's recursion limit.
        stack = [(output, None)]
        while stack:
            tensor, pending = stack[-1]
            node = _node_of(tensor)
            if pending is None:
                if node in finished:
                    stack.pop()
                    continue
                if node in in_progress:
                    raise ValueError(f"Tensor {_describe(tensor)} is part of a cycle: the graph must run from the "
                                     "inputs to the output without loops.")
                if node.is_input and tensor not in input_set:
                    raise ValueError(f"Graph disconnected: the output needs the input {_describe(tensor)}, which is "
                                     f"not among the model's inputs ({', '.join(t.name for t in inputs)}). Pass it "
                                     "in `inputs`.")
                first_visit.setdefault(node.layer, len(first_visit))
                in_progress.add(node)
                pending = list(reversed(tensors_of(node)))
                stack[-1] = (tensor, pending)
            if pending:
                stack.append((pending.pop(), None))
                continue
            stack.pop()
            in_progress.discard(node)
            finished.add(node)
            order.append(node)
    in_graph = set(order)
    depths, layer_depths = {}, {}
    for node in reversed(order):
        depth = max(depths.setdefault(node, 0), layer_depths.get(node.layer, 0))
        layer_depths[node.layer] = depth
        depths[node] = depth
        for parent in map(_node_of, tensors_of(node)):
            if parent in in_graph:
                depths[parent] = max(depth + 1, depths.get(parent, 0))
    layers = sorted(layer_depths, key=lambda layer: (-layer_depths[layer], first_visit[layer]))
    names = Counter(layer.name for layer in layers)
    for name, count in names.items():
        if count != 1:
            # Keras's words, and why it happens: as in Keras, a name given explicitly does not advance the counter
            # of automatic names, so Dense(name="dense") and a later Dense() (or `a + b` and a layer named "add")
            # collide; Keras refuses such a model too.
            raise ValueError(f'The name "{name}" is used {count} times in the model. All operation names should '
                             "be unique. Automatic names ('dense', 'dense_1', 'add', ...) count up per kind of "
                             "layer or operation, whatever names were given explicitly: give one of them another "
                             "`name`.")
    # An input the outputs do not use is kept, as Keras keeps it (a loss or metric may read it): its InputLayer is
    # at depth 0, ahead of the other layers there, and the model still takes (and checks) its data.
    unused = [node for node in map(_node_of, inputs) if node.is_input and node not in in_graph]
    for node in unused:
        depths[node] = layer_depths[node.layer] = 0
        first_visit[node.layer] = -1
    layers = sorted(layer_depths, key=lambda layer: (-layer_depths[layer], first_visit[layer]))
    return unused + order, layers, depths


def _adjusted_rank(array, tensor):
    """Keras's ``_adjust_input_rank``: data one axis short of an input whose last size is 1 gets that axis
    (``(batch,)`` for ``Input(shape=(1,))``), and data with one axis of size 1 more loses it."""
    rank, expected = getattr(array, "ndim", None), len(tensor.shape)
    if rank is None or rank == expected:
        return array
    if rank == expected - 1 and tensor.shape[-1] == 1:
        return array[..., None]
    if rank == expected + 1 and array.shape[-1] == 1:
        return array[..., 0]
    return array


def _restructured(value, mapping):
    if isinstance(value, dict):
        return {k: _restructured(v, mapping) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_restructured(v, mapping) for v in value)
    return mapping.get(value, value) if isinstance(value, KerasTensor) else value


def from_intermediate_inputs(inputs, outputs):
    """Keras 3's ``clone_graph_nodes``: for a model whose ``inputs`` include tensors made by layers, a new ``Input``
    (named ``<tensor name>CLONE``, of its shape and dtype) for each of those, and the calls between them and
    ``outputs`` made again on the new tensors with the same layers (so the weights are shared). Returns the new
    ``(inputs, outputs)`` in the structures given; ``Input`` tensors among ``inputs`` stay as they are."""
    from ..layers.core import Input
    flat_inputs, flat_outputs = _check_structure(inputs, "inputs"), _check_structure(outputs, "outputs")
    mapping = {}
    for t in flat_inputs:
        if not _node_of(t).is_input:
            mapping[t] = Input(batch_shape=t.shape, dtype=t.dtype, name=f"{t.name}CLONE")
    if not mapping:
        return inputs, outputs
    stops = set(flat_inputs)
    order, finished = [], set()
    for output in flat_outputs:
        # Depth-first from each output to the inputs, with an explicit stack (a deep graph must not recurse).
        stack = [(output, False)]
        while stack:
            tensor, expanded = stack.pop()
            if tensor in stops:
                continue
            node = _node_of(tensor)
            if node in finished:
                continue
            if node.is_input:
                raise ValueError(f"Graph disconnected: the output needs the input {_describe(tensor)}, which is not "
                                 "among the model's inputs. Pass it in `inputs`.")
            if expanded:
                finished.add(node)
                order.append(node)
                continue
            stack.append((tensor, True))
            stack.extend((t, False) for t in reversed(node.input_tensors))
    for node in order:
        layer = node.layer
        if isinstance(layer, Operation):
            # made again from its config, as clone_model makes it: an operation holds no weights
            args, kwargs = layer.keras_call([mapping.get(t, t) for t in node.input_tensors])
            result = type(layer).from_config(layer.get_config()).apply(*args, **kwargs)
        else:
            args, kwargs = layer.keras_call_arguments(node) if hasattr(layer, "keras_call_arguments") \
                else (node.args, node.kwargs)
            result = layer(*[_restructured(a, mapping) for a in args],
                           **{k: _restructured(v, mapping) for k, v in kwargs.items()})
        results = result if isinstance(result, (list, tuple)) else [result]
        mapping.update(zip(node.outputs, results))
    return _restructured(inputs, mapping), _restructured(outputs, mapping)


def _keyed_outputs(outputs):
    """Whether ``outputs`` is a dict of one tensor per key: its keys then name the outputs (losses, metrics and
    targets are keyed by them); a dict nesting several tensors under a key has them named by their layers."""
    return isinstance(outputs, dict) and not any(isinstance(v, (list, tuple, dict)) for v in outputs.values())


def _check_structure(value, what):
    """The flat list of tensors of ``inputs``/``outputs`` (a tensor, a list or tuple, or a dict), checked."""
    if isinstance(value, dict):
        # Keras's order: the values by sorted key (tree.flatten), whatever order the dict was given in.
        if not all(isinstance(k, str) for k in value):
            raise ValueError(f"`{what}`: the keys of a dict must be strings, got {list(value)!r:.200}.")
        flat = flatten_structure(value)      # its values may nest lists and dicts, as Keras's do
    elif isinstance(value, (list, tuple)):
        # nested lists too, as Keras takes them (an RNN's states per cell: [output, [h1, c1], [h2, c2]])
        flat = flatten_structure(value)
    else:
        flat = [value]
    if not flat:
        raise ValueError(f"`{what}` argument cannot be empty. Received: {what}={value!r}")
    for t in flat:
        if not isinstance(t, KerasTensor):
            raise ValueError(f"All `{what}` values must be KerasTensors (from keras.Input, or the output of a layer "
                             f"called on one). Received: {what}={value!r:.200} including invalid value {t!r:.100} "
                             f"of type {type(t).__name__}.")
        if t._keras_history is None:
            raise ValueError(f"`{what}`: the tensor {t!r} was not made by keras.Input or by a layer call.")
    return flat


class Functional(Model):
    """``Model(inputs, outputs, name=None, trainable=True)``: see the module docstring."""

    def __init__(self, inputs, outputs, name=None, trainable=True, *, added_losses=(), traced=False):
        super().__init__(name=name or unique_name("functional"), trainable=True)
        inputs, outputs = from_intermediate_inputs(inputs, outputs)
        flat_inputs = _check_structure(inputs, "inputs")
        flat_outputs = _check_structure(outputs, "outputs")
        # Keras names each output after the layer that makes it (its `output_names`): losses, metrics, targets and
        # logs are keyed so, except where the outputs are a dict, whose own keys (in sorted order, as Keras
        # flattens it) key them whatever the output layers are named.
        self._output_layer_names = [t._keras_history[0].name for t in flat_outputs]
        output_names = self._output_layer_names
        if traced:      # the graph of a traced call (composite.py): its outputs are named by its structure
            output_names = self._output_layer_names = sorted(outputs) if _keyed_outputs(outputs) else \
                [f"{n}_{i}" for i, n in enumerate(output_names)]
        if _keyed_outputs(outputs):
            output_names = sorted(outputs)

        if len(set(flat_inputs)) != len(flat_inputs):
            raise ValueError(f"`inputs` lists a tensor more than once: {[t.name for t in flat_inputs]}.")
        if isinstance(inputs, dict):
            for key, t in inputs.items():
                if key != t.name:
                    warn(f"When providing `inputs` as a dict, all keys in the dict must match the names of "
                         f"the corresponding tensors. Received key '{key}' mapping to value {t} which has "
                         f"name '{t.name}'. Change the tensor name to '{key}' (via "
                         f"`Input(..., name='{key}')`)")
        # The graph traced from a composite call (``traced``) computes the losses its add_loss calls made of symbolic
        # tensors too: (layer, tensor) pairs, reached from the inputs as the outputs are (composite.py).
        added_losses = list(added_losses)
        if added_losses:
            _check_structure([t for _, t in added_losses], "add_loss")
        nodes, layers, depths = map_graph(flat_inputs, flat_outputs + [t for _, t in added_losses])
        nested.check_tree(self, layers)
        for layer in layers:
            if nested.held_model(layer) is not None:
                nested.note_holder(nested.held_model(layer), self)
        self._inputs_struct = inputs
        self._outputs_struct = outputs
        self._inputs = flat_inputs
        self._outputs = flat_outputs
        self._output = flat_outputs[0]
        self._output_set = set(flat_outputs)
        self._added_losses = added_losses
        self._kept_values = self._output_set | {t for _, t in added_losses}
        self._output_names = output_names
        self._nodes = nodes
        self._node_set = set(nodes)
        self._depths = depths
        self._layers = layers
        # Keras's graph also has the operations making the masks some layers' calls read (a NotEqual after an
        # Embedding, NotEqual and Any after a Masking, read by a pooling or recurrent layer): their edges can make
        # a layer deeper and so move it in Keras's order, which orders the weights and a saved file's layers.
        # gpu_dl runs its own graph; only the order of its layers follows Keras's.
        in_graph = set(layers)
        self._layers = [layer for layer in self._summary_graph()[0] if layer in in_graph]
        self._run_nodes = [n for n in nodes if not n.is_input]
        self._output_node = _node_of(self._output)
        calls = {}
        for node in self._run_nodes:
            calls[node.layer] = calls.get(node.layer, 0) + 1
        self._shared = {layer for layer, count in calls.items() if count > 1}
        self._find_kept_state()
        consumers = {}
        for i, node in enumerate(self._run_nodes):
            for t in node.input_tensors:
                consumers.setdefault(t, []).append(i)
        self._last_use = {t: max(uses) for t, uses in consumers.items()}
        self._consumers = consumers
        # A call needs its input gradient when any of its inputs comes from another call (not from an Input).
        self._needs_input_gradient = {n: any(not _node_of(t).is_input for t in n.input_tensors)
                                      for n in self._run_nodes}
        self._node_states = {}
        self._activity = []
        self._nested_activity = []
        self._output_meta = {}
        self._loss_nodes = set()
        self._added_values = []
        self.built = True
        if not trainable:
            self.trainable = False

    def _find_kept_state(self):
        # The calls that keep their own backward state: a layer called twice, or one in two places of the tree
        # of models (inside an inner model and also here, or in two inner models).
        self._kept_state = nested.shared_calls([node.layer for node in self._run_nodes])

    def _forget_shapes(self):
        # An inner Sequential's layers changed (nested.structure_changed): which calls share layers may too.
        self._find_kept_state()

    # ------------------------------------------------------------------ graph
    @property
    def layers(self):
        """The model's layers, in Keras's order; the arithmetic operations between them are not among them, as
        in Keras (``_operations`` lists both)."""
        return [layer for layer in self._layers if not isinstance(layer, Operation)]

    @property
    def _operations(self):
        return list(self._layers)

    @property
    def inputs(self):
        """The symbolic input tensors, as a flat list."""
        return list(self._inputs)

    @property
    def outputs(self):
        return list(self._outputs)

    @property
    def input(self):
        """The ``inputs`` given to the constructor, in their structure."""
        return self._inputs_struct

    @property
    def output(self):
        return self._outputs_struct

    @property
    def input_names(self):
        return [t.name for t in self._inputs]

    @property
    def output_names(self):
        return list(self._output_layer_names)

    @property
    def _output_keys(self):
        return list(self._output_names)

    @property
    def _multi(self):
        return len(self._outputs) > 1

    @property
    def takes_input_list(self):
        """Called as a layer of another model, a model of several inputs takes a list of one tensor per input."""
        return len(self._inputs) > 1

    @property
    def _input_count(self):
        return len(self._inputs)

    @property
    def _output_count(self):
        return len(self._outputs)

    def get_layer(self, name=None, index=None):
        layers = self.layers
        if index is not None:
            if name is not None:
                raise ValueError("Provide only a layer name or a layer index, not both.")
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only has "
                                 f"{len(layers)} layers.")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No layer named {name!r} in '{self.name}'; its layers are {[l.name for l in layers]}.")

    def _node_position(self, node):
        """The node's index among its layer's calls that are part of this model (how Keras numbers them in a
        saved config)."""
        return [n for n in node.layer._inbound_nodes if n in self._node_set].index(node)

    # ------------------------------------------------------------------- shapes
    @property
    def input_spec(self):
        specs = [(None,) + tuple(t.shape[1:]) for t in self._inputs]
        return specs[0] if len(specs) == 1 else specs

    @property
    def input_shape(self):
        shapes = [t.shape for t in self._inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        return [t.shape for t in self._outputs] if self._multi else self._output.shape

    def _symbolic_dtype(self):
        dtype = self._output.dtype      # float16 where its output layer computes in float16
        return dtype if numpy.dtype(dtype).kind == "f" else backend.floatx()

    @property
    def dtype(self):
        dtype = self._output.dtype
        # An output in float16 comes from layers computing in float16 under a mixed policy: their weights, and
        # the model's data, stay float32.
        return dtype if numpy.dtype(dtype).kind == "f" and dtype != "float16" else backend.floatx()

    def _shape_list(self, input_shape, name="input_shape"):
        if len(self._inputs) == 1:
            if isinstance(input_shape, list) and len(input_shape) == 1 and isinstance(input_shape[0], (list, tuple)):
                input_shape = input_shape[0]
            return [tuple(input_shape)]
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != len(self._inputs) or \
                not all(isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(f"Model '{self.name}' has {len(self._inputs)} inputs ({', '.join(self.input_names)}); "
                             f"`{name}` must be a list of {len(self._inputs)} shapes, got {input_shape!r:.200}.")
        return [tuple(s) for s in input_shape]

    def _propagate(self, shapes, check=False):
        """The output shape for input shapes ``shapes`` (one per input), layer by layer; with ``check`` each
        built layer first checks the shape reaching it."""
        known = dict(zip(self._inputs, shapes))
        for node in self._run_nodes:
            layer = node.layer
            arg = node.args[0]
            shape = [known[t] for t in arg] if isinstance(arg, list) else known[arg]
            if check and layer.built:
                layer.check_input_shape(shape)
            if getattr(node, "call_leaves", None) is not None:     # a composite call of several arguments
                outs = composite.node_output_shapes(layer, node, [known[t] for t in node.call_leaves])
            elif hasattr(layer, "node_output_shapes"):     # outputs that depend on the call's options
                outs = layer.node_output_shapes(shape, node.kwargs)
            else:
                out = layer._flat_output_shape(shape)
                outs = out if isinstance(out, list) else [out]
            for t, s in zip(node.outputs, outs):
                known[t] = tuple(s)
        return [known[t] for t in self._outputs] if self._multi else known[self._output]

    def _flat_output_shape(self, input_shape):
        """The output shape, or a list of one per output (``compute_output_shape`` gives them in the structure
        of ``outputs``)."""
        return self._propagate(self._shape_list(input_shape))

    def _check_input_shape(self, shape, name="x"):
        shapes = self._shape_list(shape, name)
        for i, (got, t) in enumerate(zip(shapes, self._inputs)):
            label = name if len(self._inputs) == 1 else f"{name}[{i}] (input '{t.name}')"
            spec = (None,) + tuple(t.shape[1:])
            # As Keras's input spec: a size is checked where both are known, so a model built for (None, 5, 4)
            # takes a less specific (None, None, 4) (its layers then see the sizes given) and refuses (None, 6, 4).
            if len(got) != len(spec) or any(None not in (s, d) and s != d for s, d in zip(spec[1:], got[1:])):
                raise ValueError(f"Model '{self.name}' expects {label} of shape {spec} (batch first), got "
                                 f"{tuple(got)}.")
        try:
            self._propagate([(None,) + tuple(s[1:]) for s in shapes], check=True)
        except ValueError as e:
            raise ValueError(f"Model '{self.name}' expects `{name}` of shape(s) {self.input_spec} (batch first; other "
                             f"sizes only where its layers take them), got "
                             f"{shapes[0] if len(shapes) == 1 else shapes}: {e}") from None

    def build(self, input_shape=None):
        """A functional model is built when it is made (its layers were built by the calls that made it)."""
        self.built = True

    # --------------------------------------------------------------- the data
    def _host_features(self, x, name):
        """``x`` as host arrays: one array for a model of one input, a tuple of one per input otherwise, each of
        its input's dtype. Several inputs come as a list or tuple in the order of ``inputs``, or a dict keyed by
        the inputs' names (other keys are ignored, as Keras ignores them)."""
        n = len(self._inputs)
        names = self.input_names
        if isinstance(x, dict):
            missing = [k for k in names if k not in x]
            if missing:
                raise ValueError(f"Model '{self.name}' takes the inputs {names}; the dict `{name}` has no "
                                 f"{', '.join(repr(k) for k in missing)} (its keys: {sorted(map(str, x))}).")
            items = [(x[k], f"{name}[{k!r}]") for k in names]
        elif n == 1:
            if isinstance(x, (list, tuple)) and len(x) == 1 and hasattr(x[0], "shape"):
                x = x[0]
            items = [(x, name)]
        elif isinstance(x, (list, tuple)) and not hasattr(x, "shape"):
            if len(x) != n:
                raise ValueError(f"Model '{self.name}' has {n} inputs ({', '.join(names)}); `{name}` must hold {n} "
                                 f"arrays, got a list of {len(x)}.")
            items = [(a, f"{name}[{i}]") for i, a in enumerate(x)]
        else:
            what = f"an array of shape {tuple(x.shape)}" if hasattr(x, "shape") else f"a {type(x).__name__}"
            raise ValueError(f"Model '{self.name}' has {n} inputs ({', '.join(names)}); pass `{name}` as a list of "
                             f"{n} arrays or a dict keyed by the input names, got {what}.")
        if any_symbolic(*(a for a, _ in items)):
            raise TypeError(f"Model '{self.name}': `{name}` holds symbolic tensors; give arrays (to use the model as "
                            "a layer of another functional model, call it on the tensors: y = model(x)).")
        arrays = [_adjusted_rank(checks.features(a, label, t.dtype), t) for (a, label), t in zip(items, self._inputs)]
        if n == 1:
            return arrays[0]
        checks.same_length({label: a for (_, label), a in zip(items, arrays)})
        return tuple(arrays)

    def _device_inputs(self, x):
        if isinstance(x, dict):
            x = [x[k] for k in self.input_names]
        if len(self._inputs) == 1:
            arrays = [x[0] if isinstance(x, (list, tuple)) and len(x) == 1 else x]
        else:
            if not isinstance(x, (list, tuple)) or len(x) != len(self._inputs):
                raise ValueError(f"Model '{self.name}' has {len(self._inputs)} inputs ({', '.join(self.input_names)}); "
                                 f"give a list of {len(self._inputs)} arrays or a dict keyed by their names.")
            arrays = list(x)
        return [backend.to_device(_adjusted_rank(a, t)) for a, t in zip(arrays, self._inputs)]

    # --------------------------------------------------------- forward/backward
    def _input_calls(self):
        """Each call on an Input, or on a list holding Inputs (a model of several inputs among the layers), takes
        those inputs' arrays as they are (see ``Model._input_calls``)."""
        position = {t: i for i, t in enumerate(self._inputs)}
        found = []
        for node in self._run_nodes:
            arg = node.args[0]
            for j, t in enumerate(arg if isinstance(arg, list) else [arg]):
                if t in position:
                    found.append((position[t], node.layer, j, node.kwargs))
        return found

    @layer_losses.top_level
    def forward(self, x, training=False, mask=None):
        """The output for ``x`` (an array, or a list/tuple of one per input); ``output_mask`` is then the mask of
        padded steps that reached the output, or None. With ``training=None`` a call made with
        ``training=...`` when the graph was built keeps it, as in Keras. ``mask`` is the mask of the input's
        padded steps (a list of one per input, or None), given when the model is a layer of another."""
        arrays = self._device_inputs(x)
        values = dict(zip(self._inputs, arrays))
        masks = dict.fromkeys(self._inputs)
        if mask is not None:
            masks.update(zip(self._inputs, mask if isinstance(mask, (list, tuple)) else [mask]))
        self._node_states = {}
        self._activity = []
        self._nested_activity = []
        self._output_meta = {}
        self._loss_nodes = set()
        for i, node in enumerate(self._run_nodes):
            layer = node.layer
            arg = node.args[0]
            if isinstance(arg, list):
                x_in = [values[t] for t in arg]
                mask = [mask_rules.edge_mask(node, t, masks.get) for t in arg]
                mask = None if all(m is None for m in mask) else mask
            else:
                x_in, mask = values[arg], mask_rules.edge_mask(node, arg, masks.get)
            given = node.kwargs.get("mask")
            if given is not None:       # a mask the call was given (a tensor of the graph), not the edge's
                mask = [None if m is None else values[m] for m in given] if isinstance(given, list) else values[given]
            call_mask = mask
            if given is None and node.kwargs.get("initial_state") is not None:
                # Keras fills a call's `mask` from its input's only when the input is the call's one tensor
                # argument: a recurrent layer given initial_state tensors runs over every step, padded or not,
                # while its output still gets the input's mask (compute_mask below).
                call_mask = None
            kwargs = {}
            for key, value in node.kwargs.items():
                if key == "initial_state":       # as the call was given them (nested per cell for a stack)
                    kwargs[key] = map_structure(values.__getitem__, value)
                elif key not in ("training", "mask"):
                    # the attention layers' call options (use_causal_mask, ...) and tensors (attention_mask)
                    kwargs[key] = values[value] if isinstance(value, KerasTensor) else value
            node_training = training if training is not None else node.kwargs.get("training")
            recorded = layer_losses.recorded_count()
            with nvtx_range(f"{layer.name}.forward"):
                if getattr(node, "call_leaves", None) is not None:      # a composite call of several arguments
                    y = composite.node_call(layer, node, values, masks, node_training)
                else:
                    y = layer(x_in, training=node_training, mask=call_mask, **kwargs)
            if training and layer_losses.recorded_count() > recorded:
                # Its call added losses: its backward runs even when no gradient reaches its outputs.
                self._loss_nodes.add(node)
            y = nested.flat_outputs(y)
            if mask is not None and not (layer.supports_masking or layer.takes_mask or layer.drops_mask):
                _warn_mask_dropped(layer)
            out_masks = mask_rules.per_output(layer, mask_rules.output_mask(layer, x_in, mask), len(node.outputs))
            ys = y if len(node.outputs) > 1 else [y]
            for t, value, m in zip(node.outputs, ys, out_masks):
                values[t], masks[t] = value, m
                if training and (len(node.outputs) > 1 or node in self._loss_nodes):
                    self._output_meta[t] = (value.shape, value.dtype)
            if layer in self._kept_state:
                self._node_states[node] = nested.call_state(layer)
            if isinstance(layer, Model):
                # Its layers' activity penalties, for the loss; its own backward adds their gradients.
                self._nested_activity.extend(layer._activity_outputs())
            elif composite.active_graph(layer) is not None:     # a composite layer's sublayers, as a model's
                self._nested_activity.extend(composite.active_graph(layer)._activity_outputs())
            if not isinstance(layer, Model) and layer.activity_regularizer is not None and \
                    layer._activity_output is not None:
                self._activity.append((node, layer, layer._activity_output))
            for t in node.input_tensors:      # free what no later call reads
                if self._last_use.get(t) == i and t not in self._kept_values:
                    values.pop(t, None)
        self._added_values = [values[t] for _, t in self._added_losses]
        for (layer, _), value in zip(self._added_losses, self._added_values):
            layer_losses.record(layer, value, "traced")
        if self._multi:
            self.output_mask = [masks[t] for t in self._outputs]
            return [values[t] for t in self._outputs]
        self.output_mask = masks[self._output]
        return values[self._output]

    def symbolic_compute_mask(self, x, mask, outputs):
        """The masks reaching the outputs of the model's call on symbolic ``x`` reached by ``mask`` (a list of one
        per input, or None), when it is a layer of another model: what its layers pass on or compute."""
        given = mask if isinstance(mask, (list, tuple)) else [mask]
        known = dict(zip(self._inputs, given))
        for node in self._run_nodes:
            known.update(zip(node.outputs, mask_rules.node_output_masks(node, known.get)))
        return [mask_rules.spec_of(known.get(t)) for t in self._outputs]

    def _activity_outputs(self):
        return [(layer, out) for _, layer, out in self._activity] + self._nested_activity

    def backward(self, dy, from_logits=False, input_gradient=True):
        """Back-propagate ``dy`` from the output (with ``from_logits``, the gradient of the output layer's logits);
        for several outputs ``dy`` is a list of one gradient per output, None for an output that sends none.

        Returns the gradient of the input (a list of one per input for several); with ``input_gradient=False``
        (or when the model that holds this one cleared ``input_gradient_wanted``) the calls reading only from
        inputs may skip it, and it may be None.
        """
        from ..layers.bidirectional import Bidirectional
        from ..layers.sequence_layer import SequenceLayer
        input_gradient = input_gradient and self.input_gradient_wanted
        if self._multi:
            if not isinstance(dy, (list, tuple)) or len(dy) != len(self._outputs):
                raise ValueError(f"Model '{self.name}' has {len(self._outputs)} outputs: backward takes a list of "
                                 f"{len(self._outputs)} gradients (None for an output without one).")
            grads = {}
            for t, g in zip(self._outputs, dy):
                if g is not None:       # a tensor listed twice among the outputs (as Keras takes it) gets both
                    grads[t] = g if t not in grads else grads[t] + g
        else:
            grads = {self._output: dy} if dy is not None else {}
        for (_, t), value in zip(self._added_losses, self.__dict__.get("_added_values", ())):
            # The model's total loss is the sum of the added losses' values and the rest: d total / d loss = 1.
            seed = gradient_pass.scaled(backend.array_module(value).ones(value.shape, dtype=value.dtype))
            grads[t] = seed if t not in grads else grads[t] + seed
        activity = {node: out for node, _, out in self._activity}
        for node in reversed(self._run_nodes):
            layer = node.layer
            outs = [grads.pop(t, None) for t in node.outputs]
            if all(g is None for g in outs):
                if node not in self._loss_nodes:
                    continue
                xp = backend.xp()
                outs = [xp.zeros(*self._output_meta[t]) for t in node.outputs]
            if node in self._node_states:
                nested.restore_call_state(layer, self._node_states[node])
            if node in activity:
                out = activity[node]
                extra = gradient_pass.scaled(layer.activity_regularizer.gradient(out) / out.dtype.type(out.shape[0]))
                outs[0] = extra if outs[0] is None else outs[0] + extra
            if len(outs) > 1:
                if not isinstance(layer, (SequenceLayer, Bidirectional)):   # these take None for an unused output
                    xp = backend.array_module(next(g for g in outs if g is not None))
                    outs = [g if g is not None else xp.zeros(*self._output_meta[t])
                            for g, t in zip(outs, node.outputs)]
                gradient = outs
            else:
                gradient = outs[0]
            layer.input_gradient_wanted = input_gradient or self._needs_input_gradient[node]
            try:
                with nvtx_range(f"{layer.name}.backward"):
                    if from_logits and not self._multi and node is self._output_node:
                        dx = layer.backward(gradient, through_activation=False)
                    else:
                        dx = layer.backward(gradient)
            finally:
                layer.input_gradient_wanted = True
            arg = node.args[0]
            leaves = getattr(node, "call_leaves", None)
            if leaves is not None:          # a composite call of several arguments: a gradient per tensor
                pairs = list(zip(leaves, dx if isinstance(dx, (list, tuple)) else [dx]))
            else:
                pairs = list(zip(arg, dx)) if isinstance(arg, list) else [(arg, dx)]
            states = node.kwargs.get("initial_state")
            if states is not None:
                states = flatten_structure(states)      # the layer's gradients are flat, in that order
                pairs += list(zip(states, layer.initial_state_gradients or [None] * len(states)))
            for t, g in pairs:
                if g is not None:
                    grads[t] = g if t not in grads else grads[t] + g
        found = [grads.get(t) for t in self._inputs]
        return found[0] if len(found) == 1 else found

    def __call__(self, x, training=None, mask=None):
        """The model's output for one batch ``x`` (an array, or one per input), as a device array. On symbolic
        tensors (one, or a list of one per input), the model is one layer of the functional graph being made:
        it returns the symbolic output(s)."""
        training = checked_training(self, training)
        keys = None
        if isinstance(x, dict) and any_symbolic(*x.values()):
            keys, x = self._listed_inputs(x)
        if any_symbolic(x, mask) or \
                (isinstance(x, (list, tuple)) and any(isinstance(a, (list, tuple)) and any_symbolic(a) for a in x)):
            if isinstance(x, (list, tuple)) and len(x) == 1 and len(self._inputs) == 1:
                x = x[0]
            out = self.symbolic_call(x, training=training, mask=mask)
            if keys is not None:
                self._inbound_nodes[-1].keras_keys = keys
            return self._structured(out if isinstance(out, list) else [out], symbolic=True)
        out = self.forward(x, training=training, mask=mask)
        return self._structured(out if self._multi else [out])

    def _listed_inputs(self, x):
        """``(keys, tensors)``: a dict of symbolic tensors as the list of one per input, and the keys it was taken
        by. A model made with a dict takes its keys (its inputs are in sorted-key order, Keras's); one made with
        a list takes its inputs' names, as Keras does. The call is recorded with the keys, as Keras does."""
        keys = sorted(self._inputs_struct) if isinstance(self._inputs_struct, dict) else self.input_names
        missing = [k for k in keys if k not in x]
        if missing:
            raise ValueError(f"Model '{self.name}' was called on a dict of symbolic tensors without "
                             f"{', '.join(repr(k) for k in missing)}: it takes the keys {sorted(keys)}, got "
                             f"{sorted(map(str, x))}.")
        return keys, [x[k] for k in keys]

    def _structured(self, flat, symbolic=False):
        """The outputs in the structure ``outputs`` was given in, as Keras 3 gives them: a dict always (even of one
        output), its keys in the order given on tensors and in sorted order on arrays; a list or tuple on tensors,
        and on arrays for several outputs (Keras gives one output of a list as the array itself)."""
        struct = self._outputs_struct
        if isinstance(struct, dict):
            packed = pack_like(struct, flat)        # the outputs are in sorted-key order, Keras's
            return packed if symbolic else {k: packed[k] for k in sorted(struct)}
        if isinstance(struct, (list, tuple)) and (symbolic or len(flat) > 1):
            return pack_like(struct, flat)      # nested as given (an RNN's states per cell)
        return flat[0]

    # ------------------------------------------------------------------ the loss
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                **kwargs):
        """As ``Model.compile``; the loss and metrics may also be given per output, as Keras takes them for a
        functional model: a list of one per output, or a dict keyed by the output layers' names (by the keys of a dict
        of outputs where the model was made with one). With several
        outputs, ``loss_weights`` weighs each output's loss in the total (see ``multi_output``)."""
        if not self._multi:
            name = self._output_keys[0]

            def one(value, what):
                if isinstance(value, dict):
                    if set(value) != {name}:
                        raise ValueError(f"`{what}` is given per output for {sorted(value)}; model '{self.name}' "
                                         f"has the one output '{name}'.")
                    return value[name]
                return value
            loss, metrics = one(loss, "loss"), one(metrics, "metrics")
            weighted_metrics = one(weighted_metrics, "weighted_metrics")
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=loss_weights,
                        weighted_metrics=weighted_metrics, **kwargs)

    def _output_layer(self):
        return self._output_node.layer

    def _output_layers(self):
        return [_node_of(t).layer for t in self._outputs]

    def _dict_output_keys(self):
        return list(self._outputs_struct) if isinstance(self._outputs_struct, dict) else None

    def _last_is_softmax(self):
        # The fused softmax + cross-entropy reads the output layer's logits and sends their gradient back
        # through that call alone: only when that call is the layer's only one and the output feeds nothing else.
        node = self._output_node
        if node.is_input or node.layer in self._kept_state or len(node.outputs) != 1 or \
                self._output in self._consumers:
            return False
        return super()._last_is_softmax()

    # ------------------------------------------------------------------ summary
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn,
                      expand_nested=expand_nested, show_trainable=show_trainable, layer_range=layer_range)

    def _keras_mask_tensors(self, node):
        """The masks Keras's graph has ``node``'s layer read: where its call names a ``mask`` and its one tensor
        argument (the first) carries masks, Keras passes them in as a keyword argument, which puts the operations
        that made them (``not_equal`` after an ``Embedding(mask_zero=True)``, ``not_equal`` and ``any`` after a
        ``Masking``) in its graph. gpu_dl carries masks beside its graph; those it recorded as the same operations
        on the symbolic tensors are these. Returns the call's input tensors with them, as Keras orders them, or
        None where Keras adds none."""
        if node.is_input or node.kwargs.get("mask") is not None or not _call_names_mask(node.layer):
            return None
        arguments = [a for a in list(node.args) + list(node.kwargs.values()) if flatten_tensors(a)]
        if len(arguments) != 1 or not node.args or arguments[0] is not node.args[0]:
            return None
        masks = [t._mask for t in flatten_tensors(node.args[0])]
        masks = [m for m in masks if isinstance(m, KerasTensor) and hasattr(m, "_keras_history")
                 and not isinstance(m._keras_history.operation, mask_rules.TensorMask)]
        if not masks:
            return None
        kwargs = {**node.kwargs, "mask": masks}
        return flatten_tensors(node.args) + flatten_tensors([kwargs[k] for k in sorted(kwargs)])

    def _summary_graph(self):
        """``(operations, nodes, depths, tensors_of)`` of the graph Keras's summary shows: gpu_dl's, with the
        operations that make the masks its layers read (``_keras_mask_tensors``) and the edges they add."""
        read = {n: self._keras_mask_tensors(n) for n in self._nodes}
        read = {n: tensors for n, tensors in read.items() if tensors is not None}
        if not read:
            return self._layers, self._nodes, self._depths, lambda node: node.input_tensors

        def tensors_of(node):
            return read.get(node, node.input_tensors)
        try:
            nodes, layers, depths = map_graph(self._inputs, self._outputs + [t for _, t in self._added_losses],
                                              tensors_of)
        except ValueError:
            # a mask made before the model's inputs (a model of intermediate tensors): not an operation of its
            # graph; the summary shows the graph gpu_dl runs
            return self._layers, self._nodes, self._depths, lambda node: node.input_tensors
        return layers, nodes, depths, tensors_of

    def summary_members(self):
        """What the summary lists, in its order (for ``layer_range``): the layers and operations of the graph, and
        the operations that make the masks its layers read, as Keras's graph has them."""
        return list(self._summary_graph()[0])

    def summary_rows(self):
        """Per layer: (label, output shape text, parameter count text, trainable text, connections or None).

        Connections are Keras's ``layer[node][tensor]`` of each call's inputs; None for every row when the graph
        is a plain chain (one call per layer, one input per call), where Keras leaves that column out. The
        operations that make the masks the layers read are rows too, as in Keras (``_summary_graph``)."""
        operations, nodes, depths, tensors_of = self._summary_graph()
        node_set = set(nodes)
        chain = all(len(tensors_of(n)) <= 1 for n in nodes) and not self._shared and \
            all(len([n for n in nodes if depths[n] == d]) == 1 for d in set(depths.values()))
        rows = []
        for layer in operations:
            calls = [n for n in layer._inbound_nodes if n in node_set]
            outputs = calls[-1].outputs
            shapes = [_format_shape(t.shape) for t in outputs]
            shape_text = shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"
            params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
            connections = None
            if not chain:
                connections = [f"{t._keras_history.operation.name}[{t._keras_history.node_index}]"
                               f"[{t._keras_history.tensor_index}]" for n in calls for t in tensors_of(n)] or ["-"]
            trainable = trainable_text(layer)
            rows.append((f"{layer.name} ({type(layer).__name__})", shape_text, params, trainable, connections))
        return rows

    # -------------------------------------------------------------- serialising
    def get_config(self):
        """The model as Keras 3's ``Functional`` config (``name``, ``trainable``, ``layers`` with their
        ``inbound_nodes``, ``input_layers``, ``output_layers``)."""
        from .functional_config import functional_config
        return functional_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .functional_config import functional_from_config
        return functional_from_config(config, "model config", custom_objects)
