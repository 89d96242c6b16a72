"""gpu_dl.ops.scattering: scatter-adds of every dtype on both backends, and the steps built on them reading
nothing back from the device."""
import numpy
import pytest

from gpu_dl import layers, metrics
from gpu_dl.backend import to_numpy
from gpu_dl.ops.scattering import add_at, bin_counts, scatter_taps


@pytest.mark.parametrize("dtype", ["int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "uint64", "bool",
                                   "float16", "float32", "float64"])
def test_add_at_adds_repeated_indices_as_numpy_does_for_every_dtype(xp, rng, dtype):
    start = rng.integers(-100, 100, (5, 3)) if numpy.dtype(dtype).kind != "b" else rng.integers(0, 2, (5, 3))
    start = start.astype(dtype)
    index = numpy.array([4, 0, 4, 4, 2, 0])
    values = (rng.integers(-60, 60, (6, 3)) if numpy.dtype(dtype).kind != "b" else rng.integers(0, 2, (6, 3)))
    values = values.astype(dtype)
    if dtype == "int64":
        values[0, 0] = numpy.iinfo(numpy.int64).max      # wraps around as NumPy's int64 sums do
    expected = start.copy()
    numpy.add.at(expected, index, values)
    target = xp.asarray(start)
    add_at(target, xp.asarray(index), xp.asarray(values))
    assert target.dtype == numpy.dtype(dtype)
    numpy.testing.assert_array_equal(to_numpy(target), expected)


def test_scatter_taps_sums_each_tap_in_float64(xp):
    taps = [(xp.asarray([0, 2, 2]), xp.asarray([1.5, 2.0, 0.25], dtype=xp.float32)),
            (xp.asarray([3, 0]), xp.asarray([1.0, -1.0]))]
    out = scatter_taps(taps, 5, xp)
    assert out.dtype == numpy.float64
    numpy.testing.assert_array_equal(to_numpy(out), [0.5, 0.0, 2.25, 1.0, 0.0])


def test_bin_counts_is_numpy_s_bincount_with_minlength(xp, rng):
    index = rng.integers(0, 7, 40)
    weights = rng.standard_normal(40).astype("float32")
    counts = bin_counts(xp.asarray(index), 9)
    assert counts.dtype == numpy.int64
    numpy.testing.assert_array_equal(to_numpy(counts), numpy.bincount(index, minlength=9))
    sums = bin_counts(xp.asarray(index), 9, xp.asarray(weights))
    assert sums.dtype == numpy.float64
    numpy.testing.assert_allclose(to_numpy(sums), numpy.bincount(index, weights=weights, minlength=9), rtol=1e-12)


@pytest.mark.filterwarnings("ignore:cupyx.allow_synchronize")
def test_the_scattering_backwards_and_metric_updates_read_nothing_back(cupy_only, rng):
    """MeanIoU's and AUC's updates, RandomRotation's, RandomPerspective's and Resizing's backwards and
    ops.map_coordinates' scatter with add.at: CuPy's bincount would read its indices back to the host on every
    call."""
    cupyx = pytest.importorskip("cupyx")
    if not hasattr(cupyx, "allow_synchronize"):
        pytest.skip("this cupyx has no synchronisation detector (cupyx.allow_synchronize)")
    cupy = cupy_only
    from gpu_dl.layers.keras_ops.image_coordinates import sample_coordinates_backward
    iou, auc = metrics.MeanIoU(num_classes=3), metrics.AUC(num_thresholds=7)
    rotation, perspective = layers.RandomRotation(0.2, seed=3), layers.RandomPerspective(factor=1.0, seed=4)
    resizing = layers.Resizing(5, 7)
    images = cupy.asarray(rng.standard_normal((2, 6, 6, 2)).astype("float32"))
    rotation(images, training=True)
    perspective(images, training=True)
    resizing(images)
    truth, predicted = cupy.asarray(rng.integers(0, 3, 10)), cupy.asarray(rng.integers(0, 3, 10))
    coordinates = [cupy.asarray(rng.uniform(0, 5, (4,))) for _ in range(2)]
    dy = cupy.asarray(rng.standard_normal(4))
    with cupyx.allow_synchronize(False):
        iou.update_state(truth, predicted)
        auc.update_state(truth > 0, cupy.asarray(rng.random(10)))
        perspective_back = perspective.backward(cupy.ones((2, 6, 6, 2), dtype=cupy.float32))
        rotated_back = rotation.backward(cupy.ones((2, 6, 6, 2), dtype=cupy.float32))
        resized_back = resizing.backward(cupy.ones((2, 5, 7, 2), dtype=cupy.float32))
        sampled_back = sample_coordinates_backward(dy, (6, 6), coordinates, 1, "constant")
    assert rotated_back.shape == perspective_back.shape == resized_back.shape == (2, 6, 6, 2)
    assert 0.0 <= float(auc.result()) <= 1.0
    # every output pixel's gradient went back to some input pixel: the sums match (no taps lost)
    numpy.testing.assert_allclose(float(resized_back.sum()), 2 * 5 * 7 * 2, rtol=1e-5)
    numpy.testing.assert_allclose(float(sampled_back.sum()), float(dy.sum()), rtol=1e-6)
    matrix = numpy.zeros((3, 3))
    numpy.add.at(matrix, (to_numpy(truth), to_numpy(predicted)), 1.0)
    tp, fp_fn = numpy.diag(matrix), matrix.sum(0) + matrix.sum(1) - 2 * numpy.diag(matrix)
    present = tp + fp_fn > 0
    numpy.testing.assert_allclose(float(iou.result()), (tp / (tp + fp_fn))[present].mean(), rtol=1e-6)
