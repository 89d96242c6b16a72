"""``FeatureSpace``, Keras 3's ``keras.utils.FeatureSpace``: one object that preprocesses and encodes a dict of
structured-data features (numbers, integer and string categories) into one vector per sample, or a dict of them.

Each feature is a ``Feature(dtype, preprocessor, output_mode)``: a preprocessing layer (``Normalization``,
``Rescaling``, ``Discretization``, ``IntegerLookup``, ``StringLookup``, ``Hashing``, or one of the caller's) and
how its output is encoded: ``"float"`` (as it is), ``"int"`` (the integer ids as they are) or ``"one_hot"``
(the ids as ``CategoryEncoding(num_tokens, "multi_hot")`` vectors, ``num_tokens`` the preprocessor's
vocabulary size or number of bins). A ``Cross`` hashes the preprocessed values of two or more features
together (``HashedCrossing(crossing_dim)``), one-hot encoded by default. In ``"concat"`` mode the encoded
features are joined along the last axis, the features by sorted name first, then the crosses by sorted name,
as Keras orders them; in ``"dict"`` mode they come back keyed by those names.

``adapt(data)`` adapts every preprocessor that learns from data (lookups without a given vocabulary,
``Normalization`` without a given mean and variance, ``Discretization`` with ``num_bins``, a caller's layer with
an ``adapt``), each on its feature's values in batches of shape ``(batch, 1)``. ``data`` is one of:

- a dict of arrays or lists, one row per sample (Keras's ``Dataset.from_tensor_slices(dict)``): cut into
  batches of 32 rows, as Keras batches it;
- an iterable of dicts (a generator, a list, a ``PyDataset``, any data set that yields dicts) or of
  ``(dict, labels)`` / ``(dict, labels, sample_weights)`` tuples, as gpu_dl's data sets yield them: each dict
  is a batch, or with scalar values one sample (samples are then grouped 32 at a time, as Keras batches an
  unbatched data set). The iterable is read once.

Calling the FeatureSpace on a dict of arrays (a batch: rank 1, or rank 2 with one column) gives the encoded
batch; on a dict of scalars (one sample) it gives that sample's vector without the batch axis. The outputs are
arrays on the current device. ``get_inputs()`` and ``get_encoded_features()`` give the symbolic ``Input`` of
each feature and the encoded tensor(s) made from them by the same layers, to build a functional model on top:
``Model(fs.get_inputs(), Dense(1)(fs.get_encoded_features()))`` trains end to end on dicts of raw features.

``save("fs.keras")`` writes the archive Keras writes for a FeatureSpace (its config, the ``Normalization``
statistics under ``preprocessors/normalization/vars``, adapted vocabularies as
``assets/preprocessors/<string_lookup|integer_lookup>/vocabulary.txt``); ``gpu_dl.models.load_model`` reads
it back, and Keras reads gpu_dl's files and the other way round.
"""
from __future__ import annotations

import numbers

import numpy

from .. import backend
from ..layers.base import Layer, unique_name
from ..layers.merging import Concatenate

FEATURE_TYPES = ("float", "float_normalized", "float_rescaled", "float_discretized", "integer_categorical",
                 "string_categorical", "integer_hashed", "string_hashed")
FEATURE_OUTPUT_MODES = ("int", "one_hot", "float")
CROSS_OUTPUT_MODES = ("int", "one_hot")
# Keras groups the rows of an unbatched data set (a dict of columns, or samples) into batches of this size.
ADAPT_BATCH_SIZE = 32
# Where Keras's own classes of FeatureSpace live in its files.
KERAS_MODULE = "keras.src.layers.preprocessing.feature_space"


def _positive_int(value, what, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{where}: `{what}` must be a positive integer, got {value!r}.")
    return int(value)


class Cross:
    """A feature cross: ``feature_names`` (two or more) hashed together into ``crossing_dim`` bins, encoded as
    ``output_mode`` (``"one_hot"`` or ``"int"``). Its name is the feature names joined by ``"_X_"``."""

    def __init__(self, feature_names, crossing_dim, output_mode="one_hot"):
        if output_mode not in CROSS_OUTPUT_MODES:
            raise ValueError("Invalid value for argument `output_mode`. Expected one of {'int', 'one_hot'}. "
                             f"Received: output_mode={output_mode!r}")
        if isinstance(feature_names, str) or not isinstance(feature_names, (list, tuple)) or \
                len(feature_names) < 2 or not all(isinstance(n, str) for n in feature_names):
            raise ValueError("A feature cross needs `feature_names`: a tuple of two or more feature names, got "
                             f"{feature_names!r}.")
        self.feature_names = tuple(feature_names)
        self.crossing_dim = _positive_int(crossing_dim, "crossing_dim", f"cross {self.name!r}")
        self.output_mode = output_mode

    @property
    def name(self):
        return "_X_".join(self.feature_names)

    def get_config(self):
        return {"feature_names": self.feature_names, "crossing_dim": self.crossing_dim,
                "output_mode": self.output_mode}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"Cross(feature_names={self.feature_names}, crossing_dim={self.crossing_dim}, " \
               f"output_mode={self.output_mode!r})"


class Feature:
    """One feature: the ``dtype`` of its input (``"float32"``, ``"int32"``, ``"string"``...), the ``preprocessor``
    layer that maps it, and the encoding of the preprocessor's output (``output_mode``: ``"float"``, ``"int"``
    or ``"one_hot"``)."""

    def __init__(self, dtype, preprocessor, output_mode):
        if output_mode not in FEATURE_OUTPUT_MODES:
            raise ValueError("Invalid value for argument `output_mode`. Expected one of {'int', 'one_hot', "
                             f"'float'}}. Received: output_mode={output_mode!r}")
        if isinstance(preprocessor, dict):
            preprocessor = _layer_from_entry(preprocessor, "Feature: preprocessor")
        if not callable(preprocessor):
            raise TypeError(f"Feature: `preprocessor` must be a layer (a callable), got {preprocessor!r:.100} of type "
                            f"{type(preprocessor).__name__}.")
        if not isinstance(dtype, str):
            raise TypeError(f"Feature: `dtype` must be a dtype name such as 'float32', 'int32' or 'string', got "
                            f"{dtype!r}.")
        self.dtype = dtype
        self.preprocessor = preprocessor
        self.output_mode = output_mode

    def get_config(self):
        return {"dtype": self.dtype, "preprocessor": _layer_entry(self.preprocessor), "output_mode": self.output_mode}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"Feature(dtype={self.dtype!r}, preprocessor={self.preprocessor!r}, output_mode={self.output_mode!r})"


class TFDIdentity(Layer):
    """The preprocessor of a plain ``"float"`` feature: its input as it is (cast to the layer's float dtype), under
    the class name and module Keras's files give it."""

    keras_module = KERAS_MODULE

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, x, training=False):
        return x

    def backward(self, dy):
        return dy


class TFDConcat(Concatenate):
    """The layer joining the encoded features in ``"concat"`` mode: ``Concatenate`` under the class name and module
    Keras's files give it."""

    keras_module = KERAS_MODULE


# ------------------------------------------------------------------ layer entries (Keras's file format)
def _layer_entry(layer):
    from ..models.keras_config import _layer_entry as entry_of
    return entry_of(layer)


def _layer_from_entry(entry, where, custom=None):
    from ..models.keras_config import _decode, _layer_from_entry as layer_of
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise ValueError(f"{where}: expected a serialized layer (a dict with 'class_name' and 'config'), got "
                         f"{entry!r:.200}.")
    return layer_of(_decode(entry, where, custom), where, custom)


class FeatureSpace(Layer):
    """Keras 3's ``FeatureSpace(features, output_mode="concat", crosses=None, crossing_dim=32, hashing_dim=32,
    num_discretization_bins=32, name=None)`` (see the module docstring).

    ``features`` maps each feature name to a type name (one of ``FEATURE_TYPES``, with the default arguments)
    or to a ``Feature`` from the constructors below; ``crosses`` lists tuples of feature names (crossed into
    ``crossing_dim`` bins) or ``FeatureSpace.cross(...)`` objects. ``preprocessors`` maps each feature name to
    its layer, ``crossers`` each cross name to its ``HashedCrossing``.
    """

    # ------------------------------------------------------------------ feature constructors
    @classmethod
    def cross(cls, feature_names, crossing_dim, output_mode="one_hot"):
        return Cross(feature_names, crossing_dim, output_mode=output_mode)

    @classmethod
    def feature(cls, dtype, preprocessor, output_mode):
        return Feature(dtype, preprocessor, output_mode)

    @classmethod
    def float(cls, name=None):
        name = name or unique_name("float")
        return Feature("float32", TFDIdentity(dtype="float32", name=f"{name}_preprocessor"), "float")

    @classmethod
    def float_rescaled(cls, scale=1.0, offset=0.0, name=None):
        from ..layers import Rescaling
        name = name or unique_name("float_rescaled")
        return Feature("float32", Rescaling(scale=scale, offset=offset, name=f"{name}_preprocessor"), "float")

    @classmethod
    def float_normalized(cls, name=None):
        from ..layers import Normalization
        name = name or unique_name("float_normalized")
        return Feature("float32", Normalization(axis=-1, name=f"{name}_preprocessor"), "float")

    @classmethod
    def float_discretized(cls, num_bins, bin_boundaries=None, output_mode="one_hot", name=None):
        from ..layers import Discretization
        name = name or unique_name("float_discretized")
        return Feature("float32", Discretization(num_bins=num_bins, bin_boundaries=bin_boundaries,
                                                 name=f"{name}_preprocessor"), output_mode)

    @classmethod
    def integer_categorical(cls, max_tokens=None, num_oov_indices=1, output_mode="one_hot", name=None):
        from ..layers import IntegerLookup
        name = name or unique_name("integer_categorical")
        return Feature("int32", IntegerLookup(name=f"{name}_preprocessor", max_tokens=max_tokens,
                                              num_oov_indices=num_oov_indices), output_mode)

    @classmethod
    def string_categorical(cls, max_tokens=None, num_oov_indices=1, output_mode="one_hot", name=None):
        from ..layers import StringLookup
        name = name or unique_name("string_categorical")
        return Feature("string", StringLookup(name=f"{name}_preprocessor", max_tokens=max_tokens,
                                              num_oov_indices=num_oov_indices), output_mode)

    @classmethod
    def string_hashed(cls, num_bins, output_mode="one_hot", name=None):
        from ..layers import Hashing
        name = name or unique_name("string_hashed")
        return Feature("string", Hashing(name=f"{name}_preprocessor", num_bins=num_bins), output_mode)

    @classmethod
    def integer_hashed(cls, num_bins, output_mode="one_hot", name=None):
        from ..layers import Hashing
        name = name or unique_name("integer_hashed")
        return Feature("int32", Hashing(name=f"{name}_preprocessor", num_bins=num_bins), output_mode)

    # ------------------------------------------------------------------ construction
    def __init__(self, features, output_mode="concat", crosses=None, crossing_dim=32, hashing_dim=32,
                 num_discretization_bins=32, name=None, **kwargs):
        # A saved config's layer keys (Keras writes none, but a caller's may hold them).
        kwargs.pop("trainable", None)
        kwargs.pop("dtype", None)
        super().__init__(name=name, **kwargs)
        if not features:
            raise ValueError("The `features` argument cannot be None or empty.")
        if not isinstance(features, dict) or not all(isinstance(k, str) for k in features):
            raise ValueError("FeatureSpace: `features` must be a dict mapping feature names (strings) to feature "
                             f"types, got {features!r:.200}.")
        if output_mode not in ("dict", "concat"):
            raise ValueError("Invalid value for argument `output_mode`. Expected one of {'dict', 'concat'}. "
                             f"Received: output_mode={output_mode!r}")
        self.crossing_dim = crossing_dim
        self.hashing_dim = hashing_dim
        self.num_discretization_bins = num_discretization_bins
        self.output_mode = output_mode
        self.features = {key: self._standardize_feature(key, value) for key, value in features.items()}
        self.crosses = []
        for cross in crosses or ():
            if isinstance(cross, dict):
                cross = _cross_from_entry(cross)
            if not isinstance(cross, Cross):
                if not crossing_dim:
                    raise ValueError("When specifying `crosses`, the argument `crossing_dim` (dimensionality of the "
                                     "crossing space) should be specified as well.")
                cross = Cross(cross, crossing_dim=crossing_dim)
            unknown = [n for n in cross.feature_names if n not in self.features]
            if unknown:
                raise ValueError("All features referenced in the `crosses` argument should be present in the "
                                 f"`features` dict. Received unknown features {unknown} in the cross "
                                 f"{cross.feature_names}; the features are {sorted(self.features)}.")
            if cross.name in self.features or any(c.name == cross.name for c in self.crosses):
                raise ValueError(f"FeatureSpace: the cross {cross.feature_names} is named {cross.name!r}, which "
                                 "another feature or cross already is.")
            self.crosses.append(cross)
        self.crosses_by_name = {cross.name: cross for cross in self.crosses}
        from ..layers import HashedCrossing, Input
        self.inputs = {key: Input(shape=(1,), dtype=feature.dtype, name=key) for key, feature in self.features.items()}
        self.preprocessors = {key: feature.preprocessor for key, feature in self.features.items()}
        self.crossers = {cross.name: HashedCrossing(cross.crossing_dim, name=cross.name) for cross in self.crosses}
        self.one_hot_encoders = {}
        self.concat = None
        self.encoded_features = None
        self._is_adapted = False
        self._encoders_built = False
        self._sublayers_built = False

    def _standardize_feature(self, name, feature):
        if isinstance(feature, Feature):
            return feature
        if isinstance(feature, dict):
            return _feature_from_entry(feature, f"FeatureSpace: feature {name!r}")
        if not isinstance(feature, str) or feature not in FEATURE_TYPES:
            raise ValueError(f"Invalid feature type for feature {name!r}: {feature!r}. Expected one of "
                             f"{FEATURE_TYPES}, or a Feature from FeatureSpace.float(), .integer_categorical(), "
                             "... or .feature().")
        if feature == "float_discretized":
            return self.float_discretized(name=name, num_bins=self.num_discretization_bins)
        if feature in ("integer_hashed", "string_hashed"):
            return getattr(self, feature)(self.hashing_dim, name=name)
        return getattr(self, feature)(name=name)

    def __repr__(self):
        return f"<FeatureSpace name={self.name!r} features={list(self.features)} output_mode={self.output_mode!r}>"

    # ------------------------------------------------------------------ adapt
    def _list_adaptable_preprocessors(self):
        """The names of the features whose preprocessor learns from data (see the module docstring)."""
        from ..layers import Discretization, IntegerLookup, Normalization, TextVectorization
        names = []
        for key, preprocessor in self.preprocessors.items():
            if isinstance(preprocessor, Normalization) and preprocessor.input_mean is not None:
                continue
            if isinstance(preprocessor, IntegerLookup) and preprocessor.input_vocabulary is not None:
                continue
            if isinstance(preprocessor, Discretization) and preprocessor.num_bins is None:
                continue
            if isinstance(preprocessor, TextVectorization) and getattr(preprocessor, "_has_input_vocabulary", False):
                continue
            if callable(getattr(preprocessor, "adapt", None)):
                names.append(key)
        return names

    def adapt(self, dataset):
        """Adapt the preprocessors that learn from data on ``dataset`` (see the module docstring for what it may
        be), then build the encoding layers."""
        names = self._list_adaptable_preprocessors()
        columns = self._adapt_columns(dataset, names)
        # adapted again: the encoders are sized anew for the new vocabularies and bins
        self.one_hot_encoders = {}
        self.concat = None
        self.encoded_features = None
        self._encoders_built = self._sublayers_built = False
        from ..layers import Normalization
        for key in names:
            preprocessor = self.preprocessors[key]
            if isinstance(preprocessor, Normalization) and not preprocessor.built and columns[key]:
                # built for any batch size, as Keras builds it from a data set's (None, 1) spec
                preprocessor.ensure_built((None,) + columns[key][0].shape[1:])
            preprocessor.adapt(iter(columns[key]))
        self._is_adapted = True
        self.get_encoded_features()
        self.built = True
        self._sublayers_built = True

    def _adapt_columns(self, dataset, names):
        """``{feature name: [batches of shape (batch, 1) or wider]}`` of the features ``names``."""
        if isinstance(dataset, dict):
            columns = self._checked_columns(dataset, names, "adapt(): the data")
            lengths = {key: len(column) for key, column in columns.items()}
            if len(set(lengths.values())) > 1:
                raise ValueError(f"FeatureSpace.adapt(): the columns of the dict must have one row per sample, so "
                                 f"the same length; got lengths {lengths}.")
            return {key: [_as_rows(column[i:i + ADAPT_BATCH_SIZE])
                          for i in range(0, len(column), ADAPT_BATCH_SIZE)] for key, column in columns.items()}
        if isinstance(dataset, (str, bytes)) or not hasattr(dataset, "__iter__") or hasattr(dataset, "dtype"):
            raise ValueError("`adapt()` can only be called on a dict of arrays/lists (one row per sample) or an "
                             "iterable (a generator, a PyDataset, a data set) yielding dicts of batches or of single "
                             "samples, or (dict, labels) tuples. Received instead: "
                             f"{dataset!r:.100} (of type {type(dataset).__name__})")
        batches = {key: [] for key in names}
        samples = {key: [] for key in names}
        count = 0
        for index, element in enumerate(dataset):
            if isinstance(element, (tuple, list)) and element and isinstance(element[0], dict):
                element = element[0]        # (features, labels[, sample_weights]): the features
            if not isinstance(element, dict):
                raise ValueError(f"FeatureSpace.adapt(): element {index} of the data is a "
                                 f"{type(element).__name__}; each element must be a dict of features (or a "
                                 "(dict, labels) tuple).")
            columns = self._checked_columns(element, names, f"adapt(): element {index} of the data")
            for key, column in columns.items():
                if column.ndim == 0:
                    samples[key].append(column)
                else:
                    batches[key].append(_as_rows(column))
            count += 1
        if not count:
            raise ValueError("FeatureSpace.adapt(): the data yielded no elements to adapt on.")
        for key in names:
            values = samples[key]
            batches[key] += [_as_rows(numpy.stack(values[i:i + ADAPT_BATCH_SIZE]))
                             for i in range(0, len(values), ADAPT_BATCH_SIZE)]
        return batches

    def _checked_columns(self, data, names, what):
        missing = [key for key in names if key not in data]
        if missing:
            raise ValueError(f"FeatureSpace.{what} has no feature(s) {missing}; it holds {sorted(data)!r:.200}. "
                             "Each feature of the FeatureSpace needs a value.")
        return {key: _host_column(data[key], key, what) for key in names}

    # ------------------------------------------------------------------ symbolic graph
    def get_inputs(self):
        """The symbolic ``Input`` of each feature (shape ``(None, 1)``, the feature's dtype), keyed by name."""
        self._check_if_built()
        return self.inputs

    def get_encoded_features(self):
        """The encoded features made from ``get_inputs()`` by the FeatureSpace's layers: one symbolic tensor
        (``"concat"``) or a dict of them (``"dict"``)."""
        self._check_if_adapted()
        if self.encoded_features is None:
            preprocessed = self._preprocess_features(self.inputs)
            crossed = self._cross_features(preprocessed)
            self.encoded_features = self._merge_features(preprocessed, crossed)
        return self.encoded_features

    def _check_if_adapted(self):
        if not self._is_adapted:
            if self._list_adaptable_preprocessors():
                raise ValueError("You need to call `.adapt(dataset)` on the FeatureSpace before you can start using "
                                 "it (features to adapt: "
                                 f"{self._list_adaptable_preprocessors()}).")
            self._is_adapted = True

    def _check_if_built(self):
        if not self._sublayers_built:
            self._check_if_adapted()
            self.get_encoded_features()
            self.built = True
            self._sublayers_built = True

    def _preprocess_features(self, features):
        return {key: self.preprocessors[key](features[key]) for key in self.features}

    def _cross_features(self, features):
        return {cross.name: self.crossers[cross.name]([features[n] for n in cross.feature_names])
                for cross in self.crosses}

    def _ordered(self):
        """``[(name, spec)]`` in the order of the encoded features: features by sorted name, then crosses."""
        return [(key, self.features[key]) for key in sorted(self.features)] + \
            [(key, self.crosses_by_name[key]) for key in sorted(self.crosses_by_name)]

    def _cardinality(self, key, spec):
        """The number of ids a one-hot feature or cross takes; a ValueError where it is unknown."""
        from ..layers import Discretization, Hashing, IntegerLookup
        layer = self.crossers[key] if isinstance(spec, Cross) else self.preprocessors[key]
        if isinstance(spec, Cross):
            return layer.num_bins
        mode = getattr(layer, "output_mode", "int")
        if mode != "int" or getattr(layer, "invert", False):
            raise ValueError(f"Feature '{key}' has `output_mode='one_hot'`. Thus its preprocessor should return an "
                             f"integer dtype. Instead it returns encoded vectors (its output_mode={mode!r}"
                             f"{', invert=True' if getattr(layer, 'invert', False) else ''}).")
        if isinstance(layer, IntegerLookup):
            return layer.vocabulary_size()
        if isinstance(layer, Discretization):
            return layer.depth
        if isinstance(layer, Hashing):
            return layer.num_bins
        raise ValueError(f"Feature '{key}' has `output_mode='one_hot'`. However it isn't a standard feature and the "
                         "dimensionality of its output space is not known, thus it cannot be one-hot encoded. Try "
                         "using `output_mode='int'`.")

    def _build_encoders(self):
        from ..layers import CategoryEncoding
        for key, spec in self._ordered():
            if spec.output_mode == "one_hot":
                self.one_hot_encoders[key] = CategoryEncoding(num_tokens=self._cardinality(key, spec),
                                                              output_mode="multi_hot")
            elif self.output_mode == "concat" and spec.output_mode == "int":
                raise ValueError(f"Cannot concatenate features because feature '{key}' has not been encoded (it "
                                 "has output_mode='int', so integer ids). Consider using `output_mode='dict'`, or "
                                 "output_mode='one_hot' for this feature.")
        if self.output_mode == "concat":
            self.concat = TFDConcat(axis=-1)

    def _merge_features(self, preprocessed, crossed):
        if not self._encoders_built:
            self._build_encoders()
            self._encoders_built = True
        merged = {**preprocessed, **crossed}
        out = {}
        for key, _ in self._ordered():
            value = merged[key]
            encoder = self.one_hot_encoders.get(key)
            out[key] = encoder(value) if encoder is not None else value
        if self.output_mode == "dict":
            return out
        parts = list(out.values())
        return self.concat(parts) if len(parts) > 1 else parts[0]

    # ------------------------------------------------------------------ call
    def __call__(self, data):
        self._check_if_built()
        if not isinstance(data, dict):
            raise ValueError(f"A FeatureSpace can only be called with a dict. Received: data={data!r:.200} (of type "
                             f"{type(data).__name__})")
        missing = [key for key in self.features if key not in data]
        unknown = [key for key in data if key not in self.features]
        if missing or unknown:
            raise ValueError(f"FeatureSpace '{self.name}' takes a dict with the features {sorted(self.features)}; "
                             f"got {sorted(data)!r:.300}" + (f", missing {missing}" if missing else "")
                             + (f", with unknown keys {unknown}" if unknown else "") + ".")
        columns = {key: _host_column(data[key], key, "call: the data") for key in self.features}
        ranks = {key: c.ndim for key, c in columns.items()}
        single = all(r == 0 for r in ranks.values())
        if not single and any(r == 0 for r in ranks.values()):
            raise ValueError(f"FeatureSpace '{self.name}': call it on one sample (every value a scalar) or on a batch "
                             f"(every value an array of one row per sample); got the ranks {ranks}.")
        rows = {}
        for key, column in columns.items():
            if column.ndim > 2 or (column.ndim == 2 and column.shape[1] != 1):
                raise ValueError(f"FeatureSpace '{self.name}': feature {key!r} must be a scalar, a 1-D array or an "
                                 f"array of shape (batch, 1); got shape {column.shape}.")
            rows[key] = _as_rows(column.reshape(1) if single else column)
        sizes = {key: r.shape[0] for key, r in rows.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"FeatureSpace '{self.name}': the features of a batch must have the same number of rows; "
                             f"got {sizes}.")
        # numbers go to the current device, as a model's inputs do; strings stay host data
        prepared = {key: self._prepared(key, value) for key, value in rows.items()}
        prepared = {key: v if v.dtype.kind == "O" else backend.to_device(v) for key, v in prepared.items()}
        preprocessed = self._preprocess_features(prepared)
        merged = self._merge_features(preprocessed, self._cross_features(preprocessed))
        if single:
            if isinstance(merged, dict):
                return {key: v[0] if v.ndim == 2 and v.shape[0] == 1 else v for key, v in merged.items()}
            return merged[0]
        return merged

    def _prepared(self, key, rows):
        """A feature's rows as its preprocessor takes them: numbers for a float feature as float32; whole numbers
        for an integer feature as integers (kept as wide as they are: hashing bins 64-bit values as they are);
        strings as host arrays."""
        dtype = self.features[key].dtype
        if dtype == "string":
            if rows.dtype.kind != "O":
                raise ValueError(f"FeatureSpace '{self.name}': feature {key!r} takes strings; got {rows.dtype}.")
            return rows
        if rows.dtype.kind == "O":
            raise ValueError(f"FeatureSpace '{self.name}': feature {key!r} takes numbers (dtype {dtype}); got "
                             "strings.")
        kind = numpy.dtype(dtype).kind if dtype in numpy.sctypeDict else None
        if kind in ("i", "u") and rows.dtype.kind == "f":
            if not numpy.all(rows == numpy.round(rows)):
                raise ValueError(f"FeatureSpace '{self.name}': feature {key!r} takes integers (dtype {dtype}); got "
                                 "numbers with a fraction.")
            return rows.astype(numpy.int64)
        if kind == "f":
            return rows.astype(dtype, copy=False)
        return rows

    # ------------------------------------------------------------------ config and files
    def get_config(self):
        return {"features": {key: _feature_entry(f) for key, f in self.features.items()},
                "output_mode": self.output_mode,
                "crosses": [_cross_entry(c) for c in self.crosses],
                "crossing_dim": self.crossing_dim, "hashing_dim": self.hashing_dim,
                "num_discretization_bins": self.num_discretization_bins}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_build_config(self):
        return {key: (_build_config_of(f.preprocessor) or {}) for key, f in self.features.items()}

    def build_from_config(self, config):
        for key, build_config in (config or {}).items():
            preprocessor = self.preprocessors.get(key)
            if preprocessor is None or preprocessor.built or not build_config:
                continue
            shape = build_config.get("input_shape")
            if shape is not None:
                preprocessor.ensure_built(tuple(shape))
        self._is_adapted = True

    def save(self, filepath):
        """Write the FeatureSpace to a ``.keras`` file, as Keras writes it; ``gpu_dl.models.load_model`` (or
        Keras's) reads it back."""
        from .feature_space_files import save_feature_space
        save_feature_space(self, filepath)


def _build_config_of(layer):
    getter = getattr(layer, "get_build_config", None)
    return getter() if callable(getter) and getattr(layer, "built", False) else None


def _feature_entry(feature):
    return {"module": KERAS_MODULE, "class_name": "Feature", "config": feature.get_config(),
            "registered_name": "Feature"}


def _cross_entry(cross):
    config = cross.get_config()
    config["feature_names"] = list(config["feature_names"])
    return {"module": KERAS_MODULE, "class_name": "Cross", "config": config, "registered_name": "Cross"}


def _entry_config(entry, class_name, where):
    if not isinstance(entry, dict) or entry.get("class_name") != class_name or not isinstance(entry.get("config"),
                                                                                              dict):
        raise ValueError(f"{where}: expected a serialized {class_name} (a dict with class_name {class_name!r} and a "
                         f"config), got {entry!r:.200}.")
    return entry["config"]


def _feature_from_entry(entry, where, custom=None):
    config = dict(_entry_config(entry, "Feature", where))
    unknown = set(config) - {"dtype", "preprocessor", "output_mode"}
    if unknown:
        raise ValueError(f"{where}: a Feature's config takes dtype, preprocessor and output_mode; got also "
                         f"{sorted(unknown)}.")
    config["preprocessor"] = _layer_from_entry(config.get("preprocessor"), f"{where}: preprocessor", custom)
    return Feature(config.get("dtype"), config["preprocessor"], config.get("output_mode"))


def _cross_from_entry(entry, where="FeatureSpace: cross"):
    config = _entry_config(entry, "Cross", where)
    names = config.get("feature_names")
    if isinstance(names, dict) and names.get("class_name") == "__tuple__":
        names = (names.get("config") or {}).get("value")
    return Cross(names, config.get("crossing_dim"), config.get("output_mode", "one_hot"))


def _host_column(value, key, what):
    """One feature's values as a NumPy array (strings as an object array of str)."""
    from ..layers.text_inputs import host_array
    try:
        array = host_array(value, f"FeatureSpace {what}: feature {key!r}")
    except (TypeError, ValueError) as e:
        raise type(e)(str(e)) from None
    if array.dtype.kind == "O":
        flat = array.reshape(-1)
        if any(isinstance(v, bytes) for v in flat):
            decoded = numpy.empty(flat.shape, object)
            decoded[:] = [v.decode("utf-8") if isinstance(v, bytes) else v for v in flat]
            array = decoded.reshape(array.shape)
    return array


def _as_rows(column):
    """A column as rows of shape ``(batch, 1)`` (a wider array is kept as it is)."""
    return column.reshape(-1, 1) if column.ndim <= 1 else column


def is_feature_space_config(config):
    """Whether a ``config.json`` describes a FeatureSpace (Keras writes it under ``keras.utils``)."""
    return isinstance(config, dict) and config.get("class_name") == "FeatureSpace"
