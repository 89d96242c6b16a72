"""``TextVectorization``, Keras 3's preprocessing layer that turns strings into token indices or token vectors.

Each string goes through, as Keras (with TensorFlow's string ops) takes it:

1. ``standardize``: ``"lower_and_strip_punctuation"`` (default), ``"lower"``, ``"strip_punctuation"`` or None;
   lowering is ASCII-only, as ``tf.strings.lower`` does, and the punctuation stripped is Keras's set
   ``!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'``. A callable takes a NumPy array of str (as Keras gives one on
   backends other than TensorFlow) and returns an array of str of the same shape, in place of the built-in step.
2. ``split``: ``"whitespace"`` (default: runs of ASCII whitespace, ``tf.strings.split``), ``"character"``
   (Unicode code points) or None (each string is one token). Inputs are ``(batch,)`` or ``(batch, 1)``. A
   callable takes the rank-1 array of standardized str and returns one sequence of tokens per string.
3. ``ngrams``: an integer ``n`` (widths ``1..n``) or a tuple of widths; each row's tokens become its n-grams
   for each width in order, joined by a space (``tf.strings.ngrams``; rows shorter than a width give none).
4. The lookup, a ``StringLookup`` with mask token ``""`` (index 0, the padding) and one OOV index (1):
   ``"int"`` gives int64 indices padded with 0 to the longest row, or cut/padded to ``output_sequence_length``;
   ``"multi_hot"``, ``"count"``, ``"tf_idf"`` (and ``"one_hot"``) give float32 vectors of ``vocabulary_size()``
   (``max_tokens`` with ``pad_to_max_tokens``).

``adapt`` runs the same steps and learns the lookup's vocabulary (and idf weights). The text work is host work;
the outputs go to the current device. Files are Keras's: the vocabulary asset and idf weights of an adapted
layer are written for the layer and for its ``_lookup_layer``, as Keras's saving writes both.
"""
from __future__ import annotations

import contextlib
import itertools
import numbers
import re

import numpy

from .. import backend
from ..backend import array_module
from .base import Layer
from .string_lookup import StringLookup, decoded
from .text_inputs import host_array

STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
SPLIT = ("whitespace", "character")
MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")
PUNCTUATION = re.compile(r'[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~\']')
ASCII_WHITESPACE = re.compile(r"[ \t\n\v\f\r]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _string_or_callable(value, allowed, what, where):
    if value is None or callable(value) or (isinstance(value, str) and value in allowed):
        return value
    raise ValueError(f"{where}: `{what}` must be one of {', '.join(repr(a) for a in allowed)}, None or a callable. "
                     f"Received: {what}={value!r}")


class TextVectorization(Layer):
    """Keras 3's ``TextVectorization`` (see the module docstring). Input: strings, ``(batch,)`` or
    ``(batch, 1)`` (any shape with ``split=None``); no weights, no input gradient."""

    supports_jit = False        # as Keras's layer (Layer.supports_jit)

    fixed_input_axes = ()
    keeps_input_dtype = True
    reads_text = True       # a Sequential starting with it takes text data as it is

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation", split="whitespace", ngrams=None,
                 output_mode="int", output_sequence_length=None, pad_to_max_tokens=False, vocabulary=None,
                 idf_weights=None, sparse=False, ragged=False, encoding="utf-8", name=None, vocabulary_size=None,
                 **kwargs):
        kwargs.pop("has_input_vocabulary", None)
        super().__init__(name=name, **kwargs)
        where = self._where
        if sparse:
            raise ValueError(f"{where}: sparse=True is not supported (gpu_dl has no sparse tensors; Keras allows it "
                             "on TensorFlow only).")
        if ragged:
            raise ValueError(f"{where}: ragged=True is not supported (gpu_dl has no ragged tensors; Keras allows it "
                             "on TensorFlow only).")
        self._standardize = _string_or_callable(standardize, STANDARDIZE, "standardize", where)
        self._split = _string_or_callable(split, SPLIT, "split", where)
        if output_mode == "binary":
            output_mode = "multi_hot"
        if output_mode == "tf-idf":
            output_mode = "tf_idf"
        if not isinstance(output_mode, str) or output_mode not in MODES:
            raise ValueError(f"{where}: unknown output_mode {output_mode!r}; expected one of "
                             f"{', '.join(repr(m) for m in MODES)}.")
        if isinstance(ngrams, list):
            ngrams = tuple(ngrams)
        valid_width = (lambda n: isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1)
        if not (ngrams is None or valid_width(ngrams)
                or (isinstance(ngrams, tuple) and ngrams and all(valid_width(n) for n in ngrams))):
            raise ValueError(f"{where}: `ngrams` must be None, an integer, or a tuple of integers (each >= 1). "
                             f"Received: ngrams={ngrams!r}")
        if output_mode == "int" and not (output_sequence_length is None or (
                isinstance(output_sequence_length, numbers.Integral) and not isinstance(output_sequence_length, bool)
                and output_sequence_length >= 1)):
            raise ValueError(f"{where}: `output_sequence_length` must be either None or a positive integer when "
                             f"`output_mode` is 'int'. Received: output_sequence_length={output_sequence_length!r}")
        if output_mode != "int" and output_sequence_length is not None:
            raise ValueError(f"{where}: `output_sequence_length` must not be set if `output_mode` is not 'int'. "
                             f"Received output_sequence_length={output_sequence_length!r}.")
        self._ngrams_arg = ngrams
        self._ngrams = tuple(range(1, int(ngrams) + 1)) if isinstance(ngrams, numbers.Integral) else ngrams
        self._output_mode = output_mode
        self._output_sequence_length = None if output_sequence_length is None else int(output_sequence_length)
        self._encoding = encoding
        self._ragged = False
        # Not a tracked sublayer: its vocabulary and idf weights are written by this layer, at Keras's paths.
        with self._errors_as_own():
            object.__setattr__(self, "_lookup_layer", StringLookup(
                max_tokens=max_tokens, vocabulary=vocabulary, idf_weights=idf_weights,
                pad_to_max_tokens=pad_to_max_tokens, mask_token="", output_mode=output_mode, encoding=encoding,
                vocabulary_size=vocabulary_size))

    @property
    def _where(self):
        return f"TextVectorization layer '{self.name}'"

    @contextlib.contextmanager
    def _errors_as_own(self):
        """The lookup's ValueErrors and TypeErrors, named as this layer's (the lookup is part of it)."""
        try:
            yield
        except (ValueError, TypeError) as e:
            text = re.sub(r"^StringLookup layer '[^']*'", self._where, str(e))
            raise (ValueError if isinstance(e, ValueError) else TypeError)(text) from None

    # ------------------------------------------------------------------ vocabulary
    def get_vocabulary(self, include_special_tokens=True):
        """The token of each index (``""`` for the padding index 0 and ``"[UNK]"`` for the OOV index 1 in int
        mode)."""
        return self._lookup_layer.get_vocabulary(include_special_tokens)

    def vocabulary_size(self):
        return self._lookup_layer.vocabulary_size()

    def set_vocabulary(self, vocabulary, idf_weights=None):
        """Set the tokens (and in tf_idf mode their idf weights), as ``StringLookup.set_vocabulary``."""
        with self._errors_as_own():
            self._lookup_layer.set_vocabulary(vocabulary, idf_weights=idf_weights)

    def adapt(self, data, batch_size=None, steps=None):
        """Learn the vocabulary (and in tf_idf mode the idf weights) of the standardized, split strings of
        ``data``: an array or list (one batch) or an iterable of batches (``steps`` of them at most)."""
        if self._lookup_layer.input_vocabulary is not None:
            raise ValueError(f"{self._where}: cannot adapt the layer after setting a static vocabulary via the "
                             "`vocabulary` argument.")
        if isinstance(data, (list, tuple)) or (hasattr(data, "shape") and hasattr(data, "dtype")):
            batch = self._host_strings(data)
            batches = iter([self._tokens(batch.reshape(-1, 1) if batch.ndim == 1 else batch)])
        elif isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__"):
            raise TypeError(f"{self._where}: adapt() takes an array, a list or an iterable of batches, got "
                            f"{type(data).__name__}.")
        else:
            given = data if steps is None else itertools.islice(data, steps)
            batches = (self._tokens(self._host_strings(b[0] if isinstance(b, tuple) else b)) for b in given)
        with self._errors_as_own():
            self._lookup_layer.adapt(batches)

    # ------------------------------------------------------------------ the steps
    def _host_strings(self, x):
        array = host_array(x, self._where)
        if array.dtype.kind != "O":
            raise TypeError(f"{self._where}: takes strings, got an array of {array.dtype}.")
        return decoded(array, self._encoding, self._where)

    def _standardized(self, x):
        if callable(self._standardize):
            result = self._standardize(x.astype(str))
            result = numpy.asarray(backend.to_numpy(result) if hasattr(result, "dtype") else result)
            if result.shape != x.shape:
                raise ValueError(f"{self._where}: the `standardize` callable must return an array of the input's "
                                 f"shape {x.shape}, got {result.shape}.")
            return decoded(result.astype(object), self._encoding, f"{self._where}: the standardize callable's output")
        flat = x.reshape(-1).tolist()
        if self._standardize in ("lower", "lower_and_strip_punctuation"):
            flat = [s.translate(_ASCII_LOWER) for s in flat]
        if self._standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
            flat = [PUNCTUATION.sub("", s) for s in flat]
        out = numpy.empty(len(flat), object)
        out[:] = flat
        return out.reshape(x.shape)

    def _split_rows(self, x):
        """The token lists of the strings ``x`` (rank 1)."""
        if self._split == "whitespace":
            return [[t for t in ASCII_WHITESPACE.split(s) if t] for s in x]
        if self._split == "character":
            return [list(s) for s in x]
        rows = self._split(x)
        if hasattr(rows, "to_list"):
            rows = rows.to_list()
        rows = [[t.decode(self._encoding) if isinstance(t, bytes) else t for t in
                 (r.tolist() if hasattr(r, "tolist") else list(r))] for r in rows]
        if len(rows) != len(x) or not all(isinstance(t, str) for r in rows for t in r):
            raise ValueError(f"{self._where}: the `split` callable must return one sequence of str tokens per "
                             f"input string ({len(x)}).")
        return rows

    def _ngram_rows(self, rows):
        out = []
        for row in rows:
            grams = []
            for width in self._ngrams:
                grams.extend(" ".join(row[i:i + width]) for i in range(len(row) - width + 1))
            out.append(grams)
        return out

    def _tokens(self, x):
        """The strings ``x`` standardized, split and made n-grams of: an object array of tokens, rows padded with
        the mask token ``""`` (with ``split=None``: shaped as ``x``)."""
        x = self._standardized(x)
        if self._split is None:
            if self._ngrams is None:
                return x
            rows = [[s] for s in x.reshape(-1)]     # each string a one-token row
        else:
            if x.ndim > 1:
                if x.shape[-1] != 1:
                    raise ValueError(f"{self._where}: when tokenizing strings the input rank must be 1 or the last "
                                     f"dimension must be 1. Received: inputs.shape={x.shape}")
                x = x.reshape(x.shape[:-1])
            if x.ndim != 1:
                raise ValueError(f"{self._where}: takes a batch of strings, (batch,) or (batch, 1); got shape "
                                 f"{x.shape}.")
            rows = self._split_rows(x)
        if self._ngrams is not None:
            rows = self._ngram_rows(rows)
        lengths = numpy.array([len(r) for r in rows], numpy.int64)
        matrix = numpy.full((len(rows), int(lengths.max(initial=0))), "", dtype=object)
        flat = numpy.empty(int(lengths.sum()), object)
        flat[:] = [t for r in rows for t in r]
        matrix[numpy.arange(matrix.shape[1])[None, :] < lengths[:, None]] = flat
        return matrix

    # ------------------------------------------------------------------ call
    def _as_input(self, x):
        return host_array(x, self._where)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self._output_mode == "int":
            return (input_shape[0] if input_shape else None, self._output_sequence_length)
        return ((input_shape[0] if input_shape else None), self._lookup_layer.depth)

    def _symbolic_dtype(self):
        return "int64" if self._output_mode == "int" else "float32"

    def call(self, x, training=False):
        if x.dtype.kind != "O":
            raise TypeError(f"{self._where}: takes strings, got an array of {x.dtype}.")
        scalar = x.ndim == 0
        tokens = self._tokens(decoded(x.reshape(1) if scalar else x, self._encoding, self._where))
        with self._errors_as_own():
            out = self._lookup_layer.call(tokens)
        # as Keras's lookup: called once, its vocabulary size is fixed in the vector modes without padding
        self._lookup_layer.built = True
        if self._output_mode == "int" and self._output_sequence_length is not None:
            length = self._output_sequence_length
            out = out[..., :length]
            if out.shape[-1] < length:
                xp = array_module(out)
                pad = [(0, 0)] * (out.ndim - 1) + [(0, length - out.shape[-1])]
                out = xp.pad(out, pad)
        return out[0] if scalar and self._output_mode == "int" else out

    def backward(self, dy):
        return None

    # ------------------------------------------------------------------ saving
    @property
    def state_variables(self):
        """The tf-idf weights, kept in the file as Keras keeps them (also under ``_lookup_layer``)."""
        return self._lookup_layer.state_variables

    def weight_groups(self, path):
        """Keras's groups: this layer's, then its lookup layer's (``_lookup_layer``), both with the idf weights."""
        own = self._lookup_layer.state_variables
        return [(path, self.name, own), (f"{path}/_lookup_layer", self._lookup_layer.name, own)]

    def asset_files(self):
        """The lookup's vocabulary asset, for this layer and (as Keras writes it too) for ``_lookup_layer``."""
        files = self._lookup_layer.asset_files()
        return {**files, **{f"_lookup_layer/{name}": text for name, text in files.items()}}

    def load_asset_files(self, read):
        self._lookup_layer.load_asset_files(read)

    def get_config(self):
        lookup = self._lookup_layer
        return {**super().get_config(), "max_tokens": lookup.max_tokens, "standardize": self._config_callable(
            self._standardize), "split": self._config_callable(self._split), "ngrams": self._ngrams_arg,
            "output_mode": self._output_mode, "output_sequence_length": self._output_sequence_length,
            "pad_to_max_tokens": lookup.pad_to_max_tokens, "sparse": False, "ragged": False,
            "vocabulary": lookup.input_vocabulary, "idf_weights": lookup.input_idf_weights,
            "encoding": self._encoding, "vocabulary_size": self.vocabulary_size()}

    @staticmethod
    def _config_callable(value):
        if value is None or isinstance(value, str):
            return value
        from .. import saving
        return saving.serialize_keras_object(value)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("standardize", "split"):
            if isinstance(config.get(key), dict):
                from .. import saving
                config[key] = saving.deserialize_keras_object(config[key])
        if isinstance(config.get("ngrams"), list):
            config["ngrams"] = tuple(config["ngrams"])
        return cls(**config)
