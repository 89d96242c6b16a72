"""``StringLookup``, Keras 3's preprocessing layer that maps string tokens to contiguous vocabulary indices.

It is ``IntegerLookup`` (Keras's shared ``IndexLookup``) with strings for tokens: the same indices (mask, OOV
indices, then the vocabulary), the same ``adapt`` (descending count, ties by descending token in code-point
order, which is the UTF-8 byte order Keras sorts by), the same output modes, tf-idf weights and files (an
adapted vocabulary as the asset ``vocabulary.txt``). Its defaults are Keras's: ``oov_token="[UNK]"``, no mask.
With more than one OOV index a string goes to OOV index ``Fingerprint64(token) % num_oov_indices`` (SipHash-2-4
with a ``salt``), as TensorFlow's ``to_hash_bucket_fast``/``_strong`` bin it.

Strings are host data: inputs are str or bytes (decoded with ``encoding``) in lists or NumPy arrays; the lookup
is a ``searchsorted`` in the sorted vocabulary on the host, and the indices (or the vectors encoding them) go to
the current device. ``invert=True`` gives a NumPy object array of str.
"""
from __future__ import annotations

import numpy

from .. import backend
from ..backend import to_numpy
from .integer_lookup import IntegerLookup
from .string_hashing import hash_buckets
from .text_inputs import host_array


def decoded(array, encoding, where):
    """The host array ``array`` as an object array of str (bytes decoded with ``encoding``), shaped as it."""
    array = numpy.asarray(array, dtype=object) if not isinstance(array, numpy.ndarray) else array
    if array.dtype.kind in "US":
        array = array.astype(object)
    if array.dtype.kind != "O":
        raise TypeError(f"{where}: takes strings, got an array of {array.dtype}.")
    flat = array.reshape(-1)
    out = numpy.empty(flat.shape, object)
    try:
        out[:] = [v.decode(encoding) if isinstance(v, bytes) else v for v in flat]
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: cannot decode the input with encoding={encoding!r} ({e}).") from None
    bad = [v for v in out if not isinstance(v, str)]
    if bad:
        raise TypeError(f"{where}: takes strings, got {type(bad[0]).__name__} values such as {bad[0]!r}.")
    return out.reshape(array.shape)


class StringLookup(IntegerLookup):
    """Keras 3's ``StringLookup`` (see the module docstring). Input: strings of any shape (rank <= 2 for
    multi-hot, count and tf-idf); no weights, no input gradient."""

    fixed_input_axes = ()
    keeps_input_dtype = True
    reads_text = True       # a Sequential starting with it takes text data as it is

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token="[UNK]", vocabulary=None,
                 idf_weights=None, invert=False, output_mode="int", pad_to_max_tokens=False, sparse=False,
                 encoding="utf-8", name=None, salt=None, oov_method="floormod", vocabulary_size=None, **kwargs):
        if not isinstance(encoding, str):
            raise ValueError(f"StringLookup: `encoding` must be a codec name such as 'utf-8', got {encoding!r}.")
        self.encoding = encoding
        kwargs.pop("vocabulary_dtype", None)
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices, mask_token=mask_token,
                         oov_token=oov_token, vocabulary=vocabulary, vocabulary_dtype="string",
                         idf_weights=idf_weights, invert=invert, output_mode=output_mode, sparse=sparse,
                         pad_to_max_tokens=pad_to_max_tokens, salt=salt, oov_method=oov_method,
                         vocabulary_size=vocabulary_size, name=name, **kwargs)

    @property
    def _where(self):
        return f"StringLookup layer '{self.name}'"

    # ------------------------------------------------------------------ tokens
    def _special_token(self, value, what):
        if value is None:
            return None
        if isinstance(value, bytes):
            value = value.decode(self.encoding)
        if not isinstance(value, str):
            raise ValueError(f"{self._where}: `{what}` must be a string or None, got {value!r}.")
        return value

    def _set_vocabulary_dtype(self, vocabulary_dtype):
        self.vocabulary_dtype = "string"

    def _token_array(self, values, what):
        if isinstance(values, (str, bytes)):
            raise ValueError(f"{self._where}: {what} must be a list of strings; a vocabulary file path is not "
                             "supported.")
        return decoded(host_array(values, self._where) if len(values) else numpy.zeros(0, object), self.encoding,
                       f"{self._where}: {what}").reshape(-1)

    @staticmethod
    def _token_list(tokens):
        return [str(t) for t in tokens]

    @staticmethod
    def _parse_asset_line(line):
        return line

    @staticmethod
    def _sort_keys(tokens):
        return numpy.array(list(tokens), dtype=str) if len(tokens) else numpy.zeros(0, str)

    def _batch_tokens(self, data, what):
        try:
            array = host_array(data, self._where)
        except ValueError:
            raise ValueError(f"{self._where}: adapt() takes rectangular arrays; {what} is ragged. Pass batches of "
                             "different lengths as an iterable (a generator), not a list.") from None
        if array.dtype.kind != "O":
            raise TypeError(f"{self._where}: adapt() takes strings; {what} holds {array.dtype}.")
        return decoded(array, self.encoding, f"{self._where}: {what}")

    # ------------------------------------------------------------------ call
    def _as_input(self, x):
        return host_array(x, self._where)

    def _as_tokens(self, x):
        if self.invert:
            return numpy, x
        return numpy, decoded(x, self.encoding, self._where)

    def _oov_indices(self, xp, x):
        return hash_buckets(x, self.num_oov_indices, self.salt)

    def _indices(self, x):
        return backend.to_device(super()._indices(x))

    def _inverted(self, x):
        if x.dtype.kind not in "iu":
            raise TypeError(f"{self._where}: with invert=True the inputs are integer indices, got {x.dtype}.")
        x = numpy.asarray(to_numpy(x)).astype(numpy.int64)
        lut = self._device_tables(numpy)[2]
        inside = (x >= 0) & (x < len(lut))
        out = numpy.full(x.shape, self.oov_token, dtype=object)
        out[inside] = lut[x[inside]]
        return out

    def check_host_ids(self, x):
        """Nothing to check before the call: the call itself looks its strings up on the host."""

    def _symbolic_dtype(self):
        return "string" if self.invert else ("int64" if self.output_mode == "int" else "float32")

    def get_config(self):
        config = super().get_config()
        del config["vocabulary_dtype"]
        return {**config, "encoding": self.encoding}
