"""``plot_model`` and ``model_to_dot``: a model's layers as a Graphviz diagram, as Keras 3 draws it.

One node per layer, labelled as Keras labels it (an HTML table: the layer's
name and class, then optional activation, input/output shapes, dtype and
trainability), and one edge from each layer to the next in a Sequential; in a
functional model one edge from the layer that made each tensor to each layer
called on it (a model's inputs are InputLayer nodes). pydot builds the
graph; Graphviz's ``dot`` program renders it to PNG, SVG, PDF or another
format named by the file's extension. A ``.dot``/``.gv`` file gets the graph
text itself, which needs pydot but not Graphviz.

A model among the layers is one node (``name (Sequential)``/``(Functional)``);
with ``expand_nested=True`` it is a dashed cluster named after it holding its
own layers' nodes and edges, and the edges that reach or leave it go to the
layer inside that takes that input (a functional model's InputLayer, a
Sequential's first layer) or makes that output, as Keras draws them.
"""
from __future__ import annotations

import html
import os
import shutil

PYDOT_HINT = "pip install pydot"
GRAPHVIZ_HINT = ("install Graphviz, which provides the `dot` program: apt-get install graphviz / "
                 "brew install graphviz / conda install graphviz")
_TEXT_FORMATS = ("dot", "gv")


def _import_pydot():
    try:
        import pydot
    except ImportError as error:
        raise ImportError(f"You must install pydot (`{PYDOT_HINT}`, or `pip install \"gpu_dl[plot]\"`) for "
                          "`plot_model` to work.") from error
    return pydot


def _require_graphviz(pydot):
    program = getattr(pydot.Dot(), "prog", "dot") or "dot"
    if shutil.which(program) is None:
        raise ImportError(f"`plot_model` needs Graphviz's `{program}` program, which is not on the PATH: "
                          f"{GRAPHVIZ_HINT}. (Or save the graph text without Graphviz: to_file='model.dot'.)")


def _drawn_layers(model):
    """What the diagram shows: a functional model's layers and the arithmetic operations between them, as Keras
    draws them; another model's layers."""
    return list(model._operations) if hasattr(model, "_operations") else list(model.layers)


def _graph_nodes(model):
    """The calls of each layer that belong to a functional model, or None for a model without a graph."""
    node_set = getattr(model, "_node_set", None)
    if node_set is None:
        return None
    return {id(layer): [n for n in layer._inbound_nodes if n in node_set] for layer in _drawn_layers(model)}


def _structure_shape(tensors):
    shapes = [tuple(t.shape) for t in tensors]
    return shapes[0] if len(shapes) == 1 else shapes


def _model_shapes(model):
    """(input shape, output shape) of a model among the layers: its own, whatever it is called on, as Keras
    shows them (its ``input`` and ``output``)."""
    inputs, outputs = getattr(model, "_inputs_struct", None), getattr(model, "_outputs_struct", None)
    if isinstance(inputs, dict) or isinstance(outputs, dict):
        # A model made with dicts: Keras shows each structure as made, "key: shape" in the dict's order.
        def shapes(structure):
            if isinstance(structure, dict):
                return {k: tuple(t.shape) for k, t in structure.items()}
            return [tuple(t.shape) for t in structure] if isinstance(structure, (list, tuple)) else \
                tuple(structure.shape)
        return shapes(inputs), shapes(outputs)
    try:
        return model.input_shape, model.output_shape
    except (ValueError, AttributeError):     # an unbuilt Sequential
        return None, None


def _layer_shapes(model):
    """layer -> (input shape, output shape): of its one call in a functional model (unknown for a layer called
    more than once, as Keras shows it), else propagated from the model's input shape."""
    calls = _graph_nodes(model)
    if calls is not None:
        shapes = {}
        for layer in _drawn_layers(model):
            nodes = calls[id(layer)]
            if _is_model(layer):
                shapes[id(layer)] = _model_shapes(layer)
                continue
            if len(nodes) != 1:
                shapes[id(layer)] = (None, None)
                continue
            node = nodes[0]
            arg = node.args[0] if node.args else None
            inputs = None if arg is None else (tuple(arg.shape) if hasattr(arg, "shape")
                                               else [tuple(t.shape) for t in arg])
            shapes[id(layer)] = (inputs, _structure_shape(node.outputs))
        return shapes
    shapes = {}
    shape = getattr(model, "input_spec", None)
    for layer in model.layers:
        try:
            out = layer._flat_output_shape(shape) if shape is not None else None
            if out is not None:     # several outputs (a last model of several): a list of shapes
                out = [tuple(s) for s in out] if isinstance(out, list) else tuple(out)
        except Exception:   # a layer that cannot say: shown as "?", as Keras does
            out = None
        shapes[id(layer)] = _model_shapes(layer) if _is_model(layer) else (shape, out)
        shape = out
    return shapes


def _format_shape(shape):
    if shape is None:
        return "?"
    if isinstance(shape, dict):
        return html.escape(", ".join(f"{k}: {tuple(v)}" for k, v in shape.items()))
    return html.escape(str([tuple(s) for s in shape]) if isinstance(shape, list) else str(tuple(shape)))


def _activation_name(layer):
    activation = layer.activation
    if hasattr(activation, "name"):
        return activation.name
    if hasattr(activation, "__name__"):
        return activation.__name__
    return str(activation)


def _is_model(layer):
    return hasattr(layer, "layers") and hasattr(layer, "forward")


def _graph_tensors(model, attribute):
    """A functional model's ``inputs`` or ``outputs``; None for a Sequential, drawn as its layers in a row (the
    symbolic graph it keeps for its ``inputs`` starts at an InputLayer that is not among its layers)."""
    from ..models.sequential import Sequential      # models sit above utils; import late
    return None if isinstance(model, Sequential) else getattr(model, attribute, None)


def _producer(layer, output_index):
    """The layer inside nested models that makes output ``output_index`` of ``layer``."""
    while _is_model(layer):
        outputs = _graph_tensors(layer, "outputs")
        if outputs is None:            # a Sequential: its last layer (a model of several outputs gives them all)
            layer = layer.layers[-1]
            output_index = output_index if _is_model(layer) else 0
        else:
            history = outputs[output_index]._keras_history
            layer, output_index = history.operation, history.tensor_index
    return layer


def _taker(layer, input_index):
    """The layer inside nested models that takes input ``input_index`` of ``layer``."""
    while _is_model(layer):
        inputs = _graph_tensors(layer, "inputs")
        if inputs is None:             # a Sequential: its first layer (a model of several inputs takes them all)
            layer = layer.layers[0]
            input_index = input_index if _is_model(layer) else 0
        else:
            layer = inputs[input_index]._keras_history.operation
    return layer


def make_layer_label(layer, input_shape=None, output_shape=None, *, show_layer_names, show_layer_activations,
                     show_dtype, show_shapes, show_trainable):
    """The node's HTML-like Graphviz label, cell for cell as Keras 3 writes it."""
    class_name = type(layer).__name__
    table = '<<table border="0" cellborder="1" bgcolor="black" cellpadding="10">'
    colspan_max = sum(int(x) for x in (show_dtype, show_trainable)) + (2 if show_shapes else 0)
    colspan = max(1, colspan_max)
    if show_layer_names:
        title = f"<b>{html.escape(layer.name)}</b> ({class_name})"
    else:
        title = f"<b>{class_name}</b>"
    table += (f'<tr><td colspan="{colspan}" bgcolor="black"><font point-size="16" color="white">'
              f"{title}</font></td></tr>")
    if show_layer_activations and getattr(layer, "activation", None) is not None:
        table += (f'<tr><td bgcolor="white" colspan="{colspan}"><font point-size="14">'
                  f"Activation: <b>{html.escape(_activation_name(layer))}</b></font></td></tr>")
    cols = []
    if show_shapes:
        if class_name != "InputLayer":
            cols.append('<td bgcolor="white"><font point-size="14">'
                        f"Input shape: <b>{_format_shape(input_shape)}</b></font></td>")
        cols.append('<td bgcolor="white"><font point-size="14">'
                    f"Output shape: <b>{_format_shape(output_shape)}</b></font></td>")
    if show_dtype:
        dtype = getattr(layer, "dtype", None)
        source = layer
        while _is_model(source) and _graph_tensors(source, "outputs") is None and source.layers and \
                _is_model(source.layers[-1]):
            source = source.layers[-1]      # a Sequential gives the outputs of its last layer, a model
        outputs = _graph_tensors(source, "outputs") if _is_model(source) else None
        if outputs is not None and len(outputs) > 1:     # a model of several outputs: one dtype each
            dtype = [t.dtype for t in outputs]
        if _is_model(source) and isinstance(getattr(source, "_outputs_struct", None), dict):
            dtype = {k: t.dtype for k, t in source._outputs_struct.items()}      # as made, one output or more
        cols.append('<td bgcolor="white"><font point-size="14">'
                    f"Output dtype: <b>{html.escape(str(dtype), quote=False) if dtype else '?'}</b></font></td>")
    if show_trainable and hasattr(layer, "trainable") and layer.weights:
        if layer.trainable:
            cols.append('<td bgcolor="forestgreen"><font point-size="14" color="white">'
                        "<b>Trainable</b></font></td>")
        else:
            cols.append('<td bgcolor="firebrick"><font point-size="14" color="white">'
                        "<b>Non-trainable</b></font></td>")
    if cols:
        table += f"<tr>{''.join(cols)}</tr>"
    return table + "</table>>"


def _check_built(model):
    if not getattr(model, "built", False):
        raise ValueError("This model has not yet been built. Build the model first by calling `build()` or by "
                         "calling the model on a batch of data (for a Sequential: start it with "
                         "`layers.Input(shape)`, or fit it once).")


def _check_kwargs(kwargs):
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("Argument `layer_range` is no longer supported.")
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {kwargs}")


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True, rankdir="TB",
                 expand_nested=False, dpi=200, subgraph=False, show_layer_activations=False, show_trainable=False,
                 splines="ortho", **kwargs):
    """The model as a ``pydot.Dot`` graph (a ``pydot.Cluster`` with ``subgraph=True``), as Keras 3 builds it."""
    _check_built(model)
    pydot = _import_pydot()
    _check_kwargs(kwargs)
    if subgraph:
        dot = pydot.Cluster(style="dashed", graph_name=model.name)
        dot.set("label", model.name)
        dot.set("labeljust", "l")
    else:
        dot = pydot.Dot()
        dot.set("rankdir", rankdir)
        dot.set("concentrate", True)
        dot.set("dpi", dpi)
        dot.set("splines", splines)
        dot.set_node_defaults(shape="record")
    options = dict(show_layer_names=show_layer_names, show_layer_activations=show_layer_activations,
                   show_dtype=show_dtype, show_shapes=show_shapes, show_trainable=show_trainable)
    layers = _drawn_layers(model)
    shapes = _layer_shapes(model)
    for layer in layers:
        if expand_nested and _is_model(layer):
            dot.add_subgraph(model_to_dot(layer, show_shapes=show_shapes, show_dtype=show_dtype,
                                          show_layer_names=show_layer_names, rankdir=rankdir,
                                          expand_nested=True, subgraph=True,
                                          show_layer_activations=show_layer_activations,
                                          show_trainable=show_trainable))
            continue
        node = pydot.Node(str(id(layer)), label=make_layer_label(layer, *shapes[id(layer)], **options))
        node.set("fontname", "Helvetica")
        node.set("border", "0")
        node.set("margin", "0")
        dot.add_node(node)
    calls = _graph_nodes(model)
    if calls is None:
        pairs = [(_producer(a, 0), _taker(b, 0)) if expand_nested else (a, b) for a, b in zip(layers, layers[1:])]
    else:
        # One edge from the layer that made each input of each call to the layer called, once per pair.
        pairs = [(t._keras_history.operation, layer, t._keras_history.tensor_index, position)
                 for layer in layers for node in calls[id(layer)] for position, t in enumerate(node.input_tensors)]
        pairs = [(_producer(source, index), _taker(taker, position)) if expand_nested else (source, taker)
                 for source, taker, index, position in pairs]
    seen = set()
    for source, destination in pairs:
        key = (id(source), id(destination))
        if key in seen:
            continue
        seen.add(key)
        edge = pydot.Edge(str(id(source)), str(id(destination)))
        edge.set("penwidth", "2")
        dot.add_edge(edge)
    return dot


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=False,
               rankdir="TB", expand_nested=False, dpi=200, show_layer_activations=False, show_trainable=False,
               splines="ortho", **kwargs):
    """Draw the model's layers into ``to_file`` (Keras 3's ``keras.utils.plot_model``).

    The format comes from the extension: ``.png`` (also the default when
    there is none), ``.svg``, ``.pdf``, ... through Graphviz's ``dot``; ``.dot``
    or ``.gv`` writes the graph text and needs only pydot. Returns an
    ``IPython.display.Image`` of a raster image where IPython is installed
    (a notebook shows it), else None. ``rankdir="LR"`` draws left to right.
    As in Keras 3 (not Keras 2), layer names are shown only with
    ``show_layer_names=True``; the class name always is.
    """
    _check_built(model)
    pydot = _import_pydot()
    to_file = os.fspath(to_file)
    extension = os.path.splitext(to_file)[1][1:].lower() or "png"
    if extension not in _TEXT_FORMATS:
        _require_graphviz(pydot)
    _check_kwargs(kwargs)
    dot = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype, show_layer_names=show_layer_names,
                       rankdir=rankdir, expand_nested=expand_nested, dpi=dpi,
                       show_layer_activations=show_layer_activations, show_trainable=show_trainable,
                       splines=splines)
    if extension in _TEXT_FORMATS:
        with open(to_file, "w", encoding="utf-8") as stream:
            stream.write(dot.to_string())
        return None
    try:
        dot.write(to_file, format=extension)
    except FileNotFoundError as error:
        if error.filename is not None:      # the output file's folder is missing, not Graphviz
            raise
        raise ImportError(f"`plot_model` could not run Graphviz: {GRAPHVIZ_HINT}.") from error
    if extension in ("png", "jpg", "jpeg", "gif"):
        try:
            from IPython import display
        except ImportError:
            return None
        return display.Image(filename=to_file)
    return None
