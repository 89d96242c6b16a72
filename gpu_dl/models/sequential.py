"""``Sequential``: a plain stack of layers, each feeding the next.

A layer may itself be a model (``Sequential([base, layers.Dense(10)])``): a
Sequential or functional model, run as one layer. As in Keras, the first
layer may be a model of several inputs, and the Sequential then takes them (a
list in the order of that model's inputs, or a dict keyed by their names);
the last may be a model of several outputs, and the Sequential then gives
them, in that model's structure, and trains each with its own loss
(``multi_output.SeveralOutputs``: losses, targets and metrics as lists of one
per output, or as dicts keyed by the output names where the last model gives
a dict; with a list, Keras's logs name each output's loss after the loss).

``add`` refuses what cannot run: a model of several inputs after another
layer or an Input, any layer after a model of several outputs, a model that
holds this one (a cycle), and, once the input shape is known, a built model
(or a layer already in the stack) whose input does not fit what the layers
before it give.

As in Keras, one layer (or model) may be in the stack more than once
(``Sequential([block, mid, block])``): its weights are listed and saved once,
each of its calls keeps its own backward state, and its weights get the sum of
its calls' gradients (the backward is one gradient pass,
``layers/gradients.py``). A layer may also read another's variable (tied
weights): that variable gets both layers' gradients summed. Keras's config of
a Sequential lists each layer once, so the config of one holding a layer twice
cannot be written (see ``keras_config.model_config``).
"""
from __future__ import annotations

from collections import Counter, namedtuple

import numpy

from .. import backend
from ..catalogue import keras_class_name
from ..backend.nvtx import nvtx_range
from ..backend.user_warnings import warn
from ..layers import build_shapes, gradients as gradient_pass, layer_losses, masks
from ..layers.base import Layer, name_scope, rename_count, unique_name
from ..layers.core import InputLayer
from ..layers.input_spec import built_input_shape
from ..layers.symbolic import KerasTensor, any_symbolic, flatten_tensors, is_symbolic
from . import data_checks as checks, nested
from .model import Model, _batchless, _first_batch_shape, activity_of, checked_training
from .summary import print_summary


def _as_shape(shape):
    """A shape as a tuple, or shapes (one per input or output of a model) as a list of tuples."""
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
        return [tuple(s) for s in shape]
    return tuple(shape)


# A layer's call inside the model, as the masks of its outputs are found from it (the fields of a Node).
_Step = namedtuple("_Step", ["layer", "args", "kwargs", "outputs"])


def _warn_mask_dropped(layer):
    if not getattr(layer, "_warned_mask_dropped", False):
        layer._warned_mask_dropped = True
        warn(f"Layer '{layer.name}' ({type(layer).__name__}) does not support masking: the mask of padded "
             "steps reaching it is dropped, as Keras drops it.")


def _check_repeat(model, layer, shape):
    """A ValueError naming both when ``layer``, already in ``model`` and built, cannot take the ``shape`` the layers
    before its next place give."""
    try:
        layer.check_input_shape(shape)
    except ValueError as e:
        raise ValueError(f"Sequential '{model.name}': layer '{layer.name}' is in it twice, and its next place gets "
                         f"shape {tuple(shape)} from the layers before it, which it cannot take: {e}") from None


class Sequential(Model):
    """``Sequential([layers...])`` or ``Sequential()`` followed by ``.add(layer)``."""

    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__(name=name or unique_name("sequential"), trainable=trainable)
        self._layers: list[Layer] = []
        self._input_layer = None
        self.built = False
        # What add() checks and builds against, kept as layers come and go so that adding N layers costs O(N):
        # the layers by identity and by name (the names read again when any layer has been renamed), and the
        # output shape after each layer for the input shape they were computed for (``_stack_shapes_for``).
        self._layer_ids: Counter = Counter()      # how many times each layer (by id) is in the stack
        self._name_counts: Counter = Counter()
        self._names_read_at = rename_count()
        self._stack_shapes: list[tuple] = []
        self._stack_shapes_for = None
        self._models: list[Layer] = []      # the models among the layers (or wrapped by them), whose trees add() checks
        if layers is not None:
            if isinstance(layers, Layer) or not hasattr(layers, "__iter__"):
                raise TypeError(f"Sequential expects a list of layers, got {layers!r}.")
            # Keras builds the model once for the whole list: one graph name drawn, not one per layer.
            self.__dict__["_quiet_graph_names"] = True
            try:
                for layer in layers:
                    self.add(layer)
            finally:
                self.__dict__["_quiet_graph_names"] = False
            self._draw_graph_name()

    def _draw_graph_name(self):
        """Draw a name from the 'functional' counter where Keras would make the functional model its Sequential
        runs through (each build, each add or pop once the input shape is known), so that models made later get
        the names Keras gives them ('functional_1' after one such Sequential)."""
        if self.built and not self.__dict__.get("_quiet_graph_names"):
            unique_name("functional")

    # ------------------------------------------------------------------ layers
    @property
    def layers(self):
        return list(self._layers)

    def add(self, layer):
        if is_symbolic(layer):
            # keras.Input(...) gives the symbolic tensor of an InputLayer: that layer declares the input.
            history = layer._keras_history
            if history is None or not isinstance(history.operation, InputLayer):
                raise TypeError(f"Sequential.add() takes the symbolic tensor of keras.Input(...) as its first entry; "
                                f"{layer!r} is the output of a layer. Build a model of layer outputs with "
                                "keras.Model(inputs, outputs).")
            layer = history.operation
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add() expects a gpu_dl layer, got {layer!r} of type {type(layer).__name__}.")
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError(f"Input '{layer.name}' must come first in Sequential '{self.name}', "
                                 "before any other layer.")
            self._input_layer = layer
            return
        repeated = id(layer) in self._layer_ids     # the same layer again, as Keras allows
        if not repeated and self._layer_names()[layer.name] > 0:
            raise ValueError(f"All layers of Sequential '{self.name}' need unique names; '{layer.name}' is taken.")
        is_model = isinstance(layer, Model)
        nested.check_sequential_place(self, layer)
        inner_model = nested.held_model(layer)        # the layer itself, or the model a TimeDistributed wraps
        if inner_model is not None or self._models:
            # Only the models' trees are walked (and the new layer): the plain layers are known by identity.
            nested.check_tree(self, self._models + [layer], held=self._layer_ids)
        shape_before = self._stack_output_shape() if self.input_spec is not None else None
        built_before = self.built      # else the build below draws the graph's name
        if shape_before is not None and is_model and layer.built:
            # A built layer is checked when data comes (each one names itself then); a model is checked here,
            # where the message can name both models.
            nested.check_fed_shape(self, layer, shape_before)
        elif shape_before is not None and repeated:
            _check_repeat(self, layer, shape_before)
        self._layers.append(layer)
        try:
            if self.built:
                with build_shapes.stand_in_batch(self.__dict__.get("_build_batch")), name_scope(self):
                    layer.ensure_built(shape_before)
            elif self.input_spec is not None:
                # Keras builds a Sequential as soon as its input shape is known.
                self.build()
        except Exception:
            self._layers.pop()
            raise
        self._layer_ids[id(layer)] += 1
        self._name_counts[layer.name] += 1
        self._kept_state = None
        if inner_model is not None:
            self._models.append(layer)
            nested.note_holder(inner_model, self)
        nested.structure_changed(self)
        if self.built:
            self._extend_graph()
            if not built_before:
                return
            self._draw_graph_name()

    def pop(self):
        if not self._layers:
            raise ValueError(f"Sequential '{self.name}' has no layers to pop.")
        names = self._layer_names()      # up to date while the layer is still among them
        spec = self.input_spec if len(self._layers) == 1 and self._input_layer is None else None
        layer = self._layers.pop()
        if spec is not None and not isinstance(spec, list):
            # As in Keras, the input the first layer declared (input_shape=...) or was built for stays the
            # model's once that layer is popped: the next layer added is built for it.
            self._input_layer = InputLayer(shape=spec[1:])
        names[layer.name] -= 1
        self._layer_ids[id(layer)] -= 1
        if not self._layer_ids[id(layer)]:
            del self._layer_ids[id(layer)]
        del self._stack_shapes[len(self._layers):]
        graph = self.__dict__.get("_graph")
        if graph is not None:
            del graph[len(self._layers) + 1:]       # the popped layer keeps its node, as in Keras
        if nested.held_model(layer) is not None:
            self._models.remove(layer)
        self._kept_state = None
        nested.structure_changed(self)
        if self._layers and self.input_spec is not None and not isinstance(self.input_spec, list):
            self._draw_graph_name()
        return layer

    def _forget_shapes(self):
        """An inner model's layers changed: the output shapes kept for the stack may no longer hold, nor which
        layers share a layer with another."""
        self._stack_shapes, self._stack_shapes_for = [], None
        self._kept_state = None
        self.__dict__["_graph"] = None      # made again for the new shapes when next asked for

    def _shared_layers(self):
        """The layers (by position) that share a layer with another in the tree of models (a layer in the stack
        twice, one inside an inner model and also here, or in two inner models): their calls keep their own
        backward state."""
        if not self._models and len(self._layer_ids) == len(self._layers):
            return set()
        if self.__dict__.get("_kept_state") is None:
            shared = nested.shared_calls(self._layers)
            self._kept_state = {i for i, layer in enumerate(self._layers) if layer in shared}
        return self._kept_state

    def _layer_names(self):
        """How many of the layers have each name, read again from the layers if any layer was renamed since."""
        if self._names_read_at != rename_count():
            self._name_counts = Counter(layer.name for layer in self._layers)
            self._names_read_at = rename_count()
        return self._name_counts

    def _stack_output_shape(self):
        """``_flat_output_shape(input_spec)``, from the shapes kept for the layers before the ones added since
        (all of them again when the input shape has changed): each layer's output shape is computed once."""
        spec = self.input_spec
        if spec is None:
            return self._flat_output_shape(spec)        # the error it raises
        if self._stack_shapes_for != spec:
            self._stack_shapes, self._stack_shapes_for = [], spec
        shape = self._stack_shapes[-1] if self._stack_shapes else _as_shape(spec)
        for layer in self._layers[len(self._stack_shapes):]:
            shape = _as_shape(layer._flat_output_shape(shape))
            self._stack_shapes.append(shape)
        return shape

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No layer named {name!r} in '{self.name}'; its layers are {[l.name for l in self._layers]}.")

    # ------------------------------------------------------------------- shapes
    @property
    def input_spec(self):
        """(None, d1, ...) the model takes, once known (declared by Input/input_shape or built); a list of one per
        input when its first layer is a model of several inputs."""
        if self._input_layer is not None:
            return (None,) + self._input_layer.shape
        if self._layers and self._layers[0].declared_input_shape is not None:
            return (None,) + tuple(self._layers[0].declared_input_shape[1:])
        if self._layers and built_input_shape(self._layers[0]) is not None:
            return built_input_shape(self._layers[0])
        return None

    @property
    def input_shape(self):
        return self.input_spec

    @property
    def output_shape(self):
        if self.input_spec is None:
            raise ValueError(f"Sequential '{self.name}' has no input shape yet: give an Input or build it.")
        return self._flat_output_shape(self.input_spec)

    @property
    def dtype(self):
        return self._layers[0].dtype if self._layers else "float32"

    def _symbolic_dtype(self):
        # The dtype of its last layer's outputs (float16 where that layer computes in float16), where it is a
        # float dtype; its first layer's otherwise.
        last = self._layers[-1]._symbolic_dtype() if self._layers else "float32"
        return last if numpy.dtype(last).kind == "f" else self.dtype

    def _flat_output_shape(self, input_shape):
        """The output shape, or a list of one per output of a last layer of several (``compute_output_shape``
        gives them in that layer's structure)."""
        shape = _as_shape(input_shape)
        for layer in self._layers:
            shape = _as_shape(layer._flat_output_shape(shape))
        return shape

    # ---------------------------------------------------------- symbolic graph
    # As Keras 3 does, a Sequential whose input shape is known calls its layers on symbolic tensors, from its Input
    # (or an InputLayer made for the shape): each layer then has the ``input`` and ``output`` of that call, and
    # the model ``inputs`` and ``outputs``, so that ``keras.Model(model.inputs, [l.output for l in model.layers])``
    # extracts features. The model itself still runs its layers in a row; the graph only describes them.
    def _graph_input(self):
        """The symbolic tensor the graph starts at, or None where the input shape is unknown or several."""
        spec = self.input_spec
        if spec is None or isinstance(spec, list):
            return None
        if self._input_layer is not None:
            return self._input_layer.output
        made = self.__dict__.get("_graph_input_layer")
        if made is None or (None,) + made.shape != tuple(spec):
            # Kept out of the sublayers (set through __dict__): the model's layers and weights files do not list it.
            made = self.__dict__["_graph_input_layer"] = InputLayer(
                shape=spec[1:], dtype="string" if self.__dict__.get("_takes_text") else None)
        return made.output

    def input_layer_name(self):
        """The name of the model's InputLayer in its config: its Input's, else that of the one its graph starts
        at, made when the model was built, whose name is drawn from the layer name counters as Keras draws the
        name of the InputLayer its Sequential makes at build ('input_layer_1', ... after other Inputs)."""
        if self._input_layer is not None:
            return self._input_layer.name
        made = self.__dict__.get("_graph_input_layer")
        return made.name if made is not None else "input_layer"

    def _extend_graph(self):
        """Call the layers not yet in the graph on the symbolic output of the ones before them (all of them when
        the input changed). A layer that cannot be called on symbolic tensors leaves the model without a graph;
        ``inputs`` then says why."""
        start = self._graph_input()
        graph = self.__dict__.get("_graph")
        if start is None:
            self.__dict__["_graph"] = None
            return None
        if not graph or graph[0] is not start:
            graph = [start]
        try:
            for layer in self._layers[len(graph) - 1:]:
                graph.append(layer(graph[-1]))
        except Exception as e:      # the graph only describes the model, which runs without it
            self.__dict__["_graph"] = None
            self.__dict__["_graph_error"] = f"layer '{layer.name}' could not be called on symbolic tensors: {e}"
            return None
        self.__dict__["_graph"] = graph
        return graph

    def _symbolic_graph(self, what):
        graph = self.__dict__.get("_graph")
        if graph is None and self.built:
            graph = self._extend_graph()
        if graph is None or len(graph) != len(self._layers) + 1:
            why = self.__dict__.get("_graph_error") if self.built and self.input_spec is not None else None
            raise AttributeError(f"Sequential model '{self.name}' has no defined {what} yet. "
                                 + (f"Its {why}." if why else "It has them once its input shape is known: start it "
                                    "with keras.Input(shape=...), or build() it or call it on data."))
        return graph

    @property
    def inputs(self):
        """The symbolic input of the graph of the layers (a list of one), once the input shape is known."""
        return [self._symbolic_graph("inputs")[0]]

    @property
    def outputs(self):
        """The symbolic output(s) of the graph of the layers, as a flat list, once the input shape is known."""
        return flatten_tensors(self._symbolic_graph("outputs")[-1])

    @property
    def input(self):
        """As a layer's: the input of the model's first call on symbolic tensors. A model never called so gives
        its graph's input (where Keras 3 raises an AttributeError: tf.keras gave this)."""
        if self._inbound_nodes:
            return super().input
        return self._symbolic_graph("input")[0]

    @property
    def output(self):
        """As ``input``: the output of the first call on symbolic tensors, else the graph's output (in the
        structure the last layer gives it)."""
        if self._inbound_nodes:
            return super().output
        return self._symbolic_graph("output")[-1]

    # ----------------------------------------------- several inputs or outputs
    @property
    def _input_count(self):
        first = self._layers[0] if self._layers else None
        return first._input_count if isinstance(first, Model) else 1

    @property
    def _output_count(self):
        last = self._layers[-1] if self._layers else None
        return last._output_count if isinstance(last, Model) else 1

    @property
    def _multi(self):
        return self._output_count > 1

    @property
    def takes_input_list(self):
        """Called as a layer of another model, a Sequential of several inputs takes a list of one tensor each."""
        return self._input_count > 1

    @property
    def output_names(self):
        """The names of the outputs of a last layer of several: in messages, and the keys of dicts of losses and
        targets when that layer gives a dict. A Sequential of one output has none, as in Keras."""
        if not self._multi:
            raise AttributeError(f"Sequential '{self.name}' has one output, which has no name (as in Keras).")
        return self._layers[-1].output_names

    @property
    def _output_keys(self):
        if not self._multi:
            raise AttributeError(f"Sequential '{self.name}' has one output, which has no name (as in Keras).")
        return self._layers[-1]._output_keys

    @property
    def _outputs_keyed(self):
        return self._dict_output_keys() is not None

    def _dict_output_keys(self):
        last = self._layers[-1] if self._layers else None
        return last._dict_output_keys() if isinstance(last, Model) else None

    def _output_layers(self):
        return self._layers[-1:]

    def _listed_inputs(self, x):
        return self._layers[0]._listed_inputs(x)

    def _host_features(self, x, name):
        if self._input_count > 1:
            try:
                return self._layers[0]._host_features(x, name)
            except ValueError as e:
                raise ValueError(f"Sequential '{self.name}' takes the inputs of its first layer: {e}") from None
        if isinstance(x, (list, tuple)) and len(x) == 1 and hasattr(x[0], "shape"):
            x = x[0]        # as Keras takes it: the one input in a list
        if self._input_layer is not None and self._input_layer.dtype == "string":
            return checks.features(x, name, "string")      # text, for a first layer that reads it
        first = self._layers[0] if self._layers else None
        if self._input_layer is None and getattr(first, "reads_text", False) and checks.is_text(x):
            self.__dict__["_takes_text"] = True     # its input, made at build, is then of dtype "string"
            return checks.features(x, name, "string")
        return super()._host_features(x, name)

    def _check_input_shape(self, shape, name="x"):
        if not self._layers:
            raise ValueError(f"Sequential '{self.name}' has no layers: add some before using it.")
        spec = self.input_spec
        several = isinstance(spec, list)        # the first layer takes several inputs and checks their shapes
        if spec is None:
            # a batch of strings, (batch,), is what the text layers take
            if len(shape) < 2 and not (len(shape) == 1 and getattr(self._layers[0], "reads_text", False)):
                raise ValueError(f"`{name}` must have a batch axis and at least one feature axis, "
                                 f"got shape {tuple(shape)}.")
        elif not several and len(shape) != len(spec):
            raise ValueError(
                f"Model '{self.name}' expects `{name}` of shape {spec} (batch first), got {tuple(shape)}"
                f" — the first layer '{self._layers[0].name}' is {'built' if self.built else 'declared'} for {spec}.")
        # As in Keras, the declared shape fixes only what the layers need: a recurrent layer takes any
        # sequence length, a convolution any height and width. Each built layer checks what reaches it, and
        # every layer says what it gives, so a batch no layer can take is refused before any of them runs
        # (or is built for it).
        reaching = _batchless(_as_shape(shape))
        for layer in self._layers:
            try:
                if layer.built:
                    layer.check_input_shape(reaching)
                reaching = layer._flat_output_shape(reaching)
            except ValueError as e:
                expected = f"expects `{name}` of shape {spec} (batch first; other sizes only where its layers take " \
                    "them), got" if spec is not None else f"cannot take `{name}` of shape"
                raise ValueError(f"Model '{self.name}' {expected} {_as_shape(shape)}: {e}") from None
            if isinstance(reaching, list):      # several outputs (return_state): the last layer
                return
            reaching = tuple(reaching)

    def build(self, input_shape=None):
        if input_shape is None:
            input_shape = self.input_spec
            if self._input_layer is not None:      # with the Input's batch size, which Keras's graph has
                input_shape = self._input_layer.declared_input_shape
            if input_shape is None:
                raise ValueError(f"build() of '{self.name}' needs an input_shape, or an Input as the first layer.")
        if not self._layers:
            raise ValueError(f"Sequential '{self.name}' has no layers to build.")
        given = _as_shape(input_shape)
        shape = _batchless(given)
        # Keras records a batch size the build was given (a build from data gets its first batch's): it writes it
        # in the build configs of the model, its input and its layers.
        first = given[0] if isinstance(given, list) else given
        batch = first[0] if first else None
        built = set()
        # Keras builds the layers on an Input of the batch size given: nested models and the layers first called
        # in a composite layer's traced call get it too (the check of the shapes builds a composite layer).
        # in the model's name scope, as Keras builds them: their variables' paths start with its name
        with build_shapes.stand_in_batch(batch), name_scope(self):
            for layer in self._layers:
                if batch is not None and not layer.built:
                    layer.__dict__["_build_batch"] = batch
            self._check_input_shape([(1,) + s[1:] for s in shape] if isinstance(shape, list) else (1,) + shape[1:],
                                    "input_shape")
            for layer in self._layers:
                if id(layer) in built:
                    _check_repeat(self, layer, shape)
                built.add(id(layer))
                layer.ensure_built(shape)
                shape = _as_shape(layer._flat_output_shape(shape))
        self.built = True
        self.__dict__["_build_batch"] = batch
        self._extend_graph()
        self._draw_graph_name()

    def _data_build_shape(self, x_shape, batch_size=None):
        return _first_batch_shape(x_shape, batch_size)

    # --------------------------------------------------------- forward/backward
    def _input_calls(self):
        """The first layer takes the model's input as it is (see ``Model._input_calls``)."""
        return [(0, self._layers[0], 0, {})] if self._layers else []

    @layer_losses.top_level
    def forward(self, x, training=False, mask=None):
        """The output for ``x``; ``output_mask`` is then the mask of padded steps that reached the output
        (from Masking or Embedding(mask_zero=True) through layers that pass masks on), or None. ``mask`` is the
        mask of ``x``'s padded steps, given when the model is a layer of another."""
        kept = self._shared_layers() if training else ()
        left_to_loss = self._activation_left_to_loss()
        self._node_states = {}
        # The activity penalties of each call, read as they are made: a layer in the stack twice has those of both.
        self._call_activity = activity = []
        for i, layer in enumerate(self._layers):
            with nvtx_range(f"{layer.name}.forward"):
                if layer is left_to_loss and i == len(self._layers) - 1:
                    layer.activation_left_to_loss = True
                    try:
                        y = nested.flat_outputs(layer(x, training=training, mask=mask))
                    finally:
                        layer.activation_left_to_loss = False
                else:
                    y = nested.flat_outputs(layer(x, training=training, mask=mask))
                activity.extend(activity_of(layer))
                if i in kept:
                    self._node_states[i] = nested.call_state(layer)
                if mask is not None and not (layer.supports_masking or layer.takes_mask):
                    _warn_mask_dropped(layer)
                mask = masks.output_mask(layer, x, mask)
            x = y
        self.output_mask = mask
        return x

    def _activation_left_to_loss(self):
        """The last layer, where a step of this model (``Model._loss_computes_activation_in``) computes its softmax in
        the fused loss, which gives the model's output (the probabilities) too: its call may then leave the
        softmax out. None where anything else reads that layer's output: the layer in the stack more than once
        (an earlier call's output feeds the next layer) or an activity penalty of its output."""
        if not self.__dict__.get("_loss_computes_activation") or not self._layers:
            return None
        layer = self._layers[-1]
        if not getattr(layer, "leaves_activation_to_loss", False) or layer.activity_regularizer is not None \
                or len(self._layers) - 1 in self._shared_layers() or self._output_layer() is not layer:
            return None
        return layer

    def symbolic_compute_mask(self, x, mask, outputs):
        """The masks reaching the outputs of the model's call on symbolic ``x`` reached by ``mask`` (a model used as
        a layer of another): what its layers pass on or compute, one after the other."""
        for layer in self._layers:
            shape = [t.shape for t in x] if isinstance(x, list) else x.shape
            out = layer._flat_output_shape(shape)
            steps = [KerasTensor(s, dtype=layer.dtype, name=f"{layer.name}_output")
                     for s in (out if isinstance(out, list) else [out])]
            found = masks.node_output_masks(_Step(layer, (x,), {} if mask is None else {"mask": mask}, steps),
                                            lambda tensor: None)
            x, mask = (steps, found) if isinstance(out, list) else (steps[0], found[0])
        return mask

    def __call__(self, x, training=None, mask=None):
        """The model's output for one batch ``x`` (moved to the current device if needed), as a device array.
        On a symbolic tensor, the model is one layer of the functional graph being made: it returns the
        symbolic output. With a first layer of several inputs, ``x`` holds one array or tensor per input, as
        that layer takes them.

        Without ``training``, as in Keras, each layer takes its own default: inference for all but the
        random image layers, which augment unless told ``training=False``."""
        training = checked_training(self, training)
        from .. import backend
        several = self._input_count > 1
        keys = None
        if several and isinstance(x, dict) and any_symbolic(*x.values()):
            keys, x = self._listed_inputs(x)
        elif not several and isinstance(x, (list, tuple)) and len(x) == 1 and hasattr(x[0], "shape"):
            x = x[0]        # as Keras takes it: the one input (an array or a tensor) in a list
        if any_symbolic(x, mask):
            out = self.symbolic_call(x, training=training, mask=mask)
            if keys is not None:
                self._inbound_nodes[-1].keras_keys = keys       # recorded with its keys, as a functional model's
            return self._structured(out if isinstance(out, list) else [out], symbolic=True)
        if not several:     # several: the first layer takes them as they come and moves them to the device
            x = backend.to_device(x)
            if not self.built:
                self.build(tuple(x.shape))       # with its batch size, which Keras records
        out = self.forward(x, training=training, mask=mask)
        return self._structured(out if isinstance(out, list) else [out])

    def _structured(self, flat, symbolic=False):
        """As Keras's Sequential, the outputs of the last layer in its structure: a model made with a dict of
        outputs gives the dict."""
        last = self._layers[-1] if self._layers else None
        if isinstance(last, Model):
            return last._structured(flat, symbolic)
        return super()._structured(flat, symbolic)

    def _activity_outputs(self):
        return list(self.__dict__.get("_call_activity") or ())

    def _no_output_gradient(self, y_pred):
        # Each layer's backward takes the gradient of its output: zeros, so that the losses the layers added send
        # theirs back through the layers before them.
        return backend.array_module(y_pred).zeros_like(y_pred)

    def backward(self, dy, from_logits=False, input_gradient=True):
        """Back-propagate ``dy`` from the output; with ``from_logits`` it is the gradient of the last layer's logits.

        Returns the gradient of the model's input; with ``input_gradient=False`` (a training step, which
        has no use for it), or when the model that holds this one cleared ``input_gradient_wanted``, the first
        layer may skip computing it, and the result may be None.
        """
        input_gradient = input_gradient and self.input_gradient_wanted
        last = len(self._layers) - 1
        states = self.__dict__.get("_node_states") or {}
        # Without the input's gradient, the layers before the first one with trainable weights pass on a gradient
        # nothing reads: their backward is skipped and the first one's input gradient (a product, for a Dense
        # after Flatten) is not computed.
        first = 0 if input_gradient else self._first_trained_layer()
        for i in range(last, first - 1, -1):
            layer = self._layers[i]
            if i in states:
                nested.restore_call_state(layer, states[i])
            if layer.activity_regularizer is not None and layer._activity_output is not None:
                out = layer._activity_output
                dy = dy + gradient_pass.scaled(layer.activity_regularizer.gradient(out) / out.dtype.type(out.shape[0]))
            layer.input_gradient_wanted = input_gradient or i > first
            try:
                with nvtx_range(f"{layer.name}.backward"):
                    if i == last and from_logits:
                        dy = layer.backward(dy, through_activation=False)
                    else:
                        dy = layer.backward(dy)
            finally:
                layer.input_gradient_wanted = True
        return dy if first == 0 else None

    def _first_trained_layer(self):
        """The position of the first layer with trainable weights (the last where none has any): what a backward
        pass without the input's gradient must reach."""
        for i, layer in enumerate(self._layers):
            if layer.trainable_weights:
                return i
        return max(len(self._layers) - 1, 0)

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn,
                      expand_nested=expand_nested, show_trainable=show_trainable, layer_range=layer_range)

    # -------------------------------------------------------------- serialising
    def check_config_writable(self):
        """A ValueError where a layer is in the stack twice: a Sequential's config lists each layer once (Keras 3
        writes such a model with the repeat left out, so its file loads as another model), and one listed twice
        would load as two layers of one name."""
        places = {}
        for i, layer in enumerate(self._layers):
            places.setdefault(id(layer), []).append(i)
        for i, layer in enumerate(self._layers):
            if len(places[id(layer)]) > 1:
                raise ValueError(
                    f"Sequential '{self.name}' holds layer '{layer.name}' at positions {places[id(layer)]}: its config "
                    "cannot say so (a Sequential's config lists its layers, each once; Keras 3 writes this model "
                    "without the repeat, and its file loads as a different model). Save the weights "
                    "(model.save_weights('m.weights.h5'), the same file Keras writes) and build the model in code, "
                    "or make it a functional model, whose config records each call of a shared layer.")

    def get_config(self):
        self.check_config_writable()
        layers = []
        if self.input_spec is not None and not isinstance(self.input_spec, list):      # several: the first layer's
            layers.append({"class_name": "InputLayer",
                           "config": {"shape": tuple(self.input_spec[1:]), "dtype": self.dtype,
                                      "name": self.input_layer_name()}})
        layers += [{"class_name": keras_class_name(type(l)), "config": l.get_config()} for l in self._layers]
        return {"name": self.name, "trainable": self.trainable, "layers": layers}

    @classmethod
    def from_config(cls, config):
        from .. import layers as layers_module
        from .functional import Functional
        models = {"Sequential": Sequential, "Functional": Functional}
        from .keras_config import rooted
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        # Keras builds each layer of a built model's config (one with an input) as it deserializes it, outside the
        # model's name scope: the variables' paths begin with the layers' names, not the model's ("dense/kernel").
        built = bool(config["layers"]) and config["layers"][0].get("class_name") == "InputLayer"
        for entry in config["layers"]:
            layer_class = models.get(entry["class_name"]) or getattr(layers_module, entry["class_name"], None)
            if not isinstance(layer_class, type) or not issubclass(layer_class, Layer):
                raise ValueError(f"Unknown layer class {entry['class_name']!r} in the model config.")
            layer = layer_class.from_config(dict(entry["config"]))
            if built or entry.get("build_config"):
                # a wrapper's layers (both directions of a Bidirectional) are read and built on their own too
                for held in (layer, *(getattr(layer, key, None) for key in ("layer", "forward_layer",
                                                                             "backward_layer"))):
                    if isinstance(held, Layer):
                        rooted(held, {"build_config": True})
            model.add(layer)
        return model
