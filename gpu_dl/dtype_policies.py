"""Keras's dtype policies: the dtype a layer keeps its weights in and the dtype it computes in.

``DTypePolicy("float32")`` (or ``"float64"``) keeps weights and computes in that dtype; ``DTypePolicy(
"mixed_float16")`` keeps float32 weights and computes in float16: inside the layer's call its floating inputs are
cast to float16 and its float32 weights are read as float16 (``autocast_scope``), so its outputs are float16; the
gradients reach the float32 weights as float32. A layer takes its policy from ``dtype=`` (a name, a policy, or
Keras's serialized policy) or, without one, from the global policy (``set_dtype_policy``, float32 until set).

NumPy and CuPy have no bfloat16 dtype, so ``"mixed_bfloat16"`` and ``"bfloat16"`` are refused; so is
``"float16"`` alone (float16 weights), which gpu_dl's optimizers do not update: ``"mixed_float16"`` is the
supported mixed policy.

``QuantizedDTypePolicy("int8", "float32")`` (``"int8_from_float32"``) is the policy ``quantize("int8")`` gives a
layer: weights kept as int8 with float scales, computations in the source policy's dtypes.
``Int4DTypePolicy`` (``"int4/<block size>_from_float32"``) is int4's. ``QuantizedFloat8DTypePolicy``
(``"float8_from_float32"``) is float8 training's, with the length of the amax histories of its delayed scaling
(``amax_history_length``, 1024 by default). ``AWQDTypePolicy`` (``"awq/4/<group size>_from_float32"``) is
AWQ's (``gpu_dl/awq.py``); ``GPTQDTypePolicy`` (``"gptq/<weight bits>/<group size>_from_float32"``) is the
policy of a layer GPTQ quantizes (``gpu_dl/gptq.py``).

``DTypePolicyMap`` maps layer paths (exact, or regular expressions matching the whole path) to policies, with a
default; a layer given one as its ``dtype`` takes the policy of its name (the path of a layer outside any other)
when it is made.
"""
from __future__ import annotations

import contextlib
import contextvars
import re

import numpy

from .backend import config as backend_config

_MIXED = {"mixed_float16": ("float16", "float32")}
# Keras's quantization modes, and those gpu_dl's layers run
QUANTIZATION_MODES = ("int8", "float8", "int4", "gptq", "awq")
SUPPORTED_QUANTIZATION_MODES = ("int8", "int4", "float8", "awq", "gptq")
_UNSUPPORTED = {
    "mixed_bfloat16": "NumPy and CuPy have no bfloat16 dtype",
    "bfloat16": "NumPy and CuPy have no bfloat16 dtype",
    "float16": "gpu_dl keeps weights in float32 or float64 (its optimizers do not update float16 weights)",
}


def _parse(name, where):
    """``(compute_dtype, variable_dtype)`` of a policy name, or a clear error naming ``where``."""
    if not isinstance(name, str):
        raise TypeError(f"{where}: a dtype policy name must be a string such as 'float32' or 'mixed_float16', "
                        f"got {name!r} (of type {type(name).__name__}).")
    if name in _MIXED:
        return _MIXED[name]
    if name in _UNSUPPORTED:
        raise ValueError(f"{where}: the dtype policy {name!r} is not supported ({_UNSUPPORTED[name]}); use "
                         "'mixed_float16' (float16 computations, float32 weights), the supported mixed policy, "
                         "or 'float32' / 'float64'.")
    try:
        dtype = numpy.dtype(name).name
    except TypeError:
        dtype = None
    if dtype not in ("float32", "float64"):
        raise ValueError(f"{where}: cannot convert {name!r} to a dtype policy. Valid policies are 'float32', "
                         "'float64' and 'mixed_float16'.")
    return dtype, dtype


class DTypePolicy:
    """Keras's ``DTypePolicy``: ``name`` (``"float32"``, ``"float64"`` or ``"mixed_float16"``; None: the global
    policy's), ``compute_dtype`` (the dtype of a layer's computations and outputs) and ``variable_dtype`` (the
    dtype of its weights)."""

    def __init__(self, name=None):
        if name is None:
            name = dtype_policy().name
        self._compute_dtype, self._variable_dtype = _parse(name, type(self).__name__)
        self._name = name

    @classmethod
    def _of_dtype(cls, dtype):
        """A policy of one dtype of any kind (the integer or boolean dtype of an operation's output), unchecked."""
        policy = cls.__new__(cls)
        # "string": Keras's dtype of text tensors (host NumPy arrays of str here), which NumPy has no name for
        name = "string" if dtype in ("string", str) else numpy.dtype(dtype).name
        policy._name = policy._compute_dtype = policy._variable_dtype = name
        return policy

    @property
    def name(self):
        return self._name

    @property
    def compute_dtype(self):
        return self._compute_dtype

    @property
    def variable_dtype(self):
        return self._variable_dtype

    @property
    def quantization_mode(self):
        """None: gpu_dl has no quantized policies."""
        return None

    def get_config(self):
        return {"name": self._name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        # As Keras's: DTypePolicy and FloatDTypePolicy (its alias) equal each other; a policy of any other class
        # equals only policies of exactly its class. An isinstance test would make a subclass's policy equal its
        # base's one way and not the other.
        if type(self) in _FLOAT_POLICY_CLASSES:
            if type(other) not in _FLOAT_POLICY_CLASSES:
                return False
        elif type(other) is not type(self):
            return False
        return self._name == other._name

    def __hash__(self):
        return hash(self._name)

    def __repr__(self):
        return f'<{type(self).__name__} "{self._name}">'


class FloatDTypePolicy(DTypePolicy):
    """Keras's alias of ``DTypePolicy``."""


_FLOAT_POLICY_CLASSES = (DTypePolicy, FloatDTypePolicy)


def check_quantization_mode(mode, where):
    """A ValueError for a mode Keras does not know (Keras's message) or one gpu_dl does not run."""
    if mode not in QUANTIZATION_MODES:
        raise ValueError(f"Invalid quantization mode. Expected one of {QUANTIZATION_MODES}. Received: mode={mode}")
    if mode not in SUPPORTED_QUANTIZATION_MODES:
        raise ValueError(f"{where}: the quantization mode {mode!r} is not supported by gpu_dl; supported: "
                         f"{SUPPORTED_QUANTIZATION_MODES}.")


class QuantizedDTypePolicy(DTypePolicy):
    """Keras's ``QuantizedDTypePolicy``: ``mode`` (``"int8"``) of a float ``source_name`` policy (None: the
    global policy's); its name is ``f"{mode}_from_{source_name}"``, its dtypes the source's."""

    def __init__(self, mode, source_name=None):
        if source_name is None:
            source_name = dtype_policy().name
        self._compute_dtype, self._variable_dtype = _parse(source_name, type(self).__name__)
        check_quantization_mode(mode, type(self).__name__)
        if mode == "int8" and self._compute_dtype == "float16":
            raise ValueError(f"Quantization mode='{mode}' doesn't work well with compute_dtype='float16'.")
        self._name = f"{mode}_from_{source_name}"
        self._source_name = source_name
        self._quantization_mode = mode

    @property
    def quantization_mode(self):
        return self._quantization_mode

    def get_config(self):
        return {"mode": self._quantization_mode, "source_name": self._source_name}

    def __eq__(self, other):
        return super().__eq__(other) and self._quantization_mode == other._quantization_mode and \
            self._source_name == other._source_name

    def __hash__(self):
        return hash(self._name)


class Int4DTypePolicy(QuantizedDTypePolicy):
    """Keras's ``Int4DTypePolicy``: int4 with the block size of its sub-channel scales in the mode,
    ``"int4/<block_size>"`` (-1: one scale per output channel), e.g. ``"int4/128_from_float32"``."""

    def __init__(self, mode, source_name=None):
        parts = mode.split("/") if isinstance(mode, str) else []
        if len(parts) != 2 or parts[0] != "int4":
            raise ValueError(f"Invalid mode for Int4DTypePolicy. Expected format 'int4/<block_size>', but got "
                             f"'{mode}'.")
        try:
            block_size = int(parts[1])
        except ValueError:
            raise ValueError("Invalid mode for Int4DTypePolicy. <block_size> must be an integer. Expected format "
                             f"'int4/<block_size>', but got '{mode}'.") from None
        if block_size < -1 or block_size == 0:
            raise ValueError("Invalid block_size in mode. Supported values are -1 (per-channel) or a positive "
                             f"integer (sub-channel), but got {block_size} from '{mode}'.")
        super().__init__("int4", source_name)
        self._name = f"{mode}_from_{self._source_name}"
        self.block_size = block_size

    def get_config(self):
        return {"mode": f"int4/{self.block_size}", "source_name": self._source_name}

    def __eq__(self, other):
        return super().__eq__(other) and self.block_size == other.block_size

    def __hash__(self):
        return hash(self._name)


class _BitsAndGroupDTypePolicy(QuantizedDTypePolicy):
    """What Keras's GPTQ and AWQ policies share: the mode ``"<algorithm>/<weight_bits>/<group_size>"`` checked as
    Keras checks it (the subclass names its algorithm, the weight bits it takes, and the word for group size -1),
    ``mode`` the algorithm alone."""

    algorithm = None
    weight_bits_allowed = ()
    weight_bits_message = ""
    whole_group = ""

    def __init__(self, mode, source_name=None):
        cls = type(self).__name__
        parts = mode.split("/") if isinstance(mode, str) else []
        expected = f"'{self.algorithm}/<weight_bits>/<group_size>'"
        if len(parts) != 3 or parts[0] != self.algorithm:
            raise ValueError(f"Invalid mode for {cls}. Expected format {expected}, but got '{mode}'.")
        try:
            weight_bits, group_size = int(parts[1]), int(parts[2])
        except ValueError:
            raise ValueError(f"Invalid mode for {cls}. <weight_bits> and <group_size> must be integers. "
                             f"Expected format {expected}, but got '{mode}'.") from None
        if weight_bits not in self.weight_bits_allowed:
            raise ValueError(f"Invalid weight_bits in mode. {self.weight_bits_message}, but got {weight_bits} from "
                             f"'{mode}'.")
        if group_size < -1 or group_size == 0:
            raise ValueError(f"Invalid group_size in mode. Supported values are -1 ({self.whole_group}) or a positive "
                             f"integer, but got {group_size} from '{mode}'.")
        super().__init__(self.algorithm, source_name)
        self._name = f"{mode}_from_{self._source_name}"
        self.mode = self.algorithm
        self.weight_bits = weight_bits
        self.group_size = group_size

    def get_config(self):
        return {"mode": f"{self.algorithm}/{self.weight_bits}/{self.group_size}", "source_name": self._source_name}

    def __eq__(self, other):
        return super().__eq__(other) and (self.weight_bits, self.group_size) == (other.weight_bits,
                                                                                 other.group_size)

    def __hash__(self):
        return hash(self._name)


class GPTQDTypePolicy(_BitsAndGroupDTypePolicy):
    """Keras's ``GPTQDTypePolicy``: GPTQ with its weight bits (2, 3, 4 or 8) and group size (-1: one group) in the
    mode, ``"gptq/<weight_bits>/<group_size>"``, e.g. ``"gptq/4/128_from_float32"``."""

    algorithm = "gptq"
    weight_bits_allowed = (2, 3, 4, 8)
    weight_bits_message = "Supported values are 2, 3, 4, and 8"
    whole_group = "whole-tensor"


class QuantizedFloat8DTypePolicy(QuantizedDTypePolicy):
    """Keras's ``QuantizedFloat8DTypePolicy``: float8 training (``"float8_from_<source>"``) with
    ``amax_history_length``, the number of steps of maximum magnitudes the delayed scaling keeps."""

    default_amax_history_length = 1024

    def __init__(self, mode, source_name=None, amax_history_length=1024):
        super().__init__(mode, source_name)
        if not isinstance(amax_history_length, int):
            raise TypeError("`amax_history_length` must be an integer. "
                            f"Received: amax_history_length={amax_history_length}")
        self._amax_history_length = amax_history_length

    @property
    def amax_history_length(self):
        """The length of the amax history window of float8 training's scales."""
        return self._amax_history_length

    def get_config(self):
        return {**super().get_config(), "amax_history_length": self._amax_history_length}

    def __eq__(self, other):
        return super().__eq__(other) and self._amax_history_length == other._amax_history_length

    def __hash__(self):
        return hash((self._name, self._amax_history_length))


class AWQDTypePolicy(_BitsAndGroupDTypePolicy):
    """Keras's ``AWQDTypePolicy``: AWQ's 4-bit weights with the number of input channels that share a scale in the
    mode, ``"awq/<weight_bits>/<group_size>"`` (weight_bits 4; group_size -1: one scale per output channel), e.g.
    ``"awq/4/128_from_float32"``."""

    algorithm = "awq"
    weight_bits_allowed = (4,)
    weight_bits_message = "AWQ only supports 4-bit quantization"
    whole_group = "per-channel"


def _quantized_policy(name, where):
    """The ``QuantizedDTypePolicy`` a name like ``"int8_from_float32"`` names, or a clear error."""
    parts = name.split("_from_")
    if len(parts) != 2:
        raise ValueError(f"{where}: cannot convert `policy` into a valid pair (`mode`, `source_name`) to "
                         f"instantiate `QuantizedDTypePolicy`. Received: policy={name}")
    if parts[0].startswith("float8"):
        return QuantizedFloat8DTypePolicy(*parts)
    if parts[0].startswith("awq"):
        return AWQDTypePolicy(*parts)
    if parts[0].startswith("gptq"):
        return GPTQDTypePolicy(*parts)
    return Int4DTypePolicy(*parts) if "/" in parts[0] else QuantizedDTypePolicy(*parts)


class DTypePolicyMap(DTypePolicy):
    """Keras's ``DTypePolicyMap``: a mutable mapping of layer paths to policies; a path not in it takes the one
    key it matches as a regular expression (``re.fullmatch``), else ``default_policy`` (None: the global
    policy). Its own dtypes and name (``"map_<default>"``) are the default policy's."""

    def __init__(self, default_policy=None, policy_map=None):
        if isinstance(default_policy, DTypePolicyMap):
            raise ValueError("`default_policy` cannot be a `DTypePolicyMap`.")
        if policy_map is not None and not isinstance(policy_map, dict):
            raise TypeError(f"If specified, `policy_map` must be a dict. Received: policy_map={policy_map} of type "
                            f"{type(policy_map)}")
        self._default_policy_arg = default_policy
        self._default_policy = get(default_policy, "DTypePolicyMap: default_policy")
        self._policy_map = {key: get(value, f"DTypePolicyMap[{key!r}]") for key, value in (policy_map or {}).items()}

    @property
    def default_policy(self):
        return get(self._default_policy)

    @property
    def name(self):
        return f"map_{self.default_policy.name}"

    @property
    def compute_dtype(self):
        return self.default_policy.compute_dtype

    @property
    def variable_dtype(self):
        return self.default_policy.variable_dtype

    @property
    def quantization_mode(self):
        return self.default_policy.quantization_mode

    def __getitem__(self, key):
        if key in self._policy_map:
            return self._policy_map[key]
        matching = [pattern for pattern in self._policy_map if re.fullmatch(pattern, key)]
        if len(matching) > 1:
            raise ValueError(f"Path '{key}' matches multiple dtype policy specification keys: {matching}. Please "
                             "make sure each path only matches at most one dtype policy specification key in the "
                             "DTypePolicyMap.")
        return self._policy_map[matching[0]] if matching else self.default_policy

    def __setitem__(self, key, policy):
        if key in self._policy_map:
            raise ValueError(f"{key} already exist in the DTypePolicyMap with value {self._policy_map[key]}. Please "
                             "make sure to not use duplicated keys.")
        try:
            policy = get(policy)
        except (TypeError, ValueError):
            raise ValueError("Cannot interpret the assigned value by `keras.dtype_policies.get`. Received: "
                             f"{policy} of type {type(policy)}") from None
        self._policy_map[key] = policy

    def __delitem__(self, key):
        return self._policy_map.pop(key)

    def __contains__(self, key):
        return key in self._policy_map

    def __len__(self):
        return len(self._policy_map)

    def __iter__(self):
        return iter(self._policy_map)

    def keys(self):
        return self._policy_map.keys()

    def items(self):
        return self._policy_map.items()

    def get_config(self):
        return {"default_policy": self._default_policy_arg,
                "policy_map": {key: serialize(value) for key, value in self._policy_map.items()}}

    @classmethod
    def from_config(cls, config):
        return cls(default_policy=config.get("default_policy"), policy_map=config.get("policy_map"))

    def __eq__(self, other):
        # Keras 3.15 compares maps by a name attribute they lack (an AttributeError); a map is a mutable mapping,
        # so here it equals only itself.
        return self is other

    def __hash__(self):
        return id(self)

    def __repr__(self):
        mapping = [(key, value.name) for key, value in self._policy_map.items()]
        return f"<DTypePolicyMap at {hex(id(self))} default_policy={self._default_policy.name}, mapping={mapping}>"


_global_policy = None


def set_dtype_policy(policy):
    """Set the global policy: the policy of layers made without ``dtype=`` (Keras's
    ``keras.config.set_dtype_policy``); a name or a ``DTypePolicy``."""
    global _global_policy
    if isinstance(policy, str):
        policy = _quantized_policy(policy, "set_dtype_policy") if policy.startswith(QUANTIZATION_MODES) else \
            DTypePolicy(policy)
    elif not isinstance(policy, DTypePolicy):
        raise ValueError("Invalid `policy` argument. Expected the string name of a policy (such as "
                         f"'mixed_float16') or a `DTypePolicy` instance. Received: policy={policy!r} "
                         f"(of type {type(policy).__name__})")
    _global_policy = policy


def dtype_policy():
    """The global policy: the one ``set_dtype_policy`` set, else ``DTypePolicy(floatx())`` (which follows
    ``set_floatx``, as gpu_dl's layers took floatx before policies existed)."""
    if _global_policy is not None:
        return _global_policy
    floatx = backend_config.floatx()
    if floatx not in _floatx_policies:
        _floatx_policies[floatx] = DTypePolicy(floatx)
    return _floatx_policies[floatx]


_floatx_policies: dict = {}


def _clear():
    """Forget the policy ``set_dtype_policy`` set (``clear_session``, as Keras's drops it with its global
    state): the global policy is floatx's again."""
    global _global_policy
    _global_policy = None


def serialize(policy):
    """Keras's serialized form of a policy."""
    if isinstance(policy, (QuantizedDTypePolicy, DTypePolicyMap)):
        return {"module": "keras.dtype_policies", "class_name": type(policy).__name__, "config": policy.get_config(),
                "registered_name": None}
    return {"module": "keras", "class_name": "DTypePolicy", "config": policy.get_config(), "registered_name": None}


_POLICY_CLASSES = ("DTypePolicy", "FloatDTypePolicy")
QUANTIZED_POLICY_CLASSES = ("QuantizedDTypePolicy", "Int4DTypePolicy", "QuantizedFloat8DTypePolicy", "DTypePolicyMap",
                            "AWQDTypePolicy", "GPTQDTypePolicy")


def deserialize(config):
    """A policy from Keras's serialized form (``{"class_name": "DTypePolicy", "config": {"name": ...}}``)."""
    inner = config.get("config") if isinstance(config, dict) else None
    if isinstance(inner, dict) and config.get("class_name") == "DTypePolicyMap" and \
            set(inner) <= {"default_policy", "policy_map"}:
        return DTypePolicyMap.from_config(inner)
    if isinstance(inner, dict) and config.get("class_name") in QUANTIZED_POLICY_CLASSES and \
            set(inner) == {"mode", "source_name"}:
        cls = {"Int4DTypePolicy": Int4DTypePolicy, "AWQDTypePolicy": AWQDTypePolicy,
               "GPTQDTypePolicy": GPTQDTypePolicy}.get(config["class_name"], QuantizedDTypePolicy)
        return cls(inner["mode"], inner["source_name"])
    if isinstance(inner, dict) and config.get("class_name") == "QuantizedFloat8DTypePolicy" and \
            set(inner) <= {"mode", "source_name", "amax_history_length"} and {"mode", "source_name"} <= set(inner):
        return QuantizedFloat8DTypePolicy(**inner)
    name = inner.get("name") if isinstance(inner, dict) else None
    if not isinstance(config, dict) or config.get("class_name") not in _POLICY_CLASSES or not isinstance(name, str):
        raise ValueError("A dtype policy given as a dict must be a serialized DTypePolicy such as "
                         f"{{'class_name': 'DTypePolicy', 'config': {{'name': 'mixed_float16'}}}}, got {config!r}.")
    return DTypePolicy(name)


def get(identifier, where="dtype"):
    """The policy ``identifier`` names: None (the global policy), a ``DTypePolicy``, a policy or dtype name (a
    string, a NumPy dtype, Python's ``float``), or Keras's serialized policy; else a clear error naming
    ``where``."""
    if identifier is None:
        return dtype_policy()
    if isinstance(identifier, DTypePolicy):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if identifier is float:
        identifier = backend_config.floatx()
    if not isinstance(identifier, str):
        try:
            identifier = numpy.dtype(getattr(identifier, "name", identifier)).name
        except TypeError:
            raise TypeError(f"{where} must be a dtype policy or a float dtype such as 'float32' or "
                            f"'mixed_float16', got {identifier!r}.") from None
    if identifier.startswith(QUANTIZATION_MODES):
        return _quantized_policy(identifier, where)
    try:
        return DTypePolicy(identifier)
    except ValueError as e:
        raise ValueError(f"{where}: {str(e).split(': ', 1)[1]}") from None


# ---------------------------------------------------------------- autocast of variables
# The float dtype float variables read as within the call (and backward) of a layer whose policy computes in
# another dtype than it keeps its weights in; None: as they are (Keras's AutocastScope).
_autocast_dtype: contextvars.ContextVar = contextvars.ContextVar("gpu_dl_autocast_dtype", default=None)


def autocast_dtype():
    """The dtype float variables read as here (``Variable.value``), or None."""
    return _autocast_dtype.get()


@contextlib.contextmanager
def autocast_scope(dtype):
    """Within it, float variables made with ``autocast=True`` read as ``dtype`` (None: as they are)."""
    token = _autocast_dtype.set(dtype)
    try:
        yield
    finally:
        _autocast_dtype.reset(token)


def layer_scope_dtype(layer):
    """The autocast dtype a call of ``layer`` runs under, as Keras's ``Layer.__call__`` chooses it: inside an
    autocasting call, None for a layer that does not autocast or computes in a non-float dtype and the layer's
    compute dtype otherwise; elsewhere its compute dtype where its dtypes are mixed; ``...`` where the scope is
    left as it is."""
    current = _autocast_dtype.get()
    compute = layer.compute_dtype
    if current is not None:
        if not layer.autocast or numpy.dtype(compute).kind != "f":
            return None
        return ... if current == compute else compute
    return compute if compute != layer.variable_dtype else ...

