"""keras.ops's ``polar``, ``view_as_complex`` and ``view_as_real`` as ``gpu_dl.ops.<name>`` against plain NumPy,
their gradients (through complex tensors back to real ones) against float64 finite differences, saving and
loading, the errors; ``jvp``'s clear refusal; and the namespaces ``gpu_dl.ops.numpy`` and ``gpu_dl.ops.nn``."""
import numpy
import pytest

import gpu_dl
from gpu_dl import ops
from gpu_dl.backend import array_module, to_numpy
from gpu_dl.models import load_model
from keras_ops_harness import assert_input_gradients


def test_polar_on_arrays_is_abs_times_cis_angle(xp, rng):
    r, theta = rng.uniform(0.5, 2.0, (3, 5)), rng.uniform(-3, 3, (5,))
    y = ops.polar(xp.asarray(r), xp.asarray(theta))
    assert array_module(y) is xp and y.dtype == numpy.complex128 and y.shape == (3, 5)
    numpy.testing.assert_allclose(to_numpy(y), r * numpy.exp(1j * theta), rtol=1e-14)
    assert ops.polar(xp.asarray(r, dtype="float32"), 0.5).dtype == numpy.complex64
    assert ops.polar(xp.asarray([1, 2], dtype="int32"), xp.asarray([0, 1], dtype="int32")).dtype == numpy.complex64


def test_the_views_between_complex_and_real_tensors(xp, rng):
    x = rng.standard_normal((4, 3, 2))
    z = ops.view_as_complex(xp.asarray(x))
    assert array_module(z) is xp and z.dtype == numpy.complex64 and z.shape == (4, 3)
    numpy.testing.assert_allclose(to_numpy(z), (x[..., 0] + 1j * x[..., 1]).astype("complex64"))
    back = ops.view_as_real(z)
    assert back.dtype == numpy.float32 and back.shape == (4, 3, 2)
    numpy.testing.assert_allclose(to_numpy(back), x, rtol=1e-6)
    w = x[..., 0] - 2j * x[..., 1]
    numpy.testing.assert_array_equal(to_numpy(ops.view_as_real(xp.asarray(w))), numpy.stack([w.real, w.imag], -1))
    assert ops.view_as_real(xp.asarray(w)).dtype == numpy.float64


def _polar_model():
    r, theta = gpu_dl.Input((5,), dtype="float64", name="r"), gpu_dl.Input((5,), dtype="float64", name="theta")
    return gpu_dl.Model([r, theta], ops.view_as_real(ops.polar(r, theta)))


def _round_trip_model():
    x = gpu_dl.Input((4, 2), dtype="float64", name="x")
    return gpu_dl.Model(x, ops.view_as_real(ops.view_as_complex(x * 3.0)) * x)


def test_gradients_through_complex_tensors_are_finite_differences(xp, rng):
    model = _polar_model()
    assert tuple(model.output_shape) == (None, 5, 2) and model.outputs[0].dtype == "float64"
    arrays = [xp.asarray(rng.uniform(0.5, 2.0, (3, 5))), xp.asarray(rng.uniform(-3, 3, (3, 5)))]
    y = model.forward(arrays)
    numpy.testing.assert_allclose(to_numpy(y[..., 0]), to_numpy(arrays[0] * xp.cos(arrays[1])), rtol=1e-14)
    grads = assert_input_gradients(model, arrays, xp.asarray(rng.standard_normal((3, 5, 2))), rng, "polar argument")
    assert all(grad.dtype == numpy.float64 for grad in grads)
    # view_as_complex computes in complex64, as Keras does: its round trip's gradient is exact to float32.
    model = _round_trip_model()
    x = xp.asarray(rng.standard_normal((2, 4, 2)))
    w = xp.asarray(rng.standard_normal((2, 4, 2)))
    model.forward(x, training=True)
    numpy.testing.assert_allclose(to_numpy(model.backward(w)), to_numpy(6 * x * w), rtol=1e-6)


def test_the_operations_are_saved_and_loaded_as_keras_writes_them(tmp_path, rng):
    model = _polar_model()
    arrays = [rng.uniform(0.5, 2.0, (3, 5)), rng.uniform(-3, 3, (3, 5))]
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    numpy.testing.assert_array_equal(loaded.forward(arrays), model.forward(arrays))
    entries = {e["class_name"]: e for e in loaded.get_config()["layers"] if e["module"].startswith("keras.src.ops")}
    assert entries["Polar"]["module"] == "keras.src.ops.nn" and entries["ViewAsReal"]["module"] == "keras.src.ops.math"
    model = _round_trip_model()
    model.save(tmp_path / "r.keras")
    x = rng.standard_normal((2, 4, 2))
    numpy.testing.assert_array_equal(load_model(tmp_path / "r.keras").forward(x), model.forward(x))


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match=r"view_as_complex .*last axis must hold 2 numbers.*\(4, 3\)"):
        ops.view_as_complex(numpy.ones((4, 3)))
    with pytest.raises(ValueError, match=r"view_as_complex .*last axis must hold 2"):
        ops.view_as_complex(gpu_dl.Input((3,)))
    with pytest.raises(TypeError, match=r"view_as_real .*must be a complex tensor.*float32"):
        ops.view_as_real(numpy.ones(3, "float32"))
    with pytest.raises(TypeError, match=r"view_as_complex .*must be a real tensor"):
        ops.view_as_complex(numpy.ones((3, 2), "complex64"))
    with pytest.raises(TypeError, match=r"polar .*must be real tensors"):
        ops.polar(numpy.ones(3, "complex64"), numpy.ones(3))
    with pytest.raises(ValueError, match="cannot be broadcast|broadcast"):
        ops.polar(numpy.ones(3), numpy.ones(4))


def test_jvp_says_gpu_dl_differentiates_in_reverse_mode():
    with pytest.raises(NotImplementedError, match=r"jvp: gpu_dl differentiates in reverse mode.*model.backward"):
        ops.jvp(lambda x: x * 2, (numpy.ones(3),), (numpy.ones(3),))
    assert ops.linalg.jvp is ops.jvp


def test_the_numpy_namespace_is_keras_s():
    from gpu_dl.ops import numpy as knp
    from gpu_dl.layers import keras_ops
    import gpu_dl.ops.pool  # noqa: F401 -- an internal module imported does not change the namespaces
    assert knp.mean is ops.mean and gpu_dl.ops.numpy.einsum is ops.einsum and knp.max is ops.max
    assert knp is not numpy and keras_ops.numpy is numpy        # keras_ops's functions keep NumPy
    assert len(dir(knp)) == 220 and "conv" not in dir(knp) and "relu" not in dir(knp) and "numpy" in dir(ops)
    numpy.testing.assert_array_equal(knp.cumsum(numpy.arange(4)), [0, 1, 3, 6])
    with pytest.raises(AttributeError, match="offers these of Keras's keras.ops.numpy"):
        knp.relu
    from gpu_dl.ops import nn
    assert nn.polar is ops.polar and "view_as_real" not in dir(nn)
