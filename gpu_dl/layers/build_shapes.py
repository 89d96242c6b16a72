"""What a layer's ``build`` is given, as Keras 3 gives it (``Layer._maybe_build``): the shapes of its call's tensors.

Each argument of a call that holds tensors (``mask`` and the catch-alls ``*args``/``**kwargs`` aside) has a shape, a
structure of shapes for a list, tuple or dict of tensors, named after it: ``<argument>_shape``.

- A ``build`` of one argument (``build(self, input_shape)``) is given the first such shape (in the order of the call's
  signature), whatever its name: ``call(self, targets, logits)`` builds for the targets' shape.
- A ``build`` of several takes them by name: each of its arguments must be ``<argument>_shape`` for an argument of
  ``call`` (``build(self, query_shape, value_shape, key_shape=None)`` for ``call(self, query, value, key=None)``),
  else a ValueError names the layer and the argument. Those the call was given tensors for are passed; the others
  keep their defaults (one without a default is a TypeError saying which tensor is missing).

The shapes a ``build`` took are kept on the layer (``record``) and written as Keras writes a layer's
``build_config`` (``config``): ``{"shapes_dict": {"query_shape": ..., "value_shape": ...}}`` for a build of several
arguments (a build of one writes ``{"input_shape": ...}``, from the shape the layer was built for), so a file of
either library builds such a layer in the other (``from_config``).

Where Keras builds a layer for a batch size the shapes do not say, so does gpu_dl (``stand_in_batch``): the layers of
a Sequential model built from data (or from an Input of a batch size) get that batch size, and the layers first
called in a composite layer's call get the batch size of the call on arrays, or the stand-in sizes (83) Keras's
torch backend traces a call on symbolic tensors with, for the batch and the other unknown axes. Their build configs
record those sizes, as Keras's do; the layers take any size along those axes all the same.
"""
from __future__ import annotations

import contextlib
import functools
import inspect

_NAMED = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@functools.lru_cache(maxsize=None)
def parameters(build) -> tuple:
    """``((name, has a default), ...)`` of the named arguments of ``build`` (a function taking ``self`` first),
    ``self`` left out."""
    try:
        found = list(inspect.signature(build).parameters.values())[1:]
    except (TypeError, ValueError):
        return (("input_shape", False),)
    return tuple((p.name, p.default is not p.empty) for p in found if p.kind in _NAMED)


def _where(layer):
    return f"Layer '{layer.name}' ({type(layer).__name__})"


def arguments(layer, build, shapes: dict, call_names) -> dict:
    """The keyword arguments ``build`` (a function taking ``self`` first) is called with, as Keras maps them:
    ``shapes`` holds ``{call argument: its shape}`` for the call's tensor arguments in its signature's order, and
    ``call_names`` all the names of the call's arguments."""
    named = parameters(build)
    if len(named) == 1:
        return {named[0][0]: next(iter(shapes.values()), None)}
    kwargs = {}
    rule = ("a build() of more than one argument takes the shapes of the call's tensors by name, each "
            "`<argument>_shape` for an argument of call(), as Keras's does (e.g. build(self, query_shape, "
            "value_shape) for call(self, query, value))")
    for name, has_default in named:
        if not name.endswith("_shape"):
            raise ValueError(f"{_where(layer)}: {rule}; build() takes `{name}`, which does not end in `_shape`.")
        argument = name[:-len("_shape")]
        if argument not in call_names:
            raise ValueError(f"{_where(layer)}: {rule}; build() takes `{name}`, but call() has no argument "
                             f"`{argument}` (it takes {', '.join(call_names) or 'none'}).")
        if argument in shapes:
            kwargs[name] = shapes[argument]
        elif not has_default:
            raise TypeError(f"{_where(layer)}: build() takes `{name}`, but the call gave no tensor for `{argument}` "
                             f"(it gave {', '.join(shapes) or 'none'}); give `{name}` a default, as Keras's "
                             "MultiHeadAttention does for key_shape, or pass the tensor.")
    return kwargs


def taken(layer, build, args, kwargs) -> dict:
    """``{build argument: shape}`` of a call of ``build`` (a function taking ``self`` first) with ``args`` and
    ``kwargs``; a TypeError naming the layer where they do not fit its signature."""
    try:
        bound = inspect.signature(build).bind(layer, *args, **kwargs).arguments
    except ValueError:
        return {"input_shape": args[0] if args else None}
    except TypeError as e:
        raise TypeError(f"{_where(layer)}: build{inspect.signature(build)} cannot take these shapes: {e}.") from None
    return dict(list(bound.items())[1:])


def record(layer, build, args, kwargs):
    """Keep ``{build argument: shape}`` of a call of ``build`` (a function taking ``self`` first) on ``layer``;
    returns the first shape it took (None where it took none)."""
    shapes = taken(layer, build, args, kwargs)
    layer.__dict__["_build_shapes"] = shapes
    return next(iter(shapes.values()), None)


def call_shapes(layer, build, shapes: dict):
    """The inverse of ``arguments``: ``({call argument: shape}, call argument names)`` for ``{build argument:
    shape}`` given to ``build`` of a layer built by hand, where build names them ``<argument>_shape``."""
    names = [name[:-len("_shape")] if name.endswith("_shape") and len(shapes) > 1 else name for name in shapes]
    if len(shapes) == 1:
        return {"inputs": next(iter(shapes.values()))}, ["inputs"]
    return dict(zip(names, shapes.values())), names


def config(layer):
    """Keras's ``build_config`` of a layer whose build took several shapes, or None (a build of one: the caller
    writes the shape the layer was built for)."""
    taken = layer.__dict__.get("_build_shapes")
    if not taken or len(taken) < 2:
        return None
    return {"shapes_dict": dict(taken)}


def from_config(build_config):
    """The keyword arguments of ``build`` a ``{"shapes_dict": ...}`` build config gives (its shapes as tuples), or
    None for another config."""
    shapes = build_config.get("shapes_dict") if isinstance(build_config, dict) else None
    if not isinstance(shapes, dict) or not shapes:
        return None
    return {str(name): _as_shape(value) for name, value in shapes.items()}


def _as_shape(value):
    """A shape read from JSON: a list of sizes as a tuple, a list or dict of shapes as one of tuples."""
    if isinstance(value, dict):
        return {k: _as_shape(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (list, tuple, dict)) for v in value):
        return [_as_shape(v) for v in value]
    return None if value is None else tuple(value)


def _is_shape(value):
    return isinstance(value, (list, tuple)) and all(
        d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in value)


def with_batch(value, batch):
    """A shape, or a structure of shapes, with ``batch`` for each batch axis left None (``value`` itself for a
    None ``batch``)."""
    if batch is None or value is None:
        return value
    if isinstance(value, dict):
        return {k: with_batch(v, batch) for k, v in value.items()}
    if _is_shape(value):
        return (batch,) + tuple(value[1:]) if value and value[0] is None else tuple(value)
    if isinstance(value, (list, tuple)):
        return [with_batch(v, batch) for v in value]
    return value


# Keras's torch backend runs a call on symbolic tensors (compute_output_spec) on stand-in tensors whose unknown
# axes are 83: the layers first called inside it are built for a batch of 83 (and 83 steps where the steps are
# unknown).
KERAS_TRACE_BATCH = 83
_stand_ins = []


@contextlib.contextmanager
def stand_in_batch(batch, other_axes=None):
    """Within it, a layer built for shapes of unknown batch size is given ``batch`` as their batch size (None: as
    given), as Keras's layers are where Keras runs a call on stand-in tensors (a composite layer's call on symbolic
    tensors: ``KERAS_TRACE_BATCH``) or on a batch of data (a Sequential model built from data, a call on arrays);
    ``other_axes`` is the size a layer's own build is given for its other unknown axes (Keras's trace stands in
    83 for them too)."""
    _stand_ins.append((batch, other_axes))
    try:
        yield
    finally:
        _stand_ins.pop()


def active_stand_in():
    """The batch size builds of unknown batch size are given now (see ``stand_in_batch``), or None."""
    return _stand_ins[-1][0] if _stand_ins else None


def with_stand_in(shape):
    """``shape`` (or a structure of shapes) with the active stand-in batch size for a batch axis left None."""
    return with_batch(shape, active_stand_in())


def with_stand_ins(shape):
    """``shape`` (or a structure of shapes) as a layer's own build is given it now: the active stand-in batch size
    for a batch axis left None, and the stand-in size of the other axes for theirs (see ``stand_in_batch``)."""
    shape = with_stand_in(shape)
    other = _stand_ins[-1][1] if _stand_ins else None
    if other is None or shape is None:
        return shape
    if isinstance(shape, dict):
        return {k: with_stand_ins(v) for k, v in shape.items()}
    if _is_shape(shape):
        return tuple(other if d is None else d for d in shape)
    if isinstance(shape, (list, tuple)):
        return [with_stand_ins(v) for v in shape]
    return shape


def _fits(given, held):
    """Whether shape ``given`` has the rank of ``held`` and its sizes where ``held`` fixes them (for lists of
    shapes: each of its own)."""
    if _is_shape(given) and _is_shape(held):
        return len(given) == len(held) and all(h is None or g == h for g, h in zip(given, held))
    if isinstance(given, (list, tuple)) and isinstance(held, (list, tuple)) and len(given) == len(held) and given:
        return all(_is_shape(g) and _fits(g, h) for g, h in zip(given, held))
    return False


# The Keras 3 layers built when they are made (Layer._build_at_init, or Reshape's own): their build never runs on
# a call, so Keras records no build shape and writes no build config for them.
KERAS_BUILT_AT_INIT = frozenset((
    "Activation", "ActivityRegularization", "AlphaDropout", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "Dropout", "ELU", "GaussianDropout", "GaussianNoise", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
    "GlobalMaxPooling3D", "Identity", "LeakyReLU", "Masking", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "ReLU",
    "Reshape", "Softmax", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "UnitNormalization"))


def built_at_init(layer) -> bool:
    """Whether Keras builds ``layer``'s class when it is made: a gpu_dl class standing for one of
    ``KERAS_BUILT_AT_INIT``, not subclassed by one of the caller's that has a ``build`` of its own (Keras runs
    that build on the first call and records its shape)."""
    for cls in type(layer).__mro__:
        if cls.__module__.startswith("gpu_dl."):
            return cls.__name__ in KERAS_BUILT_AT_INIT
        if "build" in cls.__dict__:
            return False
    return False


def build_config(layer):
    """Keras 3's ``Layer.get_build_config()`` of ``layer``: ``{"input_shape": shape}`` for a build of one shape,
    ``{"shapes_dict": {"<argument>_shape": shape, ...}}`` for a build of several, None before it is built. The batch
    axis is as the build was given it: a size where the layer was built for arrays, or in a Sequential built from
    data, as Keras records it; None where it was built for symbolic tensors."""
    from .input_spec import built_input_shape
    if not layer.built or built_at_init(layer):
        return None
    batch = layer.__dict__.get("_build_batch")
    if hasattr(layer, "keras_build_config"):
        return with_batch(layer.keras_build_config(), batch)
    several = config(layer)
    if several is not None:
        return with_batch(several, batch)
    taken = layer.__dict__.get("_build_shapes") or {}
    shape = next(iter(taken.values()), None) if len(taken) == 1 else None
    spec = built_input_shape(layer)
    if spec is None:
        return None
    # The shape the build was given where the layer holds it (a build for arrays keeps their batch size and the
    # sizes of the axes the layer takes any size along, as Keras keeps them); else the shape the layer holds.
    if _fits(shape, spec):
        spec = shape
    return {"input_shape": with_batch(spec, batch)}
