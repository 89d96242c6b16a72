"""Optimizers: update rules against plain NumPy, clipping, legacy arguments, validation, state, registry.

Each rule is written out below as a float64 NumPy function of (weights,
gradient, state, step, lr); the optimizers must reproduce it over several
steps on odd shapes. Where keras is importable, the same steps are also
compared with ``keras.optimizers`` (torch backend).
"""
import math
import os
import warnings

import numpy
import pytest

from gpu_dl import optimizers
from gpu_dl.layers.base import Variable
from gpu_dl.optimizers import schedules

SHAPES = [(1,), (3, 17), (33,), (2, 3, 5)]
EPS = 1e-7


# --------------------------------------------------------------------------- reference rules
def ref_sgd(w, g, s, t, lr, momentum=0.0, nesterov=False):
    if momentum == 0:
        return w - lr * g
    s["m"] = momentum * s.get("m", numpy.zeros_like(w)) - lr * g
    if nesterov:
        return w + momentum * s["m"] - lr * g
    return w + s["m"]


def ref_rmsprop(w, g, s, t, lr, rho=0.9, momentum=0.0, epsilon=EPS, centered=False):
    s["v"] = rho * s.get("v", numpy.zeros_like(w)) + (1 - rho) * g ** 2
    if centered:
        s["a"] = rho * s.get("a", numpy.zeros_like(w)) + (1 - rho) * g
        step = lr * g / numpy.sqrt(s["v"] - s["a"] ** 2 + epsilon)
    else:
        step = lr * g / numpy.sqrt(s["v"] + epsilon)
    if momentum > 0:
        s["m"] = momentum * s.get("m", numpy.zeros_like(w)) + step
        return w - s["m"]
    return w - step


def ref_adagrad(w, g, s, t, lr, initial_accumulator_value=0.1, epsilon=EPS):
    s["acc"] = s.get("acc", numpy.full_like(w, initial_accumulator_value)) + g ** 2
    return w - lr * g / numpy.sqrt(s["acc"] + epsilon)


def ref_adadelta(w, g, s, t, lr, rho=0.95, epsilon=EPS):
    s["eg"] = rho * s.get("eg", numpy.zeros_like(w)) + (1 - rho) * g ** 2
    dx = -numpy.sqrt(s.get("ed", numpy.zeros_like(w)) + epsilon) / numpy.sqrt(s["eg"] + epsilon) * g
    s["ed"] = rho * s.get("ed", numpy.zeros_like(w)) + (1 - rho) * dx ** 2
    return w + lr * dx


def ref_adam(w, g, s, t, lr, beta_1=0.9, beta_2=0.999, epsilon=EPS, amsgrad=False, weight_decay=None):
    if weight_decay:
        w = w * (1 - weight_decay * lr)
    s["m"] = beta_1 * s.get("m", numpy.zeros_like(w)) + (1 - beta_1) * g
    s["v"] = beta_2 * s.get("v", numpy.zeros_like(w)) + (1 - beta_2) * g ** 2
    v = s["v"]
    if amsgrad:
        s["vh"] = numpy.maximum(s.get("vh", numpy.zeros_like(w)), s["v"])
        v = s["vh"]
    # Keras's "epsilon hat": the bias correction multiplies the step, epsilon is not corrected.
    lr_t = lr * math.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    return w - lr_t * s["m"] / (numpy.sqrt(v) + epsilon)


def ref_adamax(w, g, s, t, lr, beta_1=0.9, beta_2=0.999, epsilon=EPS):
    s["m"] = beta_1 * s.get("m", numpy.zeros_like(w)) + (1 - beta_1) * g
    s["u"] = numpy.maximum(beta_2 * s.get("u", numpy.zeros_like(w)), numpy.abs(g))
    return w - (lr / (1 - beta_1 ** t)) * s["m"] / (s["u"] + epsilon)


def ref_nadam(w, g, s, t, lr, beta_1=0.9, beta_2=0.999, epsilon=EPS):
    # The momentum-cache product is a per-step quantity: the caller shares `cache` between variables.
    mu = [beta_1 * (1 - 0.5 * 0.96 ** k) for k in range(1, t + 2)]
    prod_t = float(numpy.prod(mu[:t]))
    prod_next = prod_t * mu[t]
    s["m"] = beta_1 * s.get("m", numpy.zeros_like(w)) + (1 - beta_1) * g
    s["v"] = beta_2 * s.get("v", numpy.zeros_like(w)) + (1 - beta_2) * g ** 2
    m_hat = mu[t] * s["m"] / (1 - prod_next) + (1 - mu[t - 1]) * g / (1 - prod_t)
    v_hat = s["v"] / (1 - beta_2 ** t)
    return w - lr * m_hat / (numpy.sqrt(v_hat) + epsilon)


def ref_lion(w, g, s, t, lr, beta_1=0.9, beta_2=0.99):
    m = s.get("m", numpy.zeros_like(w))
    w = w - lr * numpy.sign(beta_1 * m + (1 - beta_1) * g)
    s["m"] = beta_2 * m + (1 - beta_2) * g
    return w


def ref_lamb(w, g, s, t, lr, beta_1=0.9, beta_2=0.999, epsilon=EPS):
    s["m"] = beta_1 * s.get("m", numpy.zeros_like(w)) + (1 - beta_1) * g
    s["v"] = beta_2 * s.get("v", numpy.zeros_like(w)) + (1 - beta_2) * g ** 2
    r = (s["m"] / (1 - beta_1 ** t)) / (numpy.sqrt(s["v"] / (1 - beta_2 ** t)) + epsilon)
    # The trust ratio is taken over the whole variable, whatever its shape.
    w_norm, r_norm = math.sqrt(float(numpy.sum(w ** 2))), math.sqrt(float(numpy.sum(r ** 2)))
    ratio = w_norm / r_norm if w_norm > 0 and r_norm > 0 else 1.0
    return w - ratio * lr * r


def ref_ftrl(w, g, s, t, lr, learning_rate_power=-0.5, initial_accumulator_value=0.1,
             l1_regularization_strength=0.0, l2_regularization_strength=0.0,
             l2_shrinkage_regularization_strength=0.0, beta=0.0):
    p = -learning_rate_power
    acc = s.get("acc", numpy.full_like(w, initial_accumulator_value))
    n = acc + g ** 2
    s["linear"] = s.get("linear", numpy.zeros_like(w)) + g + 2 * l2_shrinkage_regularization_strength * w \
        - (n ** p - acc ** p) / lr * w
    quadratic = n ** p / lr + 2 * (l2_regularization_strength + beta / (2 * lr))
    s["acc"] = n
    l1 = l1_regularization_strength
    return (numpy.clip(s["linear"], -l1, l1) - s["linear"]) / quadratic


def ref_adafactor(w, g, s, t, lr, beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=1e-3, clip_threshold=1.0,
                  relative_step=True):
    if relative_step:
        lr = min(lr, 1 / math.sqrt(t))
    rho = min(lr, 1 / math.sqrt(t))
    alpha = max(epsilon_2, math.sqrt(float(numpy.mean(w ** 2)))) * rho
    square = g ** 2 + epsilon_1
    beta = 1 - t ** beta_2_decay
    if w.ndim >= 2:
        # Row means over the last axis and column means over the one before: v is their normalised outer product.
        s["r"] = beta * s.get("r", 0.0) + (1 - beta) * square.mean(axis=-1)
        s["c"] = beta * s.get("c", 0.0) + (1 - beta) * square.mean(axis=-2)
        v = (s["r"] / s["r"].mean(axis=-1, keepdims=True))[..., None] * s["c"][..., None, :]
    else:
        s["v"] = beta * s.get("v", 0.0) + (1 - beta) * square
        v = s["v"]
    u = g / numpy.sqrt(v)
    return w - alpha * u / max(1.0, math.sqrt(float(numpy.mean(u ** 2))) / clip_threshold)


CASES = [
    ("SGD", {}, ref_sgd),
    ("SGD", {"momentum": 0.9}, ref_sgd),
    ("SGD", {"momentum": 0.5, "nesterov": True}, ref_sgd),
    ("RMSprop", {}, ref_rmsprop),
    ("RMSprop", {"momentum": 0.7}, ref_rmsprop),
    ("RMSprop", {"centered": True}, ref_rmsprop),
    ("RMSprop", {"centered": True, "momentum": 0.3, "rho": 0.8}, ref_rmsprop),
    ("Adagrad", {}, ref_adagrad),
    ("Adagrad", {"initial_accumulator_value": 0.5, "epsilon": 1e-3}, ref_adagrad),
    ("Adadelta", {}, ref_adadelta),
    ("Adam", {}, ref_adam),
    ("Adam", {"amsgrad": True, "beta_1": 0.8}, ref_adam),
    ("AdamW", {}, ref_adam),
    ("AdamW", {"weight_decay": 0.1, "amsgrad": True}, ref_adam),
    ("Adamax", {}, ref_adamax),
    ("Nadam", {}, ref_nadam),
    ("Nadam", {"beta_1": 0.5, "beta_2": 0.9}, ref_nadam),
    ("Lion", {}, ref_lion),
    ("Lion", {"beta_1": 0.5, "beta_2": 0.9}, ref_lion),
    ("Lamb", {}, ref_lamb),
    ("Lamb", {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-3}, ref_lamb),
    ("Ftrl", {}, ref_ftrl),
    ("Ftrl", {"learning_rate_power": -0.3, "initial_accumulator_value": 0.5, "l1_regularization_strength": 0.01,
              "l2_regularization_strength": 0.1, "l2_shrinkage_regularization_strength": 0.05, "beta": 0.3}, ref_ftrl),
    ("Adafactor", {}, ref_adafactor),
    ("Adafactor", {"relative_step": False, "beta_2_decay": -0.5, "epsilon_2": 0.5, "clip_threshold": 0.1},
     ref_adafactor),
]
CASE_IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for n, kw, _ in CASES]


def _reference_kwargs(name, kwargs):
    kw = dict(kwargs)
    if name == "AdamW":
        kw.setdefault("weight_decay", 0.004)
    return kw


def make_variables(xp, rng, shapes=SHAPES, dtype="float64"):
    return [Variable(xp.asarray(rng.normal(size=s).astype(dtype)), f"w{i}", path=f"layer/w{i}")
            for i, s in enumerate(shapes)]


def host(a):
    return a.get() if hasattr(a, "get") else numpy.asarray(a)


def run_reference(ref, kwargs, weights, grad_steps, lr):
    weights = [w.copy() for w in weights]
    states = [dict() for _ in weights]
    for t, grads in enumerate(grad_steps, start=1):
        weights = [ref(w, g, s, t, lr, **kwargs) for w, g, s in zip(weights, grads, states)]
    return weights


# --------------------------------------------------------------------------- update rules
@pytest.mark.parametrize("name,kwargs,ref", CASES, ids=CASE_IDS)
def test_update_rule_matches_numpy_reference(xp, rng, name, kwargs, ref):
    lr = 0.05
    variables = make_variables(xp, rng)
    start = [host(v.value).copy() for v in variables]
    grad_steps = [[rng.normal(size=s) for s in SHAPES] for _ in range(4)]
    opt = getattr(optimizers, name)(learning_rate=lr, **kwargs)
    for grads in grad_steps:
        for v, g in zip(variables, grads):
            v.grad = xp.asarray(g)
        opt.apply(variables)
    expected = run_reference(ref, _reference_kwargs(name, kwargs), start, grad_steps, lr)
    assert opt.iterations == 4
    for v, e in zip(variables, expected):
        numpy.testing.assert_allclose(host(v.value), e, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,kwargs,ref", CASES, ids=CASE_IDS)
def test_float32_variables_stay_float32(xp, rng, name, kwargs, ref):
    variables = make_variables(xp, rng, dtype="float32")
    start = [host(v.value).astype("float64") for v in variables]
    grad_steps = [[rng.normal(size=s).astype("float32") for s in SHAPES] for _ in range(3)]
    opt = getattr(optimizers, name)(learning_rate=0.01, **kwargs)
    for grads in grad_steps:
        opt.apply_gradients([(xp.asarray(g), v) for g, v in zip(grads, variables)])
    for v in variables:
        assert v.value.dtype == numpy.float32
    # Keras's order: the step count and the learning rate, then the slots (Variables over the arrays updated)
    assert [v.path for v in opt.variables[:2]] == [f"{opt.name}/iteration", f"{opt.name}/learning_rate"]
    # Nadam's momentum product, last (path "variable"), is a scalar the step reads on the host, as the rate is
    extra = [v for v in opt.variables[2:] if v.path == "variable"]
    assert [(v.shape, v.dtype) for v in extra] == ([((), numpy.float32)] if name == "Nadam" else [])
    for slot in [v.value for v in opt.variables[2:] if v.path != "variable"]:
        # Adafactor keeps int32 placeholders for the factors of variables of rank < 2, as Keras does.
        assert slot.dtype == numpy.float32 or (name == "Adafactor" and slot.shape == ())
        assert type(slot) is type(variables[0].value)
    expected = run_reference(ref, _reference_kwargs(name, kwargs), start,
                             [[g.astype("float64") for g in gs] for gs in grad_steps], 0.01)
    for v, e in zip(variables, expected):
        numpy.testing.assert_allclose(host(v.value), e, rtol=2e-5, atol=2e-6)


def test_slots_are_created_on_first_apply_with_keras_names(xp, rng):
    variables = make_variables(xp, rng, shapes=[(3,), (17,)])
    opt = optimizers.Adam(amsgrad=True)
    assert [(v.path, v.dtype) for v in opt.variables] == [(f"{opt.name}/iteration", numpy.int32),
                                                          (f"{opt.name}/learning_rate", numpy.float32)]
    for v in variables:
        v.grad = xp.ones(v.shape)
    opt.apply(variables)
    assert host(opt.get_slot(variables[1], "velocity_hat")).shape == (17,)
    # Keras's order: momentum/velocity per variable, then the velocity_hat group.
    order = [opt.get_slot(variables[0], "momentum"), opt.get_slot(variables[0], "velocity"),
             opt.get_slot(variables[1], "momentum"), opt.get_slot(variables[1], "velocity"),
             opt.get_slot(variables[0], "velocity_hat"), opt.get_slot(variables[1], "velocity_hat")]
    assert all(a.value is b for a, b in zip(opt.variables[2:], order)) and len(opt.variables) == 8
    assert int(opt.variables[0].numpy()) == 1 and opt.variables[1] is opt.learning_rate
    assert [v.name for v in opt.variables[2:4]] == [f"{variables[0].path.replace('/', '_')}_momentum",
                                                    f"{variables[0].path.replace('/', '_')}_velocity"]
    adagrad = optimizers.Adagrad(initial_accumulator_value=0.25)
    adagrad.build(variables)
    numpy.testing.assert_array_equal(host(adagrad.get_slot(variables[0], "accumulator")), numpy.full(3, 0.25))


def test_nadam_momentum_cache_advances_once_per_step_not_per_variable(rng):
    # With many variables a per-variable update of the product would drift fast.
    shapes = [(3,)] * 7
    variables = make_variables(numpy, rng, shapes=shapes)
    start = [v.value.copy() for v in variables]
    grad_steps = [[rng.normal(size=s) for s in shapes] for _ in range(3)]
    opt = optimizers.Nadam(learning_rate=0.1)
    for grads in grad_steps:
        opt.apply_gradients(zip(grads, variables))
    expected = run_reference(ref_nadam, {}, start, grad_steps, 0.1)
    for v, e in zip(variables, expected):
        numpy.testing.assert_allclose(v.value, e, rtol=1e-12)
    mus = [0.9 * (1 - 0.5 * 0.96 ** k) for k in (1, 2, 3)]
    assert opt.state_dict(variables)["extra"]["u_product"] == pytest.approx(numpy.prod(mus), rel=1e-14)


# --------------------------------------------------------------------------- clipping and weight decay
def _one_sgd_step(xp, opt, grads):
    variables = [Variable(xp.zeros(g.shape), f"w{i}") for i, g in enumerate(grads)]
    opt.apply_gradients([(xp.asarray(g), v) for g, v in zip(grads, variables)])
    return [-host(v.value) for v in variables]   # lr = 1: the applied gradient


def test_clipnorm_clips_each_gradient_by_its_own_norm(xp, rng):
    grads = [rng.normal(size=(3, 17)) * 5, rng.normal(size=(33,)) * 0.01, numpy.zeros((1,))]
    applied = _one_sgd_step(xp, optimizers.SGD(learning_rate=1.0, clipnorm=1.5), grads)
    for g, a in zip(grads, applied):
        norm = numpy.sqrt(numpy.sum(g ** 2))
        numpy.testing.assert_allclose(a, g * 1.5 / max(norm, 1.5), rtol=1e-12, atol=0)
    assert numpy.linalg.norm(applied[0]) == pytest.approx(1.5)


def test_global_clipnorm_scales_all_gradients_together(xp, rng):
    grads = [rng.normal(size=(3, 17)), rng.normal(size=(33,)), rng.normal(size=(1,))]
    total = math.sqrt(sum(float(numpy.sum(g ** 2)) for g in grads))
    for limit in (0.5 * total, 2 * total):
        applied = _one_sgd_step(xp, optimizers.SGD(learning_rate=1.0, global_clipnorm=limit), grads)
        for g, a in zip(grads, applied):
            numpy.testing.assert_allclose(a, g * limit / max(total, limit), rtol=1e-12)


def test_global_clipnorm_of_an_infinite_gradient_gives_nan(xp):
    grads = [numpy.array([numpy.inf, 1.0]), numpy.array([2.0])]
    applied = _one_sgd_step(xp, optimizers.SGD(learning_rate=1.0, global_clipnorm=1.0), grads)
    assert all(numpy.isnan(a).all() for a in applied)


def test_clipvalue_clips_elementwise(xp, rng):
    grads = [rng.normal(size=(33,)) * 3]
    applied = _one_sgd_step(xp, optimizers.SGD(learning_rate=1.0, clipvalue=0.7), grads)
    numpy.testing.assert_array_equal(applied[0], numpy.clip(grads[0], -0.7, 0.7))


def test_loss_scale_factor_divides_gradients(xp, rng):
    grads = [rng.normal(size=(17,))]
    applied = _one_sgd_step(xp, optimizers.SGD(learning_rate=1.0, loss_scale_factor=8.0), grads)
    numpy.testing.assert_allclose(applied[0], grads[0] / 8.0, rtol=1e-15)


def test_weight_decay_is_decoupled_and_applied_before_the_update(xp, rng):
    variables = make_variables(xp, rng, shapes=[(3,), (17,)])
    variables[1].name = "bias"
    start = [host(v.value).copy() for v in variables]
    grads = [rng.normal(size=(3,)), rng.normal(size=(17,))]
    opt = optimizers.SGD(learning_rate=0.1, momentum=0.9, weight_decay=0.3)
    opt.exclude_from_weight_decay(var_names=["bias"])
    opt.apply_gradients([(xp.asarray(g), v) for g, v in zip(grads, variables)])
    numpy.testing.assert_allclose(host(variables[0].value), start[0] * (1 - 0.3 * 0.1) - 0.1 * grads[0], rtol=1e-13)
    numpy.testing.assert_allclose(host(variables[1].value), start[1] - 0.1 * grads[1], rtol=1e-13)


def test_constraint_projects_after_the_update(xp, rng):
    var = make_variables(xp, rng, shapes=[(17,)])[0]
    var.constraint = lambda w: w.clip(-0.1, 0.1)
    start = host(var.value).copy()
    g = rng.normal(size=(17,))
    optimizers.SGD(learning_rate=0.5).apply_gradients([(xp.asarray(g), var)])
    numpy.testing.assert_allclose(host(var.value), numpy.clip(start - 0.5 * g, -0.1, 0.1), rtol=1e-15)


# --------------------------------------------------------------------------- learning rate
def test_legacy_lr_alias_and_both_given(xp):
    assert optimizers.Adam(lr=0.02).learning_rate == 0.02
    assert optimizers.SGD(lr=0.3).get_config()["learning_rate"] == 0.3
    with pytest.raises(TypeError, match="lr"):
        optimizers.Adam(learning_rate=0.001, lr=0.02)
    with pytest.raises(TypeError, match="lr"):
        optimizers.SGD(0.5, lr=0.02)


def test_unknown_keyword_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="bogus"):
        optimizers.Adam(bogus=1)


def test_legacy_decay_is_keras2_time_based(xp, rng):
    var = make_variables(xp, rng, shapes=[(3,)])[0]
    expected = host(var.value).copy()
    opt = optimizers.SGD(learning_rate=0.1, decay=0.5)
    for k in range(4):
        g = rng.normal(size=(3,))
        assert opt.effective_learning_rate == pytest.approx(0.1 / (1 + 0.5 * k))
        opt.apply_gradients([(xp.asarray(g), var)])
        expected = expected - 0.1 / (1 + 0.5 * k) * g
    numpy.testing.assert_allclose(host(var.value), expected, rtol=1e-13)
    assert opt.learning_rate == 0.1 and opt.get_config()["decay"] == 0.5


def test_learning_rate_setter_changes_the_next_step(xp, rng):
    var = make_variables(xp, rng, shapes=[(3,)])[0]
    start = host(var.value).copy()
    opt = optimizers.SGD(learning_rate=0.1)
    rate = opt.learning_rate
    opt.learning_rate = 0.25
    # as in Keras, a float32 variable, the same one before and after it is set
    assert opt.learning_rate is rate and float(rate) == 0.25 and rate.dtype == numpy.float32
    g = rng.normal(size=(3,))
    opt.apply_gradients([(xp.asarray(g), var)])
    numpy.testing.assert_allclose(host(var.value), start - 0.25 * g, rtol=1e-14)
    opt.lr = 0.5   # Keras 2's attribute
    assert opt.learning_rate == 0.5
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate = -1.0
    assert opt.learning_rate == 0.5


def test_schedule_drives_the_optimizer_and_is_not_settable(xp, rng):
    schedule = schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    var = make_variables(xp, rng, shapes=[(17,)])[0]
    expected = host(var.value).copy()
    opt = optimizers.SGD(learning_rate=schedule)
    for k in range(4):
        assert opt.learning_rate == pytest.approx(0.1 * 0.5 ** (k / 2))
        g = rng.normal(size=(17,))
        opt.apply_gradients([(xp.asarray(g), var)])
        expected = expected - 0.1 * 0.5 ** (k / 2) * g
    numpy.testing.assert_allclose(host(var.value), expected, rtol=1e-13)
    with pytest.raises(TypeError, match="schedule|settable|ExponentialDecay"):
        opt.learning_rate = 0.01


def test_callable_learning_rate_is_called_without_arguments(xp, rng):
    calls = []
    opt = optimizers.SGD(learning_rate=lambda: calls.append(1) or 0.2)
    var = make_variables(xp, rng, shapes=[(3,)])[0]
    start = host(var.value).copy()
    g = rng.normal(size=(3,))
    opt.apply_gradients([(xp.asarray(g), var)])
    assert calls
    numpy.testing.assert_allclose(host(var.value), start - 0.2 * g, rtol=1e-14)


# --------------------------------------------------------------------------- bad input changes nothing
@pytest.mark.parametrize("kwargs,error,word", [
    ({"learning_rate": -0.1}, ValueError, "learning_rate"),
    ({"learning_rate": float("nan")}, ValueError, "learning_rate"),
    ({"learning_rate": "fast"}, TypeError, "learning_rate"),
    ({"clipnorm": 0.0}, ValueError, "clipnorm"),
    ({"clipnorm": -1.0}, ValueError, "clipnorm"),
    ({"global_clipnorm": 0.0}, ValueError, "global_clipnorm"),
    ({"clipvalue": -2.0}, ValueError, "clipvalue"),
    ({"clipnorm": 1.0, "global_clipnorm": 1.0}, ValueError, "global_clipnorm"),
    ({"beta_1": 1.0}, ValueError, "beta_1"),
    ({"epsilon": -1e-7}, ValueError, "epsilon"),
    ({"decay": -0.1}, ValueError, "decay"),
    ({"weight_decay": -0.1}, ValueError, "weight_decay"),
])
def test_bad_constructor_arguments_raise(kwargs, error, word):
    with pytest.raises(error, match=word):
        optimizers.Adam(**kwargs)


def test_bad_hyperparameters_of_each_optimizer_raise():
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="rho"):
        optimizers.RMSprop(rho=-0.1)
    with pytest.raises(ValueError, match="initial_accumulator_value"):
        optimizers.Adagrad(initial_accumulator_value=-1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        optimizers.AdamW(weight_decay=None)
    var = Variable(numpy.zeros(3), "w")
    with pytest.raises(NotImplementedError, match="update_step"):
        optimizers.Optimizer(0.1).apply_gradients([(numpy.ones(3), var)])
    numpy.testing.assert_array_equal(var.value, numpy.zeros(3))


@pytest.mark.parametrize("name,kwargs,word", [
    ("Lion", {"beta_1": 0.0}, "beta_1"), ("Lion", {"beta_1": 1.5}, "beta_1"), ("Lion", {"beta_2": -0.1}, "beta_2"),
    ("Lamb", {"beta_1": 1.0}, "beta_1"), ("Lamb", {"beta_2": 2.0}, "beta_2"), ("Lamb", {"epsilon": -1.0}, "epsilon"),
    ("Lamb", {"learning_rate": -1.0}, "learning_rate"),
    ("Ftrl", {"learning_rate_power": 0.5}, "learning_rate_power"),
    ("Ftrl", {"initial_accumulator_value": -0.1}, "initial_accumulator_value"),
    ("Ftrl", {"l1_regularization_strength": -1.0}, "l1_regularization_strength"),
    ("Ftrl", {"l2_regularization_strength": -1.0}, "l2_regularization_strength"),
    ("Ftrl", {"l2_shrinkage_regularization_strength": -1.0}, "l2_shrinkage_regularization_strength"),
    ("Ftrl", {"beta": float("inf")}, "beta"),
    ("Adafactor", {"beta_2_decay": 0.5}, "beta_2_decay"), ("Adafactor", {"epsilon_1": -1.0}, "epsilon_1"),
    ("Adafactor", {"epsilon_2": -1.0}, "epsilon_2"), ("Adafactor", {"clip_threshold": 0.0}, "clip_threshold"),
])
def test_bad_arguments_of_the_newer_optimizers_name_optimizer_and_argument(name, kwargs, word):
    with pytest.raises(ValueError, match=f"{name}( '[a-z_0-9]+')?: argument `{word}`"):
        getattr(optimizers, name)(**kwargs)


def _snapshot(opt, variables):
    return (opt.iterations, [host(v.value).copy() for v in variables],
            [s.numpy() for s in opt.variables if s.name != "learning_rate"],
            dict(opt.state_dict(variables)["extra"]))


def _assert_unchanged(before, after):
    assert before[0] == after[0]
    for a, b in zip(before[1] + before[2], after[1] + after[2]):
        numpy.testing.assert_array_equal(a, b)
    assert len(before[2]) == len(after[2]) and before[3] == after[3]


@pytest.mark.parametrize("name", ["SGD", "Adam", "Nadam", "RMSprop"])
def test_bad_step_changes_nothing(xp, rng, name):
    variables = make_variables(xp, rng, shapes=[(3,), (17,)])
    opt = getattr(optimizers, name)(**({"momentum": 0.9} if name == "SGD" else {}))
    opt.apply_gradients([(xp.asarray(rng.normal(size=v.shape)), v) for v in variables])
    before = _snapshot(opt, variables)
    good = xp.asarray(rng.normal(size=(3,)))
    with pytest.raises(ValueError, match="w1.*shape"):
        opt.apply_gradients([(good, variables[0]), (xp.ones((16,)), variables[1])])
    _assert_unchanged(before, _snapshot(opt, variables))
    with pytest.raises(ValueError, match="dtype"):
        opt.apply_gradients([(good, variables[0]), (xp.ones((17,), dtype="float32"), variables[1])])
    _assert_unchanged(before, _snapshot(opt, variables))
    with pytest.raises(ValueError, match="no gradients"):
        opt.apply_gradients([(None, variables[0]), (None, variables[1])])
    _assert_unchanged(before, _snapshot(opt, variables))
    opt.learning_rate = lambda: float("inf")
    with pytest.raises(ValueError, match="learning rate"):
        opt.apply_gradients([(good, variables[0])])
    _assert_unchanged(before, _snapshot(opt, variables))


def test_missing_gradient_skips_that_variable_with_a_warning(xp, rng):
    variables = make_variables(xp, rng, shapes=[(3,), (17,)])
    start = host(variables[1].value).copy()
    opt = optimizers.SGD(learning_rate=0.1)
    variables[0].grad = xp.ones((3,))
    variables[1].grad = None
    with pytest.warns(UserWarning, match="w1"):
        opt.apply(variables)
    numpy.testing.assert_array_equal(host(variables[1].value), start)
    assert opt.iterations == 1


def test_keras_apply_forms(xp, rng):
    variables = make_variables(xp, rng, shapes=[(3,), (5,)])
    start = [host(v.value).copy() for v in variables]
    grads = [xp.asarray(rng.normal(size=v.shape)) for v in variables]
    opt = optimizers.SGD(learning_rate=1.0)
    opt.apply(grads, variables)      # Keras: apply(grads, trainable_variables)
    opt.apply(grads)                 # Keras: apply(grads) on the built variables
    for v, s, g in zip(variables, start, grads):
        numpy.testing.assert_allclose(host(v.value), s - 2 * host(g), rtol=1e-14)
    assert opt.apply_gradients([]) == 2


# --------------------------------------------------------------------------- state
@pytest.mark.parametrize("name,kwargs", [("Adam", {"amsgrad": True}), ("Nadam", {}), ("RMSprop", {"centered": True,
                         "momentum": 0.5}), ("SGD", {"momentum": 0.9}), ("Adagrad", {}), ("Lion", {}),
                         ("Lamb", {}), ("Ftrl", {"l1_regularization_strength": 0.01}), ("Adafactor", {})])
def test_state_round_trip_continues_identically(xp, rng, name, kwargs):
    variables = make_variables(xp, rng)
    twins = [Variable(xp.asarray(host(v.value).copy()), v.name, path=v.path) for v in variables]
    first = getattr(optimizers, name)(learning_rate=0.01, **kwargs)
    for _ in range(2):
        first.apply_gradients([(xp.asarray(rng.normal(size=v.shape)), v) for v in variables])
    for t, v in zip(twins, variables):
        t.value[...] = v.value
    state = first.state_dict(variables)
    assert state["iterations"] == 2 and all(isinstance(a, numpy.ndarray) for d in state["slots"].values()
                                            for a in d.values())
    second = getattr(optimizers, name)(learning_rate=0.5, **kwargs)
    second.load_state_dict(state, twins)
    assert second.iterations == 2 and second.learning_rate == 0.01
    grads = [rng.normal(size=v.shape) for v in variables]
    first.apply_gradients([(xp.asarray(g), v) for g, v in zip(grads, variables)])
    second.apply_gradients([(xp.asarray(g), v) for g, v in zip(grads, twins)])
    for a, b in zip(variables, twins):
        numpy.testing.assert_array_equal(host(a.value), host(b.value))

    store = {}
    first.save_own_variables(store)
    third = getattr(optimizers, name)(learning_rate=0.5, **kwargs)
    third.build(twins)
    third.load_own_variables(store)
    assert third.iterations == 3
    for a, b in zip(first.variables, third.variables):
        numpy.testing.assert_array_equal(a.numpy(), b.numpy())


def test_load_state_dict_checks_before_changing(xp, rng):
    variables = make_variables(xp, rng, shapes=[(3,), (17,)])
    opt = optimizers.Adam()
    opt.apply_gradients([(xp.ones(v.shape), v) for v in variables])
    state = opt.state_dict(variables)
    before = _snapshot(opt, variables)
    bad = {**state, "slots": {0: state["slots"][0], 1: {"momentum": numpy.zeros(16), "velocity": numpy.zeros(17)}}}
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(bad, variables)
    with pytest.raises(ValueError, match="index"):
        opt.load_state_dict({**state, "slots": {5: state["slots"][0]}}, variables)
    with pytest.raises(ValueError, match="slots"):
        opt.load_state_dict({**state, "slots": {0: {"momentum": numpy.zeros(3)}}}, variables)
    _assert_unchanged(before, _snapshot(opt, variables))


# --------------------------------------------------------------------------- registry and config
@pytest.mark.parametrize("identifier,cls", [("adam", "Adam"), ("Adam", "Adam"), ("sgd", "SGD"), ("SGD", "SGD"),
                                            ("rmsprop", "RMSprop"), ("RMSprop", "RMSprop"), ("adamw", "AdamW"),
                                            ("Nadam", "Nadam"), ("adamax", "Adamax"), ("adagrad", "Adagrad"),
                                            ("adadelta", "Adadelta"), ("lion", "Lion"), ("Lion", "Lion"),
                                            ("lamb", "Lamb"), ("LAMB", "Lamb"), ("ftrl", "Ftrl"),
                                            ("adafactor", "Adafactor")])
def test_get_by_name(identifier, cls):
    assert type(optimizers.get(identifier)).__name__ == cls


def test_get_instance_dict_and_errors():
    opt = optimizers.SGD(momentum=0.9)
    assert optimizers.get(opt) is opt
    assert optimizers.get(None) is None
    restored = optimizers.get({"class_name": "sgd", "config": {"learning_rate": 0.3, "momentum": 0.5}})
    assert isinstance(restored, optimizers.SGD) and restored.momentum == 0.5 and restored.learning_rate == 0.3
    with pytest.raises(ValueError, match="adam"):
        optimizers.get("adamm")
    with pytest.raises(TypeError):
        optimizers.get(3.0)
    with pytest.raises(TypeError):
        optimizers.get(optimizers.Adam)


@pytest.mark.parametrize("name,kwargs,ref", CASES, ids=CASE_IDS)
def test_config_round_trip(name, kwargs, ref):
    opt = getattr(optimizers, name)(learning_rate=0.02, clipnorm=2.0, **kwargs)
    config = optimizers.serialize(opt)
    assert config["class_name"] == name
    again = optimizers.deserialize(config)
    assert type(again) is type(opt) and again.get_config() == opt.get_config()


def test_config_round_trip_with_schedule_and_decay():
    opt = optimizers.Adam(learning_rate=schedules.CosineDecay(0.1, 100, alpha=0.1, warmup_target=0.2,
                                                              warmup_steps=10))
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert isinstance(again._lr_function, schedules.CosineDecay)
    assert again.learning_rate == pytest.approx(opt.learning_rate)
    legacy = optimizers.SGD(lr=0.1, decay=0.01)
    assert optimizers.deserialize(optimizers.serialize(legacy)).decay == 0.01


# --------------------------------------------------------------------------- against Keras itself
def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("keras")


KERAS_CASES = [(n, kw) for n, kw, _ in CASES] + [
    ("Adam", {"clipnorm": 0.5}), ("Adam", {"global_clipnorm": 0.5}),
    ("SGD", {"clipvalue": 0.3, "weight_decay": 0.1}), ("Nadam", {"weight_decay": 0.05}),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name,kwargs", KERAS_CASES, ids=[f"{n}-{kw}" for n, kw in KERAS_CASES])
def test_matches_keras(rng, name, kwargs):
    keras = _keras()
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        starts = [rng.normal(size=s) for s in SHAPES]
        grad_steps = [[rng.normal(size=s) for s in SHAPES] for _ in range(4)]
        k_vars = [keras.Variable(w.copy(), dtype="float64") for w in starts]
        k_opt = getattr(keras.optimizers, name)(learning_rate=0.05, **kwargs)
        variables = [Variable(w.copy(), f"v{i}") for i, w in enumerate(starts)]
        opt = getattr(optimizers, name)(learning_rate=0.05, **kwargs)
        for grads in grad_steps:
            k_opt.apply_gradients([(keras.ops.convert_to_tensor(g), v) for g, v in zip(grads, k_vars)])
            opt.apply_gradients(zip(grads, variables))
        # Keras's torch backend computes the clipping factor in float32; its Adafactor's step size differs
        # from the float64 formula by about 2e-8 relative (a float32 intermediate somewhere in it).
        rtol = 1e-5 if ("clipnorm" in kwargs or "global_clipnorm" in kwargs or name == "Adafactor") else 1e-12
        for k, v in zip(k_vars, variables):
            numpy.testing.assert_allclose(v.value, keras.ops.convert_to_numpy(k), rtol=rtol, atol=1e-15)
        store = {}
        opt.save_own_variables(store)
        k_state = [keras.ops.convert_to_numpy(v) for v in k_opt.variables]
        assert len(store) == len(k_state)
        for i, k in enumerate(k_state):
            numpy.testing.assert_allclose(numpy.asarray(store[str(i)], dtype=float), numpy.asarray(k, dtype=float),
                                          rtol=max(rtol, 1e-7), err_msg=f"optimizer variable {i}")
    finally:
        keras.config.set_floatx(previous)
