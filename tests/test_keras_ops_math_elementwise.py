"""Keras's element-wise maths ops as ``gpu_dl.ops.<name>`` (``layers/keras_ops/math_elementwise*.py``): on arrays
and in functional models against NumPy (and SciPy's special functions), gradients against float64 finite
differences, saving and loading, dtypes, integer and bool inputs, NaN and the infinities, ``stop_gradient`` in a
model, a composite layer and ``loss.backward()``, and what the ops refuse."""
import numpy
import pytest
import scipy.special

import gpu_dl
from gpu_dl import backend, layers, losses, ops
from gpu_dl.backend import array_module, to_numpy
from gpu_dl.models import load_model
from gpu_dl.models.saving import model_config
from keras_ops_harness import batch_shape, model_of, op_case_tests

N = 5
EXPONENTS = numpy.array([0, 1, -2, 3], dtype="int32")


def _floor(x):
    return numpy.floor(x)


# (id, the expression on a (N, 3, 4) in [0.5, 2] and b (N, 3, 4) signed with |b| in [0.2, 1], written once with
# gpu_dl.ops for arrays and symbolic tensors alike; what NumPy makes of it). All differentiable in float64.
CASES = [
    ("arccos", lambda a, b: ops.arccos(b * 0.9), lambda a, b: numpy.arccos(b * 0.9)),
    ("arccosh", lambda a, b: ops.arccosh(a + 1.0), lambda a, b: numpy.arccosh(a + 1.0)),
    ("arcsin", lambda a, b: ops.arcsin(b * 0.9), lambda a, b: numpy.arcsin(b * 0.9)),
    ("arcsinh", lambda a, b: ops.arcsinh(b * 3.0), lambda a, b: numpy.arcsinh(b * 3.0)),
    ("arctan", lambda a, b: ops.arctan(b * 3.0), lambda a, b: numpy.arctan(b * 3.0)),
    ("arctanh", lambda a, b: ops.arctanh(b * 0.9), lambda a, b: numpy.arctanh(b * 0.9)),
    ("cbrt", lambda a, b: ops.cbrt(b), lambda a, b: numpy.cbrt(b)),
    ("cosh_sinh", lambda a, b: ops.cosh(b) + ops.sinh(a), lambda a, b: numpy.cosh(b) + numpy.sinh(a)),
    ("tan", lambda a, b: ops.tan(b), lambda a, b: numpy.tan(b)),
    ("deg2rad_rad2deg", lambda a, b: ops.deg2rad(b * 90.0) + ops.rad2deg(a),
     lambda a, b: numpy.deg2rad(b * 90.0) + numpy.rad2deg(a)),
    ("erfc", lambda a, b: ops.erfc(b * 2.0), lambda a, b: scipy.special.erfc(b * 2.0)),
    ("erfinv", lambda a, b: ops.erfinv(b * 0.9), lambda a, b: scipy.special.erfinv(b * 0.9)),
    ("exp2_expm1", lambda a, b: ops.exp2(b) * ops.expm1(a), lambda a, b: numpy.exp2(b) * numpy.expm1(a)),
    ("logs", lambda a, b: ops.log10(a) + ops.log1p(a) * ops.log2(a + b + 1.0),
     lambda a, b: numpy.log10(a) + numpy.log1p(a) * numpy.log2(a + b + 1.0)),
    ("reciprocal_rsqrt", lambda a, b: ops.reciprocal(b) + ops.rsqrt(a), lambda a, b: 1 / b + 1 / numpy.sqrt(a)),
    ("fabs", lambda a, b: ops.fabs(b), lambda a, b: numpy.fabs(b)),
    ("sinc", lambda a, b: ops.sinc(b) + ops.sinc(ops.floor(b) * a),
     lambda a, b: numpy.sinc(b) + numpy.sinc(_floor(b) * a)),
    ("i0", lambda a, b: ops.i0(b * 3.0), lambda a, b: numpy.i0(b * 3.0)),
    ("ceil_floor", lambda a, b: ops.ceil(b * 3.0) * a + ops.floor(b * 3.0),
     lambda a, b: numpy.ceil(b * 3.0) * a + numpy.floor(b * 3.0)),
    ("round", lambda a, b: ops.round(b * 3.0) * a + ops.round(b, 1),
     lambda a, b: numpy.round(b * 3.0) * a + numpy.round(b, 1)),
    ("trunc_sign", lambda a, b: ops.trunc(b * 3.0) * a + ops.sign(b) * b,
     lambda a, b: numpy.trunc(b * 3.0) * a + numpy.sign(b) * b),
    ("angle", lambda a, b: ops.angle(b) * a, lambda a, b: numpy.where(b < 0, numpy.pi, 0.0) * a),
    ("copy_real_conj", lambda a, b: ops.copy(b) * ops.real(a) + ops.conj(b) * ops.conjugate(b) + ops.imag(a),
     lambda a, b: b * a + b * b),
    ("nan_to_num", lambda a, b: ops.nan_to_num(b, nan=0.5) * a, lambda a, b: b * a),
    ("saturate_cast", lambda a, b: ops.saturate_cast(b, "float64") * a, lambda a, b: b * a),
    ("arctan2", lambda a, b: ops.arctan2(b, a) + ops.arctan2(b, 0.5),
     lambda a, b: numpy.arctan2(b, a) + numpy.arctan2(b, 0.5)),
    ("logaddexp", lambda a, b: ops.logaddexp(a, b) + ops.logaddexp2(b * 3.0, a),
     lambda a, b: numpy.logaddexp(a, b) + numpy.logaddexp2(b * 3.0, a)),
    ("hypot", lambda a, b: ops.hypot(a, b), lambda a, b: numpy.hypot(a, b)),
    ("heaviside", lambda a, b: ops.heaviside(ops.floor(b), a) * b,
     lambda a, b: numpy.heaviside(_floor(b), a) * b),
    ("nextafter", lambda a, b: ops.nextafter(b, a), lambda a, b: numpy.nextafter(b, a)),
    ("divide_no_nan", lambda a, b: ops.divide_no_nan(a, ops.floor(b)) + ops.divide_no_nan(b, a),
     lambda a, b: numpy.where(_floor(b) == 0, 0.0, a / numpy.where(_floor(b) == 0, 1.0, _floor(b))) + b / a),
    ("fmod", lambda a, b: ops.fmod(b, a * 0.3), lambda a, b: numpy.fmod(b, a * 0.3)),
    ("mod", lambda a, b: ops.mod(b, a * 0.3) + ops.mod(b, 0.3), lambda a, b: numpy.mod(b, a * 0.3) + numpy.mod(b, 0.3)),
    ("floor_divide", lambda a, b: ops.floor_divide(b, 0.3) * a, lambda a, b: numpy.floor_divide(b, 0.3) * a),
    ("fmax_fmin", lambda a, b: ops.fmax(a - 1.0, b) + ops.fmin(b, a - 1.0),
     lambda a, b: numpy.fmax(a - 1.0, b) + numpy.fmin(b, a - 1.0)),
    ("ldexp", lambda a, b: ops.ldexp(b, 3) + ops.ldexp(a, EXPONENTS),
     lambda a, b: b * 8 + a * 2.0 ** EXPONENTS),
    ("constant_first", lambda a, b: ops.arctan2(0.5, b) + ops.fmod(0.7, a) + ops.hypot(0.5, b) + ops.logaddexp(0.3, b) +
     ops.divide_no_nan(1.0, ops.floor(b) + 1.0) + ops.fmax(0.1, b) + ops.ldexp(2.0, ops.cast(ops.floor(b), "int32")),
     lambda a, b: numpy.arctan2(0.5, b) + numpy.fmod(0.7, a) + numpy.hypot(0.5, b) + numpy.logaddexp(0.3, b) +
     numpy.where(_floor(b) == -1, 0.0, 1 / (_floor(b) + 1.0 + (_floor(b) == -1))) + numpy.fmax(0.1, b) +
     2.0 * 2.0 ** _floor(b)),
    ("isclose", lambda a, b: ops.where(ops.isclose(a, ops.round(a, 1), rtol=0.0, atol=0.03), a, b),
     lambda a, b: numpy.where(numpy.isclose(a, numpy.round(a, 1), rtol=0.0, atol=0.03), a, b)),
    ("predicates", lambda a, b: ops.where(ops.signbit(b), a, b) + ops.where(ops.isfinite(b), b, a) +
     ops.where(ops.logical_or(ops.isnan(a), ops.isinf(a)), a, b) + ops.where(ops.isreal(b), a, b) +
     ops.where(ops.logical_or(ops.isneginf(b), ops.isposinf(b)), a, b),
     lambda a, b: numpy.where(b < 0, a, b) + b + b + a + b),
]


(test_each_op_on_arrays_computes_what_numpy_does, test_each_op_in_a_functional_model_computes_what_numpy_does,
 test_each_op_has_the_gradient_of_finite_differences, test_each_op_is_saved_and_loaded_as_keras_writes_it) = \
    op_case_tests(CASES, rtol=1e-12, atol=1e-14, output_shape=batch_shape)


# ------------------------------------------------------------------ integers and bools
# (id, the expression on int32 i (N, 3, 4) in [-7, 7] and j in [1, 5], the expected result and its dtype). The
# integer results are joined with ops.stack, which keeps int32 (gpu_dl's `+` on integer tensors gives floats).
INTEGER_CASES = [
    ("bitwise", lambda i, j: ops.stack([ops.bitwise_and(i, j), ops.bitwise_or(i, j), ops.bitwise_xor(j, i)]),
     lambda i, j: numpy.stack([i & j, i | j, j ^ i]), "int32"),
    ("invert", lambda i, j: ops.stack([ops.bitwise_invert(i), ops.bitwise_not(j)]),
     lambda i, j: numpy.stack([~i, ~j]), "int32"),
    ("shifts", lambda i, j: ops.stack([ops.left_shift(i, 2), ops.right_shift(i, j), ops.bitwise_left_shift(j, j),
                                       ops.bitwise_right_shift(j, 1)]),
     lambda i, j: numpy.stack([i << 2, i >> j, j << j, j >> 1]), "int32"),
    ("gcd_lcm", lambda i, j: ops.stack([ops.gcd(i, j), ops.lcm(i, j)]),
     lambda i, j: numpy.stack([numpy.gcd(i, j), numpy.lcm(i, j)]), "int32"),
    ("mod_fmod_floor_divide", lambda i, j: ops.stack([ops.mod(i, j), ops.fmod(i, j), ops.floor_divide(i, j)]),
     lambda i, j: numpy.stack([numpy.mod(i, j), numpy.fmod(i, j), i // j]), "int32"),
    ("fmax_fmin", lambda i, j: ops.stack([ops.fmax(i, j), ops.fmin(i, 3)]),
     lambda i, j: numpy.stack([numpy.maximum(i, j), numpy.minimum(i, 3)]), "int32"),
    ("rounding", lambda i, j: ops.stack([ops.round(ops.left_shift(i, 2), -1), ops.trunc(i), ops.sign(i), ops.copy(j),
                                         ops.nan_to_num(i), ops.real(i), ops.conj(j), ops.imag(i)]),
     lambda i, j: numpy.stack([numpy.round(i * 4, -1), i, numpy.sign(i), j, i, i, j, 0 * i]), "int32"),
    ("to_floats", lambda i, j: ops.exp2(i) + ops.hypot(i, j) + ops.heaviside(i, j) + ops.arctan(i) + ops.ceil(i),
     lambda i, j: numpy.exp2(i) + numpy.hypot(i, j) + numpy.heaviside(i, j) + numpy.arctan(i) + i, "float32"),
    ("with_floats", lambda i, j: ops.mod(i, 2.5) + ops.ldexp(j, i) + ops.divide_no_nan(i, ops.fmod(j, 2)),
     lambda i, j: numpy.mod(i, 2.5) + j * 2.0 ** i + numpy.where(j % 2 == 0, 0, i / numpy.where(j % 2 == 0, 1, j % 2)),
     "float32"),
    ("predicates", lambda i, j: ops.stack([ops.where(ops.signbit(i), j, i), ops.where(ops.isnan(j), i, j),
                                           ops.where(ops.isfinite(i), j, i)]),
     lambda i, j: numpy.stack([numpy.where(i < 0, j, i), j, j]), "int32"),
]
INTEGER_IDS = [c[0] for c in INTEGER_CASES]


def _integers(rng):
    return rng.integers(-7, 8, (N, 3, 4)).astype("int32"), rng.integers(1, 6, (N, 3, 4)).astype("int32")


@pytest.mark.parametrize("name,expression,expected,dtype", INTEGER_CASES, ids=INTEGER_IDS)
def test_integer_inputs_on_arrays_and_in_models(xp, rng, tmp_path, name, expression, expected, dtype):
    i, j = _integers(rng)
    want = expected(i, j)
    y = expression(xp.asarray(i), xp.asarray(j))
    assert array_module(y) is xp and y.dtype == dtype
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=1e-6, atol=1e-5)
    model, used = model_of(expression, dtype="int32")
    xs = [xp.asarray((i, j)[k]) for k in used]
    y = model.forward(xs, training=True)
    assert y.dtype == dtype and model.output.dtype == dtype
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=1e-6, atol=1e-5)
    if dtype == "int32":                                                   # integer results send no gradient
        grads = model.backward(xp.ones(y.shape, dtype=y.dtype))
        assert all(g is None for g in (grads if isinstance(grads, list) else [grads]))
    if xp is numpy:
        model.save(tmp_path / "m.keras")
        numpy.testing.assert_allclose(load_model(tmp_path / "m.keras").predict([(i, j)[k] for k in used], verbose=0),
                                      want, rtol=1e-6, atol=1e-5)


@pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")       # arccos(-2), reciprocal(0), ...
def test_bool_inputs_and_keras_s_dtypes():
    flags = numpy.array([True, False, True])
    assert ops.bitwise_and(flags, numpy.array([True, True, False])).dtype == bool
    assert ops.bitwise_invert(flags).tolist() == [False, True, False]
    assert ops.mod(flags, flags).dtype == numpy.int32 and ops.fmax(flags, flags).dtype == bool
    assert ops.sign(flags).tolist() == [True, False, True] and ops.trunc(flags).dtype == bool
    assert ops.round(flags).dtype == bool and ops.arccos(flags).dtype == numpy.float32
    floats32 = numpy.linspace(-0.5, 0.5, 4, dtype="float32")
    for name in ("arccos", "cbrt", "ceil", "round", "sign", "erfc", "erfinv", "exp2", "rsqrt", "fabs", "i0", "sinc",
                 "angle", "copy", "nan_to_num", "real", "imag", "conj"):
        assert getattr(ops, name)(floats32).dtype == numpy.float32, name
        assert getattr(ops, name)(floats32.astype("float64")).dtype == numpy.float64, name
    ints = numpy.array([-2, 0, 3], dtype="int32")
    for name in ("arccos", "cbrt", "ceil", "floor", "erfc", "erfinv", "exp2", "expm1", "log1p", "reciprocal", "rsqrt",
                 "fabs", "i0", "sinc", "angle", "tan", "deg2rad"):
        assert getattr(ops, name)(ints).dtype == numpy.float32, name
    for name in ("round", "trunc", "sign", "copy", "nan_to_num", "real", "imag", "conj", "conjugate",
                 "bitwise_invert", "stop_gradient"):
        assert getattr(ops, name)(ints).dtype == numpy.int32, name
    for name in ("signbit", "isfinite", "isinf", "isnan", "isneginf", "isposinf", "isreal"):
        assert getattr(ops, name)(ints).dtype == bool and getattr(ops, name)(floats32).dtype == bool, name
    assert ops.mod(ints, 2).dtype == numpy.int32 and ops.mod(ints, 2.0).dtype == numpy.float32
    assert ops.arctan2(ints, ints).dtype == numpy.float32 and ops.ldexp(ints, ints).dtype == numpy.float32
    assert ops.arctan2(floats32, floats32.astype("float64")).dtype == numpy.float64
    assert ops.mod(7, 3).dtype == numpy.int32 and float(ops.mod(7, 3)) == 1
    assert ops.arctan2(1.0, 2.0).dtype == numpy.float32
    numpy.testing.assert_allclose(ops.arctan2([1.0, -1.0], 2.0), numpy.arctan2([1.0, -1.0], 2.0), rtol=1e-6)
    assert ops.saturate_cast(numpy.array([-1.0, 3.7, 300.0]), "uint8").tolist() == [0, 3, 255]
    assert ops.saturate_cast(numpy.array([1e40, -1e40]), "float32").tolist() == [numpy.finfo("float32").max,
                                                                                   numpy.finfo("float32").min]
    assert ops.saturate_cast(numpy.array([3e9, -3e9], dtype="float32"), "int32").tolist() == [2147483520,
                                                                                              -2147483648]
    assert ops.round(numpy.array([0.5, 1.5, 2.5, -0.5, 1.25]), 1).tolist() == [0.5, 1.5, 2.5, -0.5, 1.2]
    assert ops.round(numpy.array([0.5, 1.5, 2.5, -0.5])).tolist() == [0.0, 2.0, 2.0, -0.0]
    rounded = ops.round(numpy.array([15, 25, -15, 14, 1251], dtype="int32"), -1)
    assert rounded.dtype == numpy.int32 and rounded.tolist() == [20, 20, -20, 10, 1250]


def test_nan_and_the_infinities_on_arrays_and_in_a_model(xp, tmp_path):
    x = numpy.array([[1.5, numpy.nan, numpy.inf, -numpy.inf, -0.0, -2.0]])
    arrays = xp.asarray(x)
    assert to_numpy(ops.isnan(arrays)).tolist() == [[False, True, False, False, False, False]]
    assert to_numpy(ops.isinf(arrays)).tolist() == [[False, False, True, True, False, False]]
    assert to_numpy(ops.isposinf(arrays)).tolist() == [[False, False, True, False, False, False]]
    assert to_numpy(ops.isneginf(arrays)).tolist() == [[False, False, False, True, False, False]]
    assert to_numpy(ops.isfinite(arrays)).tolist() == [[True, False, False, False, True, True]]
    assert to_numpy(ops.signbit(arrays)).tolist() == [[False, False, False, True, True, True]]
    numpy.testing.assert_array_equal(to_numpy(ops.nan_to_num(arrays, nan=0.5, posinf=9.0, neginf=-9.0)),
                                     [[1.5, 0.5, 9.0, -9.0, 0.0, -2.0]])
    big = numpy.finfo("float64").max
    numpy.testing.assert_array_equal(to_numpy(ops.nan_to_num(arrays)), [[1.5, 0.0, big, -big, 0.0, -2.0]])
    numpy.testing.assert_array_equal(to_numpy(ops.fmax(arrays, 0.0)), [[1.5, 0.0, numpy.inf, 0.0, 0.0, 0.0]])
    numpy.testing.assert_array_equal(to_numpy(ops.angle(arrays)), [[0, numpy.nan, 0, numpy.pi, 0, numpy.pi]])
    assert to_numpy(ops.isclose(arrays, arrays)).tolist() == [[True, False, True, True, True, True]]
    assert to_numpy(ops.isclose(arrays, arrays, equal_nan=True)).all()
    assert ops.allclose(arrays, arrays, equal_nan=True) is True and ops.allclose(arrays, arrays) is False
    inputs = gpu_dl.Input((6,), dtype="float64")
    y = ops.nan_to_num(inputs, nan=0.5, posinf=9.0, neginf=-9.0) + ops.where(ops.isnan(inputs), 1.0, 0.0) + \
        ops.where(ops.isposinf(inputs), 2.0, 0.0) + ops.where(ops.isneginf(inputs), 4.0, 0.0) + \
        ops.cast(ops.isinf(inputs), "float64") * 10.0
    model = gpu_dl.Model(inputs, y)
    want = numpy.array([[1.5, 0.5 + 1.0, 9.0 + 2.0 + 10.0, -9.0 + 4.0 + 10.0, 0.0, -2.0]])
    numpy.testing.assert_array_equal(to_numpy(model.forward(arrays)), want)
    model.forward(arrays, training=True)
    numpy.testing.assert_array_equal(to_numpy(model.backward(xp.ones((1, 6)))),
                                     [[1.0, 0.0, 0.0, 0.0, 1.0, 1.0]])      # nan_to_num passes the finite ones
    model.save(tmp_path / "m.keras")
    numpy.testing.assert_array_equal(to_numpy(load_model(tmp_path / "m.keras").forward(arrays)), want)


def test_shape_queries_and_whole_tensor_ops(xp, rng):
    x = xp.asarray(rng.standard_normal((2, 3, 5)))
    assert ops.ndim(x) == 3 and ops.dtype(x) == "float64" and int(ops.size(x)) == 30
    assert array_module(ops.size(x)) is xp and ops.size(x).dtype == numpy.int32
    assert ops.is_tensor(x) and not ops.is_tensor([1.0]) and not ops.is_tensor(2.0)
    assert ops.allclose(x, x + 1e-9) is True and ops.allclose(x, x + 1e-3, atol=1e-4) is False
    assert ops.allclose(x, x + 1e-3, atol=2e-3) is True
    inputs = gpu_dl.Input((3, 5))
    assert ops.dtype(inputs) == "float32" and not ops.is_tensor(inputs)
    size, rank, close = ops.size(inputs), ops.ndim(inputs), ops.allclose(inputs, ops.round(inputs, 3), atol=1e-3)
    assert size.shape == () and size.dtype == "int32" and rank.shape == () and close.dtype == "bool"
    model = gpu_dl.Model(inputs, [size, rank, close])
    got = model.forward(x.astype("float32"))
    assert [int(got[0]), int(got[1]), bool(got[2])] == [30, 3, True]


def test_saturate_cast_clips_and_passes_the_gradient_inside_the_range(xp):
    inputs = gpu_dl.Input((4,), dtype="float64")
    model = gpu_dl.Model(inputs, ops.cast(ops.saturate_cast(inputs, "float16"), "float64"))
    x = xp.asarray([[1.5, 7e4, -7e4, -2.25]])
    numpy.testing.assert_array_equal(to_numpy(model.forward(x, training=True)), [[1.5, 65504.0, -65504.0, -2.25]])
    numpy.testing.assert_array_equal(to_numpy(model.backward(xp.full((1, 4), 3.0))), [[3.0, 0.0, 0.0, 3.0]])
    to_bytes = gpu_dl.Model(inputs, ops.saturate_cast(inputs * 100.0, "uint8"))
    y = to_bytes.forward(xp.asarray([[1.5, 7e4, -7e4, 0.0201]]), training=True)
    assert y.dtype == numpy.uint8 and to_numpy(y).tolist() == [[150, 255, 0, 2]]
    assert to_bytes.backward(xp.ones((1, 4), dtype="uint8")) is None          # an integer result sends none


# ------------------------------------------------------------------ stop_gradient
def test_stop_gradient_sends_nothing_back_in_a_model(xp, rng):
    a = gpu_dl.Input((4,), dtype="float64")
    model = gpu_dl.Model(a, ops.stop_gradient(a) * a + ops.sin(ops.stop_gradient(a)))
    x = xp.asarray(rng.standard_normal((3, 4)))
    numpy.testing.assert_allclose(to_numpy(model.forward(x)), to_numpy(x * x + xp.sin(x)), rtol=1e-12)
    model.forward(x, training=True)
    w = xp.asarray(rng.standard_normal((3, 4)))
    numpy.testing.assert_allclose(to_numpy(model.backward(w)), to_numpy(w * x), rtol=1e-12)    # not 2x + cos(x)
    alone = gpu_dl.Model(a, ops.stop_gradient(ops.square(a)))
    alone.forward(x, training=True)
    assert alone.backward(w) is None


class TargetNetwork(layers.Layer):
    """A value head trained toward a target made by a second head through stop_gradient: the second head's
    weights get no gradient and stay as they are."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.online = layers.Dense(1, dtype=kwargs.get("dtype"))
        self.target = layers.Dense(1, dtype=kwargs.get("dtype"))

    def call(self, x):
        return self.online(x) - ops.stop_gradient(self.target(x))


def test_stop_gradient_in_a_composite_layer_keeps_the_other_weights(xp, rng):
    backend.set_random_seed(4)
    inputs = gpu_dl.Input((3,))
    layer = TargetNetwork()
    model = gpu_dl.Model(inputs, layer(inputs))
    x, y = rng.standard_normal((32, 3)).astype("float32"), rng.standard_normal((32, 1)).astype("float32")
    model.compile(optimizer=gpu_dl.optimizers.SGD(0.1), loss="mse")
    online, target = layer.online.get_weights(), layer.target.get_weights()
    before = model.evaluate(x, y, verbose=0)
    with pytest.warns(UserWarning, match="Gradients do not exist for variables .*kernel"):
        model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before
    assert not numpy.allclose(layer.online.get_weights()[0], online[0])
    for old, new in zip(target, layer.target.get_weights()):
        numpy.testing.assert_array_equal(old, new)
    got = to_numpy(layer(xp.asarray(x[:4])))
    want = x[:4] @ layer.online.get_weights()[0] + layer.online.get_weights()[1] - \
        (x[:4] @ target[0] + target[1])
    numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_stop_gradient_on_arrays_ends_loss_backward(xp, rng):
    def mlp(name, n_in, n_out):
        model = gpu_dl.Sequential([gpu_dl.Input((n_in,), dtype="float64"), layers.Dense(4, activation="tanh",
                                   dtype="float64"), layers.Dense(n_out, dtype="float64")], name=name)
        model.set_weights([rng.standard_normal(w.shape) * 0.7 for w in model.get_weights()])
        return model
    g, d = mlp("g", 3, 2), mlp("d", 2, 1)
    z = xp.asarray(rng.standard_normal((5, 3)))
    fake = g(z, training=True)
    loss = losses.MeanSquaredError(dtype="float64")(xp.zeros((5, 1)), d(ops.stop_gradient(fake), training=True))
    loss.backward()
    assert all(v.grad is not None for v in d.trainable_weights)
    assert all(v.grad is None for v in g.trainable_weights)
    detached = ops.stop_gradient(loss)
    assert float(detached) == pytest.approx(float(loss))
    with pytest.raises(RuntimeError, match="detached"):
        detached.backward()


# ------------------------------------------------------------------ configs and refusals
def test_configs_hold_keras_modules_classes_and_settings():
    a = gpu_dl.Input((3,), name="a")
    y = ops.round(ops.nan_to_num(a, nan=1.0, posinf=2.0), decimals=2) + ops.erfc(a) + ops.rsqrt(a) + \
        ops.cast(ops.isclose(a, 1.0, 1e-3), "float32") + ops.stop_gradient(a) + ops.saturate_cast(a, "float16")
    entries = {e["class_name"]: e for e in model_config(gpu_dl.Model(a, y))["config"]["layers"]}
    assert entries["Round"]["module"] == "keras.src.ops.numpy" and entries["Round"]["config"]["decimals"] == 2
    assert {k: v for k, v in entries["NanToNum"]["config"].items() if k != "name"} == \
        {"nan": 1.0, "posinf": 2.0, "neginf": None}
    assert entries["Erfc"]["module"] == entries["Rsqrt"]["module"] == "keras.src.ops.math"
    assert entries["StopGradient"]["module"] == entries["SaturateCast"]["module"] == "keras.src.ops.core"
    assert entries["SaturateCast"]["config"]["dtype"] == "float16"
    assert entries["Isclose"]["config"] == {"name": entries["Isclose"]["name"], "equal_nan": False}
    assert entries["Isclose"]["inbound_nodes"][0]["args"][1:] == [1.0, 1e-3, 1e-8]


def test_what_the_ops_refuse():
    x, ints = gpu_dl.Input((3, 4)), gpu_dl.Input((3, 4), dtype="int32")
    with pytest.raises(TypeError, match="bitwise_and: the arguments must be integer or bool tensors, got dtype float"):
        ops.bitwise_and(x, ints)
    with pytest.raises(TypeError, match="bitwise_invert: `x` must be an integer or bool tensor"):
        ops.bitwise_invert(numpy.ones(3))
    with pytest.raises(TypeError, match="gcd: the arguments must be integer tensors"):
        ops.gcd(numpy.ones(3, dtype=bool), numpy.ones(3, dtype=bool))
    with pytest.raises(TypeError, match="left_shift: the arguments must be integers, got a float"):
        ops.left_shift(ints, 1.5)
    with pytest.raises(TypeError, match="ldexp: the exponent `x2` must be an integer"):
        ops.ldexp(x, x)
    with pytest.raises(TypeError, match="ldexp: the exponent `x2` must be an integer"):
        ops.ldexp(numpy.ones(3), 2.0)
    with pytest.raises(TypeError, match="round: `decimals` must be an integer"):
        ops.round(x, 1.5)
    with pytest.raises(TypeError, match="nan_to_num: `posinf` must be a number or None"):
        ops.nan_to_num(x, posinf="big")
    with pytest.raises(TypeError, match="isclose: `rtol` must be a number"):
        ops.isclose(x, x, rtol="tight")
    with pytest.raises(TypeError, match="isclose: `atol` must be a number"):
        ops.isclose(numpy.ones(3), 1.0, atol=None)
    with pytest.raises(ValueError, match="Arctan2.*cannot broadcast shapes"):
        ops.arctan2(x, gpu_dl.Input((5,)))
    with pytest.raises(ValueError, match="Hypot.*cannot broadcast shapes"):
        ops.hypot(x, gpu_dl.Input((2, 4)))
    with pytest.raises(ValueError, match=r"^fmod: cannot broadcast shapes \(2, 3\) and \(1, 4\)"):
        ops.fmod(numpy.ones((2, 3)), numpy.ones(4))
    with pytest.raises(ValueError, match=r"^allclose: cannot broadcast shapes"):
        ops.allclose(numpy.ones((2, 3)), numpy.ones(4))
    with pytest.raises(TypeError, match="is not a dtype"):
        ops.saturate_cast(x, "x")
    with pytest.raises(TypeError, match="arctan2\\(\\) missing 1 required positional argument: 'x2'"):
        ops.arctan2(x)
    with pytest.raises(TypeError, match="bitwise_or\\(\\) got an unexpected keyword argument 'x2'"):
        ops.bitwise_or(ints, x2=ints)
