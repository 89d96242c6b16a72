"""The counter-based stream of ``ops/counter_noise.py`` and ``kernels/counter_noise.cu``: SplitMix64's words (its
published first outputs, and a scalar transcription in Python ints), the normal values made of them (written out
field by field), both bit for bit equal on NumPy and on the GPU at odd sizes; their statistics; and
RandomElasticTransform drawing its noise there: the same output on both backends for one seed, and no copy of
its noise from the host."""
import math

import numpy
import pytest

from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.ops import counter_noise

SIZES = [1, 3, 17, 33, 65537]      # 65537: one past the host's block of 2**16 values
MASK = (1 << 64) - 1


def splitmix64(state, count):
    """SplitMix64 as published (Vigna's splitmix64.c), one Python int at a time: the state steps by the golden
    gamma and each step is mixed."""
    out = []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        out.append(z ^ (z >> 31))
    return out


def normal_of(words):
    """The normal value of two words, one field at a time."""
    fields = [(w >> (10 * f)) & 1023 for w in words for f in range(6)]
    return (sum(fields) - 6138) / 1024


def test_words_are_splitmix64():
    assert splitmix64(0, 1) == [0xE220A8397B1DCDAF]     # the first output of seed 0
    for key in (0, 12345, MASK):
        numpy.testing.assert_array_equal(counter_noise.words(numpy, key, 40),
                                         numpy.array(splitmix64(key, 40), dtype=numpy.uint64))


def test_keys_of_seed_pairs():
    keys = {counter_noise.key_of((s, c)) for s in (0, 1, 2**32 - 1) for c in (0, 1, 7, 2**32 - 1)}
    assert len(keys) == 12 and all(0 <= k <= MASK for k in keys)
    assert counter_noise.key_of((3, 4)) == counter_noise.key_of((3 + 2**32, 4))     # 32 bits of each, as pairs hold


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_normal_values_are_the_fields_sums(dtype):
    pair = (9, 2)
    got = counter_noise.normal(numpy, pair, (3, 7), dtype)
    assert got.shape == (3, 7) and got.dtype == numpy.dtype(dtype)
    words = splitmix64(counter_noise.key_of(pair), 42)
    want = numpy.array([normal_of(words[2 * i: 2 * i + 2]) for i in range(21)]).reshape(3, 7)
    numpy.testing.assert_array_equal(got, want.astype(dtype))


def test_normal_statistics_and_seeds():
    x = counter_noise.normal(numpy, (1, 0), (200_000,), "float64")
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01
    assert abs((x ** 4).mean() - 2.9) < 0.1       # Irwin-Hall 12: kurtosis 3 - 0.1
    assert numpy.abs(x).max() <= 6 and numpy.array_equal(x * 1024, numpy.round(x * 1024))
    assert abs((numpy.abs(x) < 1).mean() - 0.6827) < 0.01
    numpy.testing.assert_array_equal(x[:1000], counter_noise.normal(numpy, (1, 0), (1000,), "float64"))
    assert not numpy.array_equal(x[:1000], counter_noise.normal(numpy, (1, 1), (1000,), "float64"))
    assert counter_noise.normal(numpy, (1, 0), (0, 3)).shape == (0, 3)


def test_bad_arguments():
    with pytest.raises(TypeError, match="counter_noise.normal: `dtype` must be a float dtype"):
        counter_noise.normal(numpy, (1, 0), (3,), "int32")
    with pytest.raises(ValueError, match="counter_noise.words: `count` must be an integer >= 0"):
        counter_noise.words(numpy, 1, -1)


# ------------------------------------------------------------------ on the GPU
@pytest.mark.parametrize("count", SIZES)
def test_words_on_the_gpu_are_numpy_s(cupy_only, count):
    key = counter_noise.key_of((count, 5))
    got = counter_noise.words(cupy_only, key, count)
    assert type(got).__module__.startswith("cupy") and got.dtype == numpy.uint64
    numpy.testing.assert_array_equal(to_numpy(got), counter_noise.words(numpy, key, count))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("shape", [(1,), (3, 17), (2, 33, 3), (65537,)])
def test_normal_on_the_gpu_is_numpy_s(cupy_only, shape, dtype):
    from gpu_dl.backend import launch
    with launch.poisoned_outputs():     # an element the kernel leaves unwritten stays NaN
        got = counter_noise.normal(cupy_only, (7, math.prod(shape)), shape, dtype)
    assert type(got).__module__.startswith("cupy") and got.dtype == numpy.dtype(dtype) and got.shape == shape
    want = counter_noise.normal(numpy, (7, math.prod(shape)), shape, dtype)
    assert want.view(numpy.uint8).tobytes() == to_numpy(got).view(numpy.uint8).tobytes()


def test_launcher_refuses_host_arrays_and_bad_keys(cupy_only):
    with pytest.raises(TypeError, match="counter_words_u64: `out` must be a CuPy array"):
        counter_noise._launch("counter_words_u64", numpy.empty(3, numpy.uint64), 1)
    with pytest.raises(ValueError, match=r"counter_words_u64: `key` must be an integer in \[0, 2\*\*64\)"):
        counter_noise._launch("counter_words_u64", cupy_only.empty(3, numpy.uint64), -1)


# ------------------------------------------------------------------ RandomElasticTransform
def test_elastic_transform_is_the_same_on_both_backends(cupy_only):
    x = numpy.random.default_rng(3).uniform(0, 255, (3, 19, 23, 2)).astype(numpy.float32)
    kwargs = dict(factor=(0.8, 1.0), scale=(0.5, 1.0), seed=21)
    on_host, on_device = layers.RandomElasticTransform(**kwargs), layers.RandomElasticTransform(**kwargs)
    for _ in range(2):      # the second call draws afresh, alike on both
        want = on_host(x, training=True)
        got = on_device(cupy_only.asarray(x), training=True)
        assert type(got).__module__.startswith("cupy") and isinstance(want, numpy.ndarray)
        numpy.testing.assert_allclose(to_numpy(got), want, rtol=0, atol=2e-3)   # the same noise, bit for bit
        assert not numpy.allclose(want, x, atol=1)
    host_draw = layers.RandomElasticTransform(**kwargs).draw(3, 19, 23)
    device_draw = layers.RandomElasticTransform(**kwargs).draw(3, 19, 23, cupy_only)
    numpy.testing.assert_array_equal(host_draw[0], device_draw[0])
    assert host_draw[1] == device_draw[1]
    assert type(device_draw[2]).__module__.startswith("cupy")
    assert host_draw[2].tobytes() == to_numpy(device_draw[2]).tobytes()


def test_elastic_transform_copies_no_noise_to_the_device(cupy_only, monkeypatch):
    n, h, w = 2, 31, 29
    x = cupy_only.asarray(numpy.random.default_rng(4).uniform(0, 255, (n, h, w, 3)).astype(numpy.float32))
    copied = []

    def recording(original):
        def to_device(a, *args, **kwargs):
            if isinstance(a, numpy.ndarray) and not type(a).__module__.startswith("cupy"):
                copied.append(a.size)
            return original(a, *args, **kwargs)
        return to_device
    for name in ("asarray", "array"):
        monkeypatch.setattr(cupy_only, name, recording(getattr(cupy_only, name)))
    launched = []
    monkeypatch.setattr(counter_noise, "_launch", lambda kernel, out, key, real=counter_noise._launch: (
        launched.append((kernel, out.size)), real(kernel, out, key))[1])
    layer = layers.RandomElasticTransform(factor=1.0, seed=1)
    y = layer(x, training=True)
    assert type(y).__module__.startswith("cupy") and not numpy.allclose(to_numpy(y), to_numpy(x), atol=1)
    assert launched == [("counter_normal_f32", 2 * n * h * w)]      # the noise is drawn on the device
    # what still crosses: the per-image numbers drawn on the host (one apply flag per image), nothing per pixel
    assert all(size <= n for size in copied), copied
