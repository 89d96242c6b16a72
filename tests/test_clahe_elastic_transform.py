"""ContrastLimitedAdaptiveHistogramEqualization and RandomElasticTransform: plain NumPy expectations (written
tile by tile and pixel by pixel), seeds, training flags, layouts, dtypes, gradients where they exist and clear
errors for bad arguments."""
import math

import numpy
import pytest

from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.ops import counter_noise

CLAHE = layers.ContrastLimitedAdaptiveHistogramEqualization


# ------------------------------------------------------------------------ CLAHE
def clahe_reference(x, value_range, clip_limit, grid):
    """CLAHE of channels_last float images, one tile and one pixel at a time, in float64 (module docstring of
    gpu_dl/layers/clahe.py: Keras's steps, its torch backend's edge padding and integer clip limit)."""
    n, h, w, c = x.shape
    lo, hi = value_range
    v = (x.astype(numpy.float64) - lo) / (hi - lo) * 255.0
    gh, gw = grid
    th, tw = math.ceil(h / gh), math.ceil(w / gw)
    padded = numpy.pad(v, ((0, 0), (0, th * gh - h), (0, tw * gw - w), (0, 0)), mode="edge")
    levels = numpy.clip(numpy.trunc(padded), 0, 255).astype(int)
    maps = numpy.zeros((n, gh, gw, c, 256))
    for b in range(n):
        for i in range(gh):
            for j in range(gw):
                for k in range(c):
                    hist = numpy.bincount(levels[b, i * th:(i + 1) * th, j * tw:(j + 1) * tw, k].ravel(),
                                          minlength=256).astype(float)
                    if clip_limit > 0:
                        limit = int(clip_limit * th * tw / 256.0)
                        excess = numpy.maximum(hist - limit, 0).sum()
                        hist = numpy.minimum(hist, limit) + excess / 256.0
                    cdf = numpy.cumsum(hist)
                    span = th * tw - cdf[0]
                    maps[b, i, j, k] = numpy.clip((cdf - cdf[0]) * 255.0 / (span if span != 0 else 1.0), 0, 255)
    out = numpy.zeros((n, h, w, c))
    for y in range(h):
        for x_ in range(w):
            # position among the tile centres; outside the outermost centres the edge tile's map is used
            fy, fx = (y - th / 2) / th, (x_ - tw / 2) / tw
            y0, x0 = math.floor(fy), math.floor(fx)
            wy, wx = fy - y0, fx - x0
            ys = [min(max(y0, 0), gh - 1), min(max(y0 + 1, 0), gh - 1)]
            xs = [min(max(x0, 0), gw - 1), min(max(x0 + 1, 0), gw - 1)]
            for b in range(n):
                for k in range(c):
                    level = levels[b, y, x_, k]
                    m = [[maps[b, yy, xx, k, level] for xx in xs] for yy in ys]
                    top = m[0][0] * (1 - wx) + m[0][1] * wx
                    bottom = m[1][0] * (1 - wx) + m[1][1] * wx
                    out[b, y, x_, k] = top * (1 - wy) + bottom * wy
    return out / 255.0 * (hi - lo) + lo


CASES = [((2, 9, 11, 3), (2, 3), 4.0, (0, 255)), ((1, 17, 13, 1), (4, 3), 2.0, (0, 255)),
         ((2, 7, 10, 2), (8, 8), 40.0, (0, 1)), ((1, 33, 20, 3), (2, 5), 0.0, (0, 1)),
         ((3, 12, 12, 1), (3, 4), 1.5, (0, 255))]


@pytest.mark.parametrize("shape,grid,clip_limit,value_range", CASES)
def test_clahe_matches_a_tile_by_tile_reference(xp, rng, shape, grid, clip_limit, value_range):
    x = rng.uniform(value_range[0], value_range[1], shape).astype(numpy.float32)
    # a dark band and a flat region: tiles whose histograms the limit clips
    x[:, : shape[1] // 3] *= 0.2
    x[:, -2:, -3:] = value_range[1] * 0.5
    layer = CLAHE(value_range=value_range, clip_limit=clip_limit, tile_grid_size=grid)
    y = layer(xp.asarray(x))
    assert y.dtype == numpy.float32 and y.shape == x.shape
    expected = clahe_reference(x, value_range, clip_limit, grid)
    numpy.testing.assert_allclose(to_numpy(y), expected, rtol=0, atol=2e-4 * (value_range[1] - value_range[0]))
    assert not numpy.allclose(to_numpy(y), x, atol=1e-3)


def test_clahe_layouts_unbatched_inference_and_dtypes(xp, rng):
    x = rng.integers(0, 256, (2, 13, 10, 3)).astype(numpy.uint8)
    layer = CLAHE(tile_grid_size=(3, 2), clip_limit=3.0)
    y = layer(xp.asarray(x))
    assert y.dtype == numpy.uint8                        # integer images keep their dtype, as in Keras
    expected = numpy.trunc(clahe_reference(x.astype(numpy.float32), (0, 255), 3.0, (3, 2)))
    # float32 and float64 sums near an integer truncate to neighbouring integers
    difference = numpy.abs(to_numpy(y).astype(float) - expected)
    assert difference.max() <= 1 and difference.mean() < 0.05
    # the float32 result truncated, as Keras casts it
    floats32 = to_numpy(layer(xp.asarray(x.astype(numpy.float32))))
    numpy.testing.assert_array_equal(to_numpy(y), floats32.astype(numpy.uint8))
    # deterministic: the same in training and at inference
    numpy.testing.assert_array_equal(to_numpy(layer(xp.asarray(x), training=False)), to_numpy(y))
    floats = x.astype(numpy.float64)
    as_float = layer(xp.asarray(floats))
    assert as_float.dtype == numpy.float32                # floats in the compute dtype
    first = CLAHE(tile_grid_size=(3, 2), clip_limit=3.0, data_format="channels_first")
    numpy.testing.assert_array_equal(to_numpy(first(xp.asarray(floats.transpose(0, 3, 1, 2)))),
                                     to_numpy(as_float).transpose(0, 3, 1, 2))
    numpy.testing.assert_array_equal(to_numpy(layer(xp.asarray(floats[1]))), to_numpy(as_float)[1])


def test_clahe_config_gradient_and_bad_arguments(xp, rng):
    layer = CLAHE(value_range=(0, 1), clip_limit=2.5, tile_grid_size=[4, 2], name="c")
    config = layer.get_config()
    assert (config["value_range"], config["clip_limit"], config["tile_grid_size"]) == ([0, 1], 2.5, (4, 2))
    assert "seed" not in config and layer.variables == []
    again = CLAHE.from_config(config)
    x = xp.asarray(rng.uniform(0, 1, (2, 8, 8, 1)).astype(numpy.float32))
    numpy.testing.assert_array_equal(to_numpy(again(x)), to_numpy(layer(x)))
    layer(x, training=True)
    with pytest.raises(NotImplementedError, match="layer 'c': has no gradient"):
        layer.backward(xp.ones_like(x))
    for kwargs, what in (({"tile_grid_size": (0, 2)}, "tile_grid_size"), ({"tile_grid_size": 8}, "tile_grid_size"),
                         ({"tile_grid_size": (2.5, 2)}, "tile_grid_size"), ({"clip_limit": "4"}, "clip_limit"),
                         ({"clip_limit": math.inf}, "clip_limit"), ({"value_range": (1, 1)}, "value_range"),
                         ({"value_range": 255}, "value_range")):
        with pytest.raises(ValueError, match=f"ContrastLimitedAdaptiveHistogramEqualization layer 'c': {what}"):
            CLAHE(name="c", **kwargs)
    with pytest.raises(TypeError, match="layer 'c'"):
        CLAHE(name="c")(numpy.ones((1, 4, 4, 1), dtype=bool))


# ------------------------------------------------------------------ elastic
def gaussian(size, sigma):
    t = numpy.arange(size) - (size - 1) / 2
    k = numpy.exp(-0.5 * (t / sigma) ** 2)
    return numpy.outer(k, k) / k.sum() ** 2


def blur(field, sigma):
    """2-D correlation with Keras's Gaussian of sigma (size int(6 sigma) | 1), zero padding."""
    size = int(6 * sigma) | 1
    kernel, r = gaussian(size, sigma), size // 2
    padded = numpy.pad(field, ((r, r), (r, r)))
    h, w = field.shape
    return sum(kernel[i, j] * padded[i:i + h, j:j + w] for i in range(size) for j in range(size))


def fold(i, size, mode):
    if mode in ("constant", "nearest"):
        return min(max(i, 0), size - 1)
    if mode == "wrap":
        return i % size
    if mode == "mirror":
        period = 2 * (size - 1)
        k = i % period if size > 1 else 0
        return k if k < size else period - k
    k = i % (2 * size)                                   # reflect: the edge pixel repeats
    return k if k < size else 2 * size - 1 - k


def elastic_reference(x, apply, distortion, noise, interpolation, fill_mode, fill_value, value_range):
    n, h, w, c = x.shape
    alpha, sigma = max(h, w) * 0.1 * distortion, min(h, w) * 0.05 * distortion
    out = x.astype(numpy.float64).copy()
    for b in numpy.flatnonzero(apply):
        dx, dy = alpha * blur(noise[b] * sigma, sigma), alpha * blur(noise[n + b] * sigma, sigma)
        for y in range(h):
            for x_ in range(w):
                py, px = y + dy[y, x_], x_ + dx[y, x_]
                if interpolation == "nearest":
                    nodes = [(round(py), round(px), 1.0)]
                else:
                    y0, x0 = math.floor(py), math.floor(px)
                    fy, fx = py - y0, px - x0
                    nodes = [(y0, x0, (1 - fy) * (1 - fx)), (y0, x0 + 1, (1 - fy) * fx),
                             (y0 + 1, x0, fy * (1 - fx)), (y0 + 1, x0 + 1, fy * fx)]
                value = 0.0
                for iy, ix, weight in nodes:
                    inside = 0 <= iy < h and 0 <= ix < w
                    read = (x[b, fold(iy, h, fill_mode), fold(ix, w, fill_mode)] if inside or fill_mode != "constant"
                            else fill_value)
                    value = value + weight * read
                out[b, y, x_] = value
    return numpy.clip(out, *value_range)


@pytest.mark.parametrize("fill_mode", ["reflect", "mirror", "wrap", "constant", "nearest"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_elastic_matches_a_pixel_by_pixel_reference(xp, rng, fill_mode, interpolation):
    x = rng.uniform(0, 255, (3, 21, 25, 2)).astype(numpy.float32)
    layer = layers.RandomElasticTransform(factor=(0.5, 1.0), scale=(0.6, 1.0), interpolation=interpolation,
                                          fill_mode=fill_mode, fill_value=300.0, value_range=(5, 250), seed=2)
    apply, distortion, noise = layer.draw(3, 21, 25)
    apply = numpy.array([True, False, True])
    layer.draw = lambda n, h, w, xp=numpy: (apply, distortion, noise)
    y = to_numpy(layer(xp.asarray(x)))
    expected = elastic_reference(x, apply, float(distortion), noise.astype(numpy.float64), interpolation,
                                 fill_mode, 300.0, (5, 250))
    close = numpy.isclose(y, expected, rtol=0, atol=2e-3)
    # nearest: a float32 position within rounding of a half may pick the other neighbour
    assert close.all() if interpolation == "bilinear" else close.mean() > 0.995
    numpy.testing.assert_array_equal(y[1], numpy.clip(x[1], 5, 250))
    assert numpy.abs(y[0] - numpy.clip(x[0], 5, 250)).max() > 10


def test_elastic_draws_are_keras_numpy_backend_s_and_the_noise_the_counter_generator_s(rng):
    layer = layers.RandomElasticTransform(factor=(0.2, 0.9), scale=(0.3, 0.8), seed=7)
    follow = layers.RandomElasticTransform(seed=7)
    pairs = [numpy.array(follow.generator.next(), numpy.uint32) for _ in range(4)]
    apply, distortion, noise = layer.draw(4, 5, 6)
    draws = [numpy.random.default_rng(p) for p in pairs[:3]]
    probability = draws[0].uniform(size=(4,), low=0.2, high=0.9).astype(numpy.float32)
    numpy.testing.assert_array_equal(apply, draws[1].uniform(size=(4,)).astype(numpy.float32) < probability)
    assert distortion == numpy.float32(draws[2].uniform(size=(), low=0.3, high=0.8))
    # the fields' noise: from the fourth pair, the one Keras's layer gives its elastic_transform
    assert noise.dtype == numpy.float32 and noise.shape == (8, 5, 6)
    numpy.testing.assert_array_equal(noise, counter_noise.normal(numpy, pairs[3], (8, 5, 6)))
    assert int(layer.generator.state.numpy()[1]) == 4


def test_elastic_seeds_inference_identity_and_layouts(xp, rng):
    x = xp.asarray(rng.uniform(0, 255, (3, 16, 18, 2)).astype(numpy.float32))
    make = layers.RandomElasticTransform
    ya, yb, yc = (to_numpy(make(seed=s)(x, training=True)) for s in (5, 5, 6))
    numpy.testing.assert_array_equal(ya, yb)
    assert not numpy.array_equal(ya, yc) and not numpy.allclose(ya, to_numpy(x))
    layer = make(seed=5)
    assert not numpy.array_equal(to_numpy(layer(x)), to_numpy(layer(x)))          # each call draws afresh
    idle = make(seed=1, value_range=(10, 20))
    numpy.testing.assert_array_equal(to_numpy(idle(x, training=False)), to_numpy(x))   # no clip at inference
    assert int(idle.generator.state.numpy()[1]) == 0                                # and no draws, as Keras
    for kwargs in ({"factor": 0.0}, {"scale": 0.0}, {"factor": (0.0, 0.0), "scale": (0.0, 0.0)}):
        still = make(seed=1, **kwargs)
        numpy.testing.assert_array_equal(to_numpy(still(x, training=True)), to_numpy(x))
        assert int(still.generator.state.numpy()[1]) == 0                           # nothing drawn, as Keras
    first = make(seed=5, data_format="channels_first")(x.transpose(0, 3, 1, 2))
    numpy.testing.assert_allclose(to_numpy(first).transpose(0, 2, 3, 1), ya, rtol=0, atol=1e-4)
    one = make(seed=5)(x[0])
    numpy.testing.assert_allclose(to_numpy(one), to_numpy(make(seed=5)(x[:1]))[0], rtol=0, atol=1e-4)
    assert make(seed=5)(xp.asarray(to_numpy(x).astype(numpy.uint8))).dtype == numpy.float32


def test_elastic_backward_is_the_adjoint_and_matches_finite_differences(xp, rng):
    layer = layers.RandomElasticTransform(scale=(0.8, 1.0), fill_mode="constant", value_range=(-100, 100), seed=4,
                                          dtype="float64")
    drawn = layer.draw(2, 11, 12)
    layer.draw = lambda n, h, w, xp=numpy: (numpy.array([True, False]),) + drawn[1:]
    x = xp.asarray(rng.standard_normal((2, 11, 12, 2)))
    y = layer(x, training=True)
    dy = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(dy)
    # y = A x inside the clip (fill value 0), so <A x, dy> = <x, A^T dy>
    numpy.testing.assert_allclose(float((y * dy).sum()), float((x * dx).sum()), rtol=1e-10)
    direction = xp.asarray(rng.standard_normal(x.shape))
    eps = 1e-6
    numeric = float(((layer(x + eps * direction) - layer(x - eps * direction)) * dy).sum()) / (2 * eps)
    numpy.testing.assert_allclose(float((dx * direction).sum()), numeric, rtol=1e-6)
    # the clip passes the gradient only where its input lay inside value_range (image 1 is not moved)
    clipped = layers.RandomElasticTransform(value_range=(-0.5, 0.5), seed=4, dtype="float64")
    clipped.draw = layer.draw
    passed = to_numpy(clipped.backward(xp.ones_like(clipped(x, training=True))))
    numpy.testing.assert_array_equal(passed[1], numpy.abs(to_numpy(x)[1]) <= 0.5)
    layer.input_gradient_wanted = False
    assert layer.backward(dy) is None


def test_elastic_config_and_bad_arguments():
    layer = layers.RandomElasticTransform(0.4, (0.7, 0.2), "nearest", "mirror", 3.0, (0, 1), seed=9,
                                          data_format="channels_first", name="e")
    config = layer.get_config()
    assert {k: config[k] for k in ("factor", "scale", "interpolation", "fill_mode", "fill_value", "value_range",
                                   "seed", "data_format")} == {
        "factor": (0.0, 0.4), "scale": (0.2, 0.7), "interpolation": "nearest", "fill_mode": "mirror",
        "fill_value": 3.0, "value_range": (0, 1), "seed": 9, "data_format": "channels_first"}
    again = layers.RandomElasticTransform.from_config(config)
    assert (again.factor, again.scale, again.fill_mode) == ((0.0, 0.4), (0.2, 0.7), "mirror")
    where = "RandomElasticTransform layer 'e'"
    for kwargs, what in (({"factor": 1.5}, "factor"), ({"factor": (0.1, 0.2, 0.3)}, "factor"),
                         ({"scale": -0.1}, "scale"), ({"scale": "big"}, "scale"),
                         ({"interpolation": "bicubic"}, "interpolation"), ({"fill_mode": "edge"}, "fill_mode"),
                         ({"fill_value": None}, "fill_value"), ({"value_range": (1, 0)}, "value_range"),
                         ({"seed": "s"}, "")):
        with pytest.raises(ValueError, match=f"{where}: {what}"):
            layers.RandomElasticTransform(name="e", **kwargs)
