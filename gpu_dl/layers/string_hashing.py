"""The string hashes Keras's ``Hashing``, ``HashedCrossing`` and ``StringLookup`` bin with, as TensorFlow computes
them: ``tf.strings.to_hash_bucket_fast`` (FarmHash's ``Fingerprint64``, the ``farmhashna`` 64-bit hash) and
``tf.strings.to_hash_bucket_strong`` (SipHash-2-4 keyed with two 64-bit words), each ``hash % num_buckets`` in
unsigned 64-bit arithmetic.

Both run on the host over all strings at once: the strings' UTF-8 bytes go into one zero-padded ``uint8``
matrix, 8-byte little-endian words are gathered from it per row at per-row offsets, and the hashes' 64-bit
arithmetic is NumPy ``uint64`` arithmetic (which wraps, as C's does). Strings of different lengths take
different branches of FarmHash: each branch runs on the rows of its length class; the loop over 64-byte
chunks runs to the longest row, each row's state frozen once its chunks are done. Equal strings are hashed once.
"""
from __future__ import annotations

import numpy

_U64 = numpy.uint64
K0 = _U64(0xc3a5c85c97cb3127)
K1 = _U64(0xb492b66fbe98f273)
K2 = _U64(0x9ae16a3b2f90404f)


def as_bytes(values):
    """``values`` (str, bytes, or an array/list of them) as a flat list of ``bytes`` (str as UTF-8)."""
    flat = numpy.asarray(values, dtype=object).reshape(-1)
    return [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in flat]


def _byte_matrix(strings):
    """``(matrix, lengths)``: the strings' bytes, one row each, zero-padded by at least 8 bytes."""
    lengths = numpy.array([len(s) for s in strings], numpy.int64)
    width = int(lengths.max(initial=0)) + 16
    joined = numpy.frombuffer(b"".join(strings), numpy.uint8)
    matrix = numpy.zeros((len(strings), width), numpy.uint8)
    column = numpy.arange(width)
    matrix[column[None, :] < lengths[:, None]] = joined
    return matrix, lengths


def _fetch(matrix, rows, offset, nbytes):
    """The little-endian ``nbytes`` (4 or 8) word at byte ``offset`` (per row) of each of ``rows``."""
    offset = numpy.broadcast_to(numpy.asarray(offset, numpy.int64), rows.shape)
    index = offset[:, None] + numpy.arange(nbytes)
    raw = matrix[rows[:, None], index].astype(numpy.uint64)
    shifts = (numpy.arange(nbytes, dtype=numpy.uint64) * _U64(8))
    return numpy.bitwise_or.reduce(raw << shifts, axis=1)


def _rotate(value, shift):
    shift = _U64(shift)
    return (value >> shift) | (value << (_U64(64) - shift))


def _shift_mix(value):
    return value ^ (value >> _U64(47))


def _hash_len16(u, v, mul):
    a = (u ^ v) * mul
    a ^= a >> _U64(47)
    b = (v ^ a) * mul
    b ^= b >> _U64(47)
    return b * mul


def _len0to16(m, rows, n):
    out = numpy.full(rows.shape, K2, numpy.uint64)
    un = n.astype(numpy.uint64)
    mul = K2 + un * _U64(2)
    big = n >= 8
    if big.any():
        r, ln, mu = rows[big], n[big], mul[big]
        a = _fetch(m, r, 0, 8) + K2
        b = _fetch(m, r, ln - 8, 8)
        c = _rotate(b, 37) * mu + a
        d = (_rotate(a, 25) + b) * mu
        out[big] = _hash_len16(c, d, mu)
    mid = (n >= 4) & (n < 8)
    if mid.any():
        r, ln, mu = rows[mid], n[mid], mul[mid]
        a = _fetch(m, r, 0, 4)
        out[mid] = _hash_len16(ln.astype(numpy.uint64) + (a << _U64(3)), _fetch(m, r, ln - 4, 4), mu)
    small = (n > 0) & (n < 4)
    if small.any():
        r, ln = rows[small], n[small]
        a = m[r, 0].astype(numpy.uint64)
        b = m[r, ln >> 1].astype(numpy.uint64)
        c = m[r, ln - 1].astype(numpy.uint64)
        y = (a + (b << _U64(8))) & _U64(0xffffffff)
        z = (ln.astype(numpy.uint64) + (c << _U64(2))) & _U64(0xffffffff)
        out[small] = _shift_mix((y * K2) ^ (z * K0)) * K2
    return out


def _len17to32(m, rows, n):
    mul = K2 + n.astype(numpy.uint64) * _U64(2)
    a = _fetch(m, rows, 0, 8) * K1
    b = _fetch(m, rows, 8, 8)
    c = _fetch(m, rows, n - 8, 8) * mul
    d = _fetch(m, rows, n - 16, 8) * K2
    return _hash_len16(_rotate(a + b, 43) + _rotate(c, 30) + d, a + _rotate(b + K2, 18) + c, mul)


def _len33to64(m, rows, n):
    mul = K2 + n.astype(numpy.uint64) * _U64(2)
    a = _fetch(m, rows, 0, 8) * K2
    b = _fetch(m, rows, 8, 8)
    c = _fetch(m, rows, n - 8, 8) * mul
    d = _fetch(m, rows, n - 16, 8) * K2
    y = _rotate(a + b, 43) + _rotate(c, 30) + d
    z = _hash_len16(y, a + _rotate(b + K2, 18) + c, mul)
    e = _fetch(m, rows, 16, 8) * mul
    f = _fetch(m, rows, 24, 8)
    g = (y + _fetch(m, rows, n - 32, 8)) * mul
    h = (z + _fetch(m, rows, n - 24, 8)) * mul
    return _hash_len16(_rotate(e + f, 43) + _rotate(g, 30) + h, e + _rotate(f + a, 18) + g, mul)


def _weak_hash32(m, rows, offset, a, b):
    w, x = _fetch(m, rows, offset, 8), _fetch(m, rows, offset + 8, 8)
    y, z = _fetch(m, rows, offset + 16, 8), _fetch(m, rows, offset + 24, 8)
    a = a + w
    b = _rotate(b + a + z, 21)
    c = a
    a = a + x + y
    b = b + _rotate(a, 44)
    return a + z, b + c


def _len_over64(m, rows, n):
    seed = _U64(81)
    count = len(rows)
    x = numpy.full(count, seed, numpy.uint64)
    y = numpy.full(count, seed * K1 + _U64(113), numpy.uint64)
    z = _shift_mix(y * K2 + _U64(113)) * K2
    v0 = v1 = w0 = w1 = numpy.zeros(count, numpy.uint64)
    x = x * K2 + _fetch(m, rows, 0, 8)
    chunks = (n - 1) // 64
    for chunk in range(int(chunks.max())):
        live = chunk < chunks
        s = numpy.int64(chunk * 64)
        nx = _rotate(x + y + v0 + _fetch(m, rows, s + 8, 8), 37) * K1
        ny = _rotate(y + v1 + _fetch(m, rows, s + 48, 8), 42) * K1
        nx = nx ^ w1
        ny = ny + v0 + _fetch(m, rows, s + 40, 8)
        nz = _rotate(z + w0, 33) * K1
        nv0, nv1 = _weak_hash32(m, rows, s, v1 * K1, nx + w0)
        nw0, nw1 = _weak_hash32(m, rows, s + 32, nz + w1, ny + _fetch(m, rows, s + 16, 8))
        nx, nz = nz, nx
        x, y, z = (numpy.where(live, new, old) for new, old in ((nx, x), (ny, y), (nz, z)))
        v0, v1, w0, w1 = (numpy.where(live, new, old) for new, old in ((nv0, v0), (nv1, v1), (nw0, w0), (nw1, w1)))
    mul = K1 + ((z & _U64(0xff)) << _U64(1))
    last64 = chunks * 64 + ((n - 1) & 63) - 63
    w0 = w0 + ((n - 1) & 63).astype(numpy.uint64)
    v0 = v0 + w0
    w0 = w0 + v0
    x = _rotate(x + y + v0 + _fetch(m, rows, last64 + 8, 8), 37) * mul
    y = _rotate(y + v1 + _fetch(m, rows, last64 + 48, 8), 42) * mul
    x = x ^ (w1 * _U64(9))
    y = y + v0 * _U64(9) + _fetch(m, rows, last64 + 40, 8)
    z = _rotate(z + w0, 33) * mul
    v0, v1 = _weak_hash32(m, rows, last64, v1 * mul, x + w0)
    w0, w1 = _weak_hash32(m, rows, last64 + 32, z + w1, y + _fetch(m, rows, last64 + 16, 8))
    x, z = z, x
    return _hash_len16(_hash_len16(v0, w0, mul) + _shift_mix(y) * K0 + z, _hash_len16(v1, w1, mul) + x, mul)


def _unique_bytes(strings):
    unique = list(dict.fromkeys(strings))
    position = {s: i for i, s in enumerate(unique)}
    return unique, numpy.array([position[s] for s in strings], numpy.int64)


def fingerprint64(values):
    """FarmHash ``Fingerprint64`` of each string of ``values`` (str as UTF-8), as a flat ``uint64`` array."""
    strings = as_bytes(values)
    if not strings:
        return numpy.zeros(0, numpy.uint64)
    unique, inverse = _unique_bytes(strings)
    m, n = _byte_matrix(unique)
    out = numpy.zeros(len(unique), numpy.uint64)
    rows = numpy.arange(len(unique))
    with numpy.errstate(over="ignore"):
        for low, high, branch in ((0, 16, _len0to16), (17, 32, _len17to32), (33, 64, _len33to64),
                                  (65, None, _len_over64)):
            pick = (n >= low) & (n <= high) if high is not None else n >= low
            if pick.any():
                out[pick] = branch(m, rows[pick], n[pick])
    return out[inverse]


def _sip_round(v0, v1, v2, v3):
    v0 = v0 + v1
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = v2 + v3
    v3 = _rotl(v3, 16) ^ v2
    v0 = v0 + v3
    v3 = _rotl(v3, 21) ^ v0
    v2 = v2 + v1
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def _rotl(value, shift):
    return (value << _U64(shift)) | (value >> _U64(64 - shift))


def siphash64(values, key):
    """SipHash-2-4 of each string of ``values`` with the 128-bit key ``key`` = ``[k0, k1]`` (TensorFlow's
    ``StrongKeyedHash``), as a flat ``uint64`` array."""
    strings = as_bytes(values)
    if not strings:
        return numpy.zeros(0, numpy.uint64)
    unique, inverse = _unique_bytes(strings)
    m, n = _byte_matrix(unique)
    rows = numpy.arange(len(unique))
    k0, k1 = (_U64(int(k) & 0xffffffffffffffff) for k in key)
    with numpy.errstate(over="ignore"):
        v0 = numpy.full(len(unique), k0 ^ _U64(0x736f6d6570736575), numpy.uint64)
        v1 = numpy.full(len(unique), k1 ^ _U64(0x646f72616e646f6d), numpy.uint64)
        v2 = numpy.full(len(unique), k0 ^ _U64(0x6c7967656e657261), numpy.uint64)
        v3 = numpy.full(len(unique), k1 ^ _U64(0x7465646279746573), numpy.uint64)
        blocks = n // 8
        for block in range(int(blocks.max())):
            live = block < blocks
            word = _fetch(m, rows, block * 8, 8)
            a, b, c, d = _sip_round(*_sip_round(v0, v1, v2, v3 ^ word))
            a = a ^ word
            v0, v1, v2, v3 = (numpy.where(live, new, old) for new, old in ((a, v0), (b, v1), (c, v2), (d, v3)))
        # the last block: the remaining bytes (the matrix's padding is zeros) and the length's low byte on top
        tail = _fetch(m, rows, blocks * 8, 8)
        keep = (n % 8).astype(numpy.uint64) * _U64(8)
        tail = numpy.where(keep > 0, tail & ((_U64(1) << keep) - _U64(1)), _U64(0))
        final = tail | ((n.astype(numpy.uint64) & _U64(0xff)) << _U64(56))
        v0, v1, v2, v3 = _sip_round(*_sip_round(v0, v1, v2, v3 ^ final))
        v0 = v0 ^ final
        v2 = v2 ^ _U64(0xff)
        for _ in range(4):
            v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    return (v0 ^ v1 ^ v2 ^ v3)[inverse]


def hash_buckets(values, num_buckets, key=None):
    """``tf.strings.to_hash_bucket_fast`` (``key`` None) or ``to_hash_bucket_strong`` (``key`` = ``[k0, k1]``) of
    the strings ``values``: int64 bins in ``[0, num_buckets)`` shaped as ``values``."""
    shape = numpy.shape(values)
    hashes = fingerprint64(values) if key is None else siphash64(values, key)
    return (hashes % _U64(num_buckets)).astype(numpy.int64).reshape(shape)


def as_strings(values):
    """Values as TensorFlow's ``as_string`` writes them for hashing: strings and bytes as they are, integers in
    decimal (floats truncated to int64 first, as Keras casts them); an object array of str/bytes, shaped as
    ``values``."""
    array = numpy.asarray(values)
    if array.dtype.kind == "f":
        array = array.astype(numpy.int64)
    if array.dtype.kind in "iu":
        return array.astype(str).astype(object)
    if array.dtype.kind in "USO":
        return array.astype(object)
    raise TypeError(f"expected strings or integers, got an array of {array.dtype}.")
