"""``IntegerLookup``, Keras 3's preprocessing layer that maps integer tokens to contiguous vocabulary indices.

Indices, as Keras 3.15's ``IndexLookup`` numbers them: with ``output_mode="int"`` and a ``mask_token``, index 0
is the mask; then ``num_oov_indices`` out-of-vocabulary indices (a token not in the vocabulary goes to
``token % num_oov_indices`` among them, or with ``oov_method="farmhash"`` to the FarmHash64 bin of its decimal
text (SipHash-2-4 with a ``salt``), as TensorFlow bins it; with none, it is an error); then the vocabulary's
tokens in order. In the other modes the mask has no index (masked tokens add nothing to the encoded vectors).
``invert=True`` maps indices back to tokens (``oov_token`` for an OOV or unknown index, ``mask_token`` for 0
with a mask).

``adapt(data)`` counts tokens (the mask and OOV tokens left out) and orders the vocabulary by descending
count, ties by descending token (Keras's ``lexsort((tokens, counts))[::-1]``), keeping ``max_tokens`` minus
the special indices. An array is one batch whose rows are documents (a rank-1 array: one token per document,
as Keras expands it); another iterable yields batches (a rank-1 batch is one document). For ``"tf_idf"`` it
also learns ``idf = log(1 + documents / (1 + documents holding the token))`` (float32), the special indices
weighted by the mean idf, as Keras does.

Outputs: ``"int"`` int64 indices (or tokens, inverted) shaped as the input; ``"one_hot"``, ``"multi_hot"``,
``"count"`` int64 vectors of ``vocabulary_size()`` (``max_tokens`` with ``pad_to_max_tokens``) as Keras 3.15's
code computes them (its symbolic spec says float32), ``"tf_idf"`` float32 counts times the idf weights.

Saved as Keras saves it: the arguments in the config (a given ``vocabulary`` and ``idf_weights`` there too,
and ``vocabulary_size``); an adapted vocabulary as the asset ``vocabulary.txt`` (one token a line, special
tokens first); adapted idf weights in the layer's ``vars`` group under the key ``idf_weights``. Lookups run
as a ``searchsorted`` in the sorted vocabulary on the layer's device, with no per-token Python work.
"""
from __future__ import annotations

import numbers

import numpy

from .. import backend
from ..backend import array_module, to_numpy
from . import id_checks
from .base import Layer, Variable, _spend_weight_budget, scoped_path
from .category_encoding import checked_mode, encode_categorical, encoded_shape
from .string_hashing import as_strings, hash_buckets

MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")


def checked_salt(salt, where):
    """A hash salt as Keras takes it (None, one integer or two) as None or ``[k0, k1]``."""
    if salt is None:
        return None
    if isinstance(salt, (tuple, list)) and len(salt) == 2 and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in salt):
        return [int(s) for s in salt]
    if isinstance(salt, numbers.Integral) and not isinstance(salt, bool):
        return [int(salt), int(salt)]
    raise ValueError(f"{where}: the `salt` argument can only be a tuple of 2 integers, or a single integer. "
                     f"Received: salt={salt!r}.")


def _int_or_none(value, what, where):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{where}: `{what}` must be an integer or None, got {value!r}.")
    return int(value)


class IntegerLookup(Layer):
    """Keras 3's ``IntegerLookup`` (see the module docstring). Input: integer tokens of any shape (rank <= 2 for
    multi-hot, count and tf-idf); no weights, no input gradient."""

    supports_jit = False        # as Keras's layer (Layer.supports_jit)

    # Written to files under Keras's own key; never among the weights.
    _untracked_variables = frozenset({"idf_weights"})

    fixed_input_axes = ()
    keeps_input_dtype = True

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token=-1, vocabulary=None,
                 vocabulary_dtype="int64", idf_weights=None, invert=False, output_mode="int", sparse=False,
                 pad_to_max_tokens=False, oov_method="floormod", salt=None, vocabulary_size=None, **kwargs):
        super().__init__(**kwargs)
        where = self._where
        if output_mode == "binary":
            output_mode = "multi_hot"
        if output_mode == "tf-idf":
            output_mode = "tf_idf"
        self.output_mode = checked_mode(output_mode, MODES, where)
        self.max_tokens = _int_or_none(max_tokens, "max_tokens", where)
        if self.max_tokens is not None and self.max_tokens <= 1:
            raise ValueError(f"{where}: if `max_tokens` is set, it must be greater than 1. Received: "
                             f"max_tokens={max_tokens}")
        self.num_oov_indices = _int_or_none(num_oov_indices, "num_oov_indices", where)
        if self.num_oov_indices is None or self.num_oov_indices < 0:
            raise ValueError(f"{where}: `num_oov_indices` must be an integer >= 0. Received: "
                             f"num_oov_indices={num_oov_indices}")
        self.mask_token = self._special_token(mask_token, "mask_token")
        self.oov_token = self._special_token(oov_token, "oov_token")
        self._set_vocabulary_dtype(vocabulary_dtype)
        if sparse:
            raise ValueError(f"{where}: sparse=True is not supported (gpu_dl has no sparse tensors; Keras allows it "
                             "on TensorFlow only).")
        self.sparse = False
        self._set_oov_method(oov_method, salt)
        self.invert = bool(invert)
        if self.invert and self.output_mode != "int":
            raise ValueError(f"{where}: `output_mode` must be 'int' when `invert` is true. Received: "
                             f"output_mode={output_mode!r}")
        self.pad_to_max_tokens = bool(pad_to_max_tokens)
        if self.pad_to_max_tokens and self.max_tokens is None:
            raise ValueError(f"{where}: if pad_to_max_tokens is True, `max_tokens` must be set.")
        if idf_weights is not None and self.output_mode != "tf_idf":
            raise ValueError(f"{where}: `idf_weights` should only be set if `output_mode` is 'tf_idf'.")
        if isinstance(vocabulary, str):
            raise ValueError(f"{where}: a vocabulary file path is not supported; pass the tokens as a list.")
        if self.output_mode == "tf_idf" and vocabulary is not None and idf_weights is None:
            raise ValueError(f"{where}: when specifying the `vocabulary` argument in 'tf_idf' output mode, the "
                             "`idf_weights` argument must also be provided.")
        self.input_vocabulary = None if vocabulary is None else self._token_list(self._token_array(
            vocabulary, "the vocabulary"))
        self.input_idf_weights = None if idf_weights is None else [float(v) for v in numpy.asarray(
            to_numpy(idf_weights), dtype=numpy.float64).reshape(-1)]
        self._tokens = self._token_array([], "the vocabulary")
        self._tables = {}              # per array module: (sorted tokens, their indices, inverted table)
        self.idf_weights = None        # Variable (saved under the key "idf_weights"), in tf_idf mode
        self._frozen_vocab_size = _int_or_none(vocabulary_size, "vocabulary_size", where)
        if vocabulary is not None:
            self.set_vocabulary(self.input_vocabulary, self.input_idf_weights)
        elif self.output_mode == "tf_idf" and self._frozen_vocab_size is not None:
            # rebuilt from a file: the idf weights come with the weights, the tokens with the asset
            self._set_idf(numpy.zeros(self._idf_length(self._frozen_vocab_size), numpy.float32))

    @property
    def _where(self):
        return f"IntegerLookup layer '{self.name}'"

    # ------------------------------------------------------------------ tokens (StringLookup overrides these)
    def _special_token(self, value, what):
        return _int_or_none(value, what, self._where)

    def _set_vocabulary_dtype(self, vocabulary_dtype):
        if vocabulary_dtype != "int64":
            raise ValueError(f"{self._where}: only `vocabulary_dtype='int64'` is supported (as in Keras). Received: "
                             f"vocabulary_dtype={vocabulary_dtype!r}")
        self.vocabulary_dtype = "int64"

    def _set_oov_method(self, oov_method, salt):
        where = self._where
        if oov_method not in ("floormod", "farmhash"):
            raise ValueError(f"{where}: `oov_method` must be 'floormod' or 'farmhash'. Received: "
                             f"oov_method={oov_method!r}")
        if salt is not None and oov_method != "farmhash" and self.vocabulary_dtype != "string":
            raise ValueError(f"{where}: `salt` can only be used when `oov_method='farmhash'`. Received: "
                             f"oov_method={oov_method!r}")
        self.oov_method, self.salt = oov_method, checked_salt(salt, where)

    def _token_array(self, values, what):
        """``values`` as a flat host array of tokens (int64); a clear error for anything else."""
        array = numpy.asarray(to_numpy(values))
        if array.size and array.dtype.kind not in "iu":
            raise ValueError(f"{self._where}: {what} must hold integers, got dtype {array.dtype}.")
        return array.astype(numpy.int64).reshape(-1)

    @staticmethod
    def _token_list(tokens):
        return [int(t) for t in tokens]

    @staticmethod
    def _parse_asset_line(line):
        return int(line)

    # ------------------------------------------------------------------ indices
    def _oov_start_index(self):
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start_index(self):
        return self._oov_start_index() + self.num_oov_indices

    def vocabulary_size(self):
        """The number of indices: the special ones (mask, OOV) and the vocabulary's tokens."""
        return len(self._tokens) + self._token_start_index()

    def get_vocabulary(self, include_special_tokens=True):
        """The token of each index (``oov_token`` for the OOV indices, the mask token first with a mask)."""
        vocab = [self.oov_token] * self._token_start_index() + self._token_list(self._tokens)
        if self.mask_token is not None and self.output_mode == "int":
            vocab[0] = self.mask_token
        return vocab if include_special_tokens else vocab[self._token_start_index():]

    def _idf_length(self, vocab_size):
        return self.max_tokens if self.pad_to_max_tokens else vocab_size

    def _set_idf(self, weights):
        weights = numpy.asarray(weights, numpy.float32)
        if self.idf_weights is None or self.idf_weights.shape != weights.shape:
            _spend_weight_budget(self, "idf_weights", weights.shape, numpy.float32)
            # Not among the weights (as Keras's TensorFlow variable is not): set past the attribute tracking.
            object.__setattr__(self, "idf_weights", Variable(backend.to_device(weights.copy()), "idf_weights",
                                                             trainable=False, path=scoped_path(self, "idf_weights")))
            self.idf_weights.h5_key = "idf_weights"     # Keras's store key, not "0"
        else:
            self.idf_weights.assign(weights)

    @property
    def state_variables(self):
        """What a file keeps of the layer beside its (no) weights: the tf-idf weights, as Keras keeps them."""
        return [self.idf_weights] if self.output_mode == "tf_idf" and self.idf_weights is not None else []

    def _set_tokens(self, tokens):
        self._tokens = self._token_array(tokens, "the vocabulary")
        self._tables = {}
        size = self.vocabulary_size()
        if self.output_mode != "int" and not self.pad_to_max_tokens and self._frozen_vocab_size not in (None, size) \
                and self.built:
            raise ValueError(f"{self._where}: with output_mode={self.output_mode!r} and pad_to_max_tokens=False the "
                             f"vocabulary size cannot change after the layer is called (was "
                             f"{self._frozen_vocab_size}, now {size}).")
        self._frozen_vocab_size = size

    def set_vocabulary(self, vocabulary, idf_weights=None):
        """Set the tokens (special tokens at the front are recognised and dropped, as in Keras) and, in tf_idf
        mode, their idf weights."""
        where = self._where
        if self.output_mode == "tf_idf" and idf_weights is None:
            raise ValueError(f"{where}: `idf_weights` must be set if output_mode is 'tf_idf'.")
        if self.output_mode != "tf_idf" and idf_weights is not None:
            raise ValueError(f"{where}: `idf_weights` should only be set if output_mode is 'tf_idf'.")
        vocabulary = self._token_array(vocabulary, "the vocabulary")
        if vocabulary.size == 0:
            raise ValueError(f"{where}: cannot set an empty vocabulary.")
        token_start = self._token_start_index()
        special = [self.mask_token] * self._oov_start_index() + [self.oov_token] * self.num_oov_indices
        found_special = len(vocabulary) >= token_start and self._token_list(vocabulary[:token_start]) == special
        tokens = vocabulary[token_start:] if found_special else vocabulary
        unique, counts = numpy.unique(tokens, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"{where}: the vocabulary has repeated terms {self._token_list(unique[counts > 1])[:10]}; "
                             "please uniquify it.")
        if self.mask_token is not None and (tokens == self.mask_token).any():
            raise ValueError(f"{where}: found the reserved mask token {self.mask_token} in `vocabulary`. The "
                             f"vocabulary needs no mask or OOV tokens, or has them only at the start, in this order: "
                             f"{special}.")
        if self.oov_token is not None and self.invert and (tokens == self.oov_token).any():
            raise ValueError(f"{where}: found the reserved OOV token {self.oov_token} in `vocabulary` (invert=True). "
                             f"Leave it out, or put the special tokens at the start in this order: {special}.")
        if self.max_tokens is not None and token_start + len(tokens) > self.max_tokens:
            raise ValueError(f"{where}: attempted to set a vocabulary larger than the maximum vocab size. Received "
                             f"vocabulary size is {token_start + len(tokens)}; `max_tokens` is {self.max_tokens}.")
        if self.output_mode == "tf_idf":
            idf = numpy.asarray(to_numpy(idf_weights), numpy.float64)
            if idf.ndim != 1 or len(idf) != len(vocabulary):
                raise ValueError(f"{where}: `idf_weights` must be a flat list as long as the vocabulary "
                                 f"({len(vocabulary)}), got shape {idf.shape}.")
            front, front_value = (0, 0.0) if found_special else (token_start, numpy.average(idf))
            back = self.max_tokens - front - len(idf) if self.pad_to_max_tokens else 0
            self._set_idf(numpy.pad(idf, (front, back), constant_values=(front_value, 0.0)))
        self._set_tokens(tokens)

    # ------------------------------------------------------------------ adapt
    def adapt(self, data, steps=None):
        """Learn the vocabulary (and in tf_idf mode the idf weights) from ``data``; see the module docstring."""
        where = self._where
        if self.input_vocabulary is not None:
            raise ValueError(f"{where}: cannot adapt the layer after setting a static vocabulary via the "
                             "`vocabulary` argument.")
        if isinstance(data, (list, tuple)) or (hasattr(data, "shape") and hasattr(data, "dtype")):
            batch = self._batch_tokens(data, "the data")
            batches = [batch.reshape(-1, 1) if batch.ndim == 1 else batch]
        elif isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__"):
            raise TypeError(f"{where}: adapt() takes an array, a list or an iterable of batches, got "
                            f"{type(data).__name__}.")
        else:
            batches = []
            for index, batch in enumerate(data):
                if steps is not None and index >= steps:
                    break
                batch = self._batch_tokens(batch[0] if isinstance(batch, tuple) else batch, f"batch {index}")
                batches.append(batch.reshape(1, -1) if batch.ndim <= 1 else batch)
        tokens = numpy.concatenate([b.reshape(-1) for b in batches]) if batches else self._token_array([], "")
        vocab, counts = numpy.unique(tokens, return_counts=True)
        keep = numpy.ones(len(vocab), bool)
        for special in (self.mask_token, self.oov_token):
            if special is not None:
                keep &= vocab != special
        vocab, counts = vocab[keep], counts[keep]
        order = numpy.lexsort((self._sort_keys(vocab), counts))[::-1]
        if self.max_tokens:
            order = order[:self.max_tokens - self._token_start_index()]
        learned = vocab[order]
        if self.output_mode == "tf_idf":
            documents = sum(b.shape[0] for b in batches)
            holding = numpy.zeros(len(learned), numpy.int64)
            for b in batches:
                rows = numpy.sort(b.reshape(b.shape[0], -1), axis=1)
                first = numpy.ones(rows.shape, bool)
                first[:, 1:] = rows[:, 1:] != rows[:, :-1]         # each token once per document
                present = rows[first]
                position = numpy.searchsorted(numpy.sort(learned), present)
                sorted_index = numpy.argsort(learned)
                hit = position < len(learned)
                hit[hit] = numpy.sort(learned)[position[hit]] == present[hit]
                holding += numpy.bincount(sorted_index[position[hit]], minlength=len(learned))
            idf = numpy.log(1 + documents / (1 + holding)).astype(numpy.float32)
            mean = numpy.float32(idf.mean(dtype=numpy.float32)) if len(idf) else numpy.float32(numpy.nan)
            idf = numpy.concatenate([numpy.full(self._token_start_index(), mean, numpy.float32), idf])
            if self.pad_to_max_tokens:
                idf = numpy.pad(idf, (0, self.max_tokens - len(idf)))
            self._set_idf(idf)
        self._set_tokens(learned)

    @staticmethod
    def _sort_keys(tokens):
        return tokens

    def _batch_tokens(self, data, what):
        try:
            array = numpy.asarray(to_numpy(data))
        except ValueError:
            raise ValueError(f"{self._where}: adapt() takes rectangular arrays; {what} is ragged. Pass batches of "
                             "different lengths as an iterable (a generator), not a list.") from None
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{self._where}: adapt() takes integer tokens; {what} holds {array.dtype}.")
        return array.astype(numpy.int64)

    # ------------------------------------------------------------------ call
    def _device_tables(self, xp):
        if xp not in self._tables:
            order = numpy.argsort(self._tokens, kind="stable")
            start = self._token_start_index()
            lut = self._token_array(self.get_vocabulary(), "the vocabulary")
            self._tables[xp] = (xp.asarray(self._tokens[order]), xp.asarray(order.astype(numpy.int64) + start),
                                xp.asarray(lut))
        return self._tables[xp]

    def _lookup(self, xp, x, keys):
        """For int64 tokens ``x``: where each would sit in the sorted ``keys``, and whether it is there."""
        if not len(keys):
            return xp.zeros(x.shape, xp.int64), xp.zeros(x.shape, bool)
        position = xp.clip(xp.searchsorted(keys, x), 0, len(keys) - 1)
        return position, keys[position] == x

    def _masked(self, x):
        return (x == self.mask_token) if self.mask_token is not None else None

    @staticmethod
    def _out_of_vocabulary(found, masked):
        return ~found if masked is None else ~found & ~masked

    def _refuse_oov(self, values):
        raise ValueError(f"{self._where}: when num_oov_indices=0 all inputs should be in the vocabulary; found OOV "
                         f"values {to_numpy(values)[:10].tolist()}. Consider num_oov_indices=1.")

    def check_host_ids(self, x):
        """With num_oov_indices=0, raise the ValueError a call on the host array ``x`` would raise for tokens outside
        the vocabulary (the mask token aside): a model checks its host inputs so, before they reach the device (see
        ``id_checks``). Other settings map every token, and a missing vocabulary is the call's own error."""
        if self.invert or self.num_oov_indices or (self.output_mode != "int" and self.depth is None):
            return
        x = x.astype(numpy.int64, copy=False)
        _, found = self._lookup(numpy, x, self._device_tables(numpy)[0])
        oov = self._out_of_vocabulary(found, self._masked(x))
        if oov.any():
            self._refuse_oov(x[oov])

    def _symbolic_dtype(self):
        # Keras's output spec: int64 ids (or tokens, inverted); encoded vectors as float32.
        return "int64" if self.output_mode == "int" else "float32"

    @property
    def depth(self):
        return self.max_tokens if self.pad_to_max_tokens else self._frozen_vocab_size

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        return encoded_shape(input_shape, self.output_mode, self.depth)

    def call(self, x, training=False):
        if self.invert:
            return self._inverted(x)
        if self.output_mode != "int" and self.depth is None:
            raise ValueError(f"{self._where}: with output_mode={self.output_mode!r} and pad_to_max_tokens=False, set "
                             "the vocabulary (the `vocabulary` argument or adapt()) before calling the layer.")
        indices = self._indices(x)
        if self.output_mode == "int":
            return indices
        if self.output_mode == "tf_idf":
            counts = encode_categorical(indices, "count", self.depth, numpy.float32, where=self._where)
            return counts * self.idf_weights.value
        return encode_categorical(indices, self.output_mode, self.depth, numpy.int64, where=self._where)

    def _inverted(self, x):
        """The token of each index of ``x`` (``oov_token`` for an index outside the vocabulary)."""
        xp = array_module(x)
        x = x.astype(xp.int64, copy=False)
        lut = self._device_tables(xp)[2]
        inside = (x >= 0) & (x < len(lut))
        return xp.where(inside, lut[xp.clip(x, 0, max(len(lut) - 1, 0))] if len(lut) else x,
                        xp.int64(-1 if self.oov_token is None else self.oov_token))

    def _oov_indices(self, xp, x):
        """The OOV index (before the OOV start) of each token of ``x``, with more than one OOV index: ``token %
        num_oov_indices``, or with ``oov_method="farmhash"`` the FarmHash64 (SipHash-2-4 with a salt) bin of the
        token written in decimal, hashed on the host (one read-back of the tokens)."""
        if self.oov_method == "farmhash":
            return xp.asarray(hash_buckets(as_strings(to_numpy(x)), self.num_oov_indices, self.salt))
        return xp.mod(x, self.num_oov_indices)

    def _as_tokens(self, x):
        """``(xp, tokens)``: the array module the lookup runs in and ``x`` as tokens there."""
        xp = array_module(x)
        return xp, x.astype(xp.int64, copy=False)

    def _indices(self, x):
        """The int64 index of each token of ``x``, on ``x``'s device (masked tokens: 0 in int mode, else -1)."""
        given = x
        xp, x = self._as_tokens(x)
        keys, values, lut = self._device_tables(xp)
        position, found = self._lookup(xp, x, keys)
        indices = xp.where(found, values[position], xp.int64(-1)) if len(keys) else xp.full(x.shape, -1, xp.int64)
        masked = self._masked(x)
        oov = self._out_of_vocabulary(found, masked)
        if self.num_oov_indices == 0:
            # one read-back (a clear error beats a silent index); a model skips it for inputs it checked on the host
            if not id_checks.prechecked(self, given) and id_checks.any_on_device(oov):
                self._refuse_oov(x[oov])
        else:
            oov_index = self._oov_indices(xp, x) if self.num_oov_indices > 1 else xp.zeros(x.shape, xp.int64)
            indices = xp.where(oov, oov_index + self._oov_start_index(), indices)
        if masked is not None:
            # int mode: the mask's index 0; other modes: an index outside the vector, so it adds nothing
            indices = xp.where(masked, xp.int64(0 if self.output_mode == "int" else -1), indices)
        return indices

    def backward(self, dy):
        return None

    # ------------------------------------------------------------------ saving
    def asset_files(self):
        """Keras's assets: an adapted vocabulary (special tokens first) as ``vocabulary.txt``."""
        if self.input_vocabulary is not None:
            return {}
        return {"vocabulary.txt": "\n".join(str(t) for t in self.get_vocabulary())}

    def load_asset_files(self, read):
        """Set the vocabulary from ``read("vocabulary.txt")`` (the file's text, or None when absent)."""
        if self.input_vocabulary is not None:
            return
        text = read("vocabulary.txt")
        if text is None:
            raise ValueError(f"{self._where}: the file has no vocabulary asset (assets/.../vocabulary.txt).")
        lines = text.splitlines()
        while lines and lines[-1] == "":
            lines.pop()
        try:
            values = self._token_array([self._parse_asset_line(line) for line in lines], "the vocabulary asset")
        except ValueError:
            raise ValueError(f"{self._where}: the vocabulary asset must hold one integer a line.") from None
        start = self._token_start_index()
        special = [self.mask_token] * self._oov_start_index() + [self.oov_token] * self.num_oov_indices
        tokens = values[start:] if self._token_list(values[:start]) == special else values
        if self.max_tokens is not None and start + len(tokens) > self.max_tokens:
            raise ValueError(f"{self._where}: the vocabulary asset holds {start + len(tokens)} entries, more than "
                             f"max_tokens={self.max_tokens}.")
        self._set_tokens(tokens)

    def get_config(self):
        return {**super().get_config(), "invert": self.invert, "max_tokens": self.max_tokens,
                "num_oov_indices": self.num_oov_indices, "oov_token": self.oov_token, "mask_token": self.mask_token,
                "output_mode": self.output_mode, "sparse": self.sparse, "pad_to_max_tokens": self.pad_to_max_tokens,
                "vocabulary_dtype": self.vocabulary_dtype, "idf_weights": self.input_idf_weights,
                "vocabulary": self.input_vocabulary, "vocabulary_size": self._frozen_vocab_size,
                "oov_method": self.oov_method, "salt": self.salt}
