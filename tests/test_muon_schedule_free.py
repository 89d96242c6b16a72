"""Muon and ScheduleFreeAdamW: update rules against plain NumPy, Muon's choice of rule per variable, weight decay,
slot layout, Schedule-Free's starting point and final weights, state, configs, the registry and bad arguments.

The references below transcribe Keras 3.15's ``muon.py`` and ``schedule_free_adamw.py`` (Schedule-Free with the
``z`` from before each step, as the paper and Keras on JAX have it) into float64 NumPy, one variable at a time,
including the few places where Keras rounds to float32 whatever the variable's dtype (Muon's matrix norm and
its ``sqrt(max(rows, columns))``, Schedule-Free's warmup factor)."""
import math
import re

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers, optimizers
from gpu_dl.layers.base import Variable
from gpu_dl.ops.optimizer_array_rules import newton_schulz5

# Vectors, matrices (wide, tall, square), a conv kernel, a scalar; the paths decide Muon's rule.
SHAPES = [(33,), (3, 17), (17, 3), (5, 5), (3, 3, 2, 4), (), (1,), (4, 6), (6, 2)]
PATHS = ["dense/bias", "dense/kernel", "dense_1/kernel", "lstm/recurrent_kernel", "conv2d/kernel", "scale/gamma",
         "norm/beta", "embedding/embeddings", "out/kernel"]


# --------------------------------------------------------------------------- references
def uses_adamw(shape, path, exclude_layers=(), exclude_embeddings=True):
    if len(shape) != 2:
        return True
    if exclude_embeddings and "embedding" in path.lower():
        return True
    return any(re.search(k, path) for k in exclude_layers)


def ref_newton_schulz(d, steps, a, b, c):
    tall = d.shape[0] > d.shape[1]
    x = d.T if tall else d
    x32 = x.astype(numpy.float32)
    # Keras takes the norm of the float32-rounded matrix, in float32, and adds 1e-7 in float32.
    x = x / numpy.float64(numpy.float32(numpy.sqrt(numpy.sum(x32 * x32))) + numpy.float32(1e-7))
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + (c * gram) @ gram) @ x
    return x.T if tall else x


def ref_muon(w, g, s, t, lr, path, adam_beta_1=0.9, adam_beta_2=0.999, adam_weight_decay=0.004, epsilon=1e-7,
             weight_decay=0.004, exclude_layers=(), exclude_embeddings=True, muon_a=3.4445, muon_b=-4.7750,
             muon_c=2.0315, adam_lr_ratio=1, momentum=0.95, ns_steps=5, nesterov=True, rms_rate=0.2, **_):
    adamw = uses_adamw(w.shape, path, exclude_layers, exclude_embeddings)
    decay = adam_weight_decay if adamw else weight_decay
    if decay:
        w = w - w * decay * lr
    m = s.get("m", numpy.zeros_like(w))
    if adamw:
        s["m"] = adam_beta_1 * m + (1 - adam_beta_1) * g
        s["v"] = adam_beta_2 * s.get("v", numpy.zeros_like(w)) + (1 - adam_beta_2) * g ** 2
        lr_t = lr * adam_lr_ratio * math.sqrt(1 - adam_beta_2 ** t) / (1 - adam_beta_1 ** t)
        return w - lr_t * s["m"] / (numpy.sqrt(s["v"]) + epsilon)
    s["m"] = momentum * m + g
    d = g + momentum * s["m"] if nesterov else s["m"]
    step = lr * ref_newton_schulz(d, ns_steps, muon_a, muon_b, muon_c)
    if rms_rate is not None:
        step = step * float(numpy.sqrt(numpy.float32(max(w.shape)))) * rms_rate
    return w - step


def ref_schedule_free(w, g, s, t, lr, path, beta_1=0.9, beta_2=0.999, epsilon=1e-8, warmup_steps=0, weight_decay=None,
                      **_):
    z = s.get("z", w)               # z starts at the variable's value, before the first step's weight decay
    if weight_decay:
        w = w - w * weight_decay * lr
    if warmup_steps > 0:
        lr = lr * float(numpy.float32(min(t / warmup_steps, 1.0)))
    s["v"] = beta_2 * s.get("v", numpy.zeros_like(w)) + (1 - beta_2) * g ** 2
    # the average x, recovered from y and z before the step (the paper's rule; Keras 3.15 on JAX)
    x = (w - (1 - beta_1) * z) / beta_1
    s["z"] = z - lr * g / (numpy.sqrt(s["v"] / (1 - beta_2 ** t)) + epsilon)
    x = (1 - 1 / t) * x + s["z"] / t
    return (1 - beta_1) * s["z"] + beta_1 * x


CASES = [
    ("Muon", {}, ref_muon),
    ("Muon", {"nesterov": False, "rms_rate": None, "ns_steps": 3, "momentum": 0.8}, ref_muon),
    ("Muon", {"adam_lr_ratio": 0.1, "weight_decay": 0.1, "adam_weight_decay": None, "exclude_layers": ["out", "^lstm"],
              "exclude_embeddings": False, "adam_beta_1": 0.8, "epsilon": 1e-3}, ref_muon),
    ("Muon", {"muon_a": 2.0, "muon_b": -1.5, "muon_c": 0.5, "weight_decay": None, "adam_weight_decay": 0.05},
     ref_muon),
    ("ScheduleFreeAdamW", {}, ref_schedule_free),
    ("ScheduleFreeAdamW", {"warmup_steps": 3, "weight_decay": 0.1, "beta_1": 0.5, "beta_2": 0.99}, ref_schedule_free),
    ("ScheduleFreeAdamW", {"beta_1": 1.0, "epsilon": 1e-3, "warmup_steps": 10}, ref_schedule_free),
]
CASE_IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for n, kw, _ in CASES]


def host(a):
    return backend.to_numpy(a)


def make_variables(xp, rng, dtype="float64", shapes=SHAPES, paths=PATHS):
    return [Variable(xp.asarray(numpy.asarray(rng.normal(size=s)).astype(dtype)), p.split("/")[1], path=p)
            for s, p in zip(shapes, paths)]


def run_reference(ref, kwargs, weights, grad_steps, lr, paths=PATHS):
    weights = [numpy.asarray(w, dtype=numpy.float64).copy() for w in weights]
    states = [dict() for _ in weights]
    for t, grads in enumerate(grad_steps, start=1):
        weights = [ref(w, numpy.asarray(g, dtype=numpy.float64), s, t, lr, p, **kwargs)
                   for w, g, s, p in zip(weights, grads, states, paths)]
    return weights


# --------------------------------------------------------------------------- update rules
@pytest.mark.parametrize("name,kwargs,ref", CASES, ids=CASE_IDS)
def test_update_rule_matches_numpy_reference(xp, rng, name, kwargs, ref):
    lr = 0.05
    variables = make_variables(xp, rng)
    start = [host(v.value).copy() for v in variables]
    grad_steps = [[numpy.asarray(rng.normal(size=s)) for s in SHAPES] for _ in range(4)]
    opt = getattr(optimizers, name)(learning_rate=lr, **kwargs)
    for grads in grad_steps:
        for v, g in zip(variables, grads):
            v.grad = xp.asarray(g)
        opt.apply(variables)
    expected = run_reference(ref, kwargs, start, grad_steps, lr)
    assert opt.iterations == 4
    for v, e, p in zip(variables, expected, PATHS):
        assert v.value.dtype == numpy.float64
        # On a GPU the float32 norm of Muon's matrices is summed in another order than NumPy's.
        rtol = 1e-12 if xp is numpy else 1e-6
        numpy.testing.assert_allclose(host(v.value), e, rtol=rtol, atol=1e-13, err_msg=p)


@pytest.mark.parametrize("name,kwargs,ref", CASES, ids=CASE_IDS)
def test_float32_variables_stay_float32_and_follow_the_reference(xp, rng, name, kwargs, ref):
    variables = make_variables(xp, rng, dtype="float32")
    start = [host(v.value).astype("float64") for v in variables]
    grad_steps = [[numpy.asarray(rng.normal(size=s)).astype("float32") for s in SHAPES] for _ in range(3)]
    opt = getattr(optimizers, name)(learning_rate=0.01, **kwargs)
    for grads in grad_steps:
        opt.apply_gradients([(xp.asarray(g), v) for g, v in zip(grads, variables)])
    for v in variables:
        assert v.value.dtype == numpy.float32 and type(v.value) is type(variables[0].value)
    assert [v.name for v in opt.variables[:2]] == ["iteration", "learning_rate"]
    for slot in [v.value for v in opt.variables[2:]]:
        assert slot.dtype == numpy.float32 and type(slot) is type(variables[0].value)
    expected = run_reference(ref, kwargs, start, grad_steps, 0.01)
    for v, e, p in zip(variables, expected, PATHS):
        numpy.testing.assert_allclose(host(v.value), e, rtol=2e-5, atol=2e-6, err_msg=p)


def test_newton_schulz_gives_a_near_orthogonal_matrix_and_transposes_tall_ones(xp, rng):
    wide = rng.normal(size=(7, 19))
    out = host(newton_schulz5(xp.asarray(wide), 5, 3.4445, -4.7750, 2.0315))
    singular = numpy.linalg.svd(out, compute_uv=False)
    # The quintic pushes every singular value into roughly [0.7, 1.2] (not exactly 1, by design).
    assert singular.min() > 0.6 and singular.max() < 1.25
    u, _, vt = numpy.linalg.svd(wide, full_matrices=False)
    numpy.testing.assert_allclose(u.T @ out @ vt.T, numpy.diag(numpy.diag(u.T @ out @ vt.T)), atol=1e-10)
    tall = host(newton_schulz5(xp.asarray(wide.T.copy()), 5, 3.4445, -4.7750, 2.0315))
    numpy.testing.assert_allclose(tall, out.T, rtol=1e-12, atol=1e-14)
    zero = host(newton_schulz5(xp.zeros((3, 4)), 5, 3.4445, -4.7750, 2.0315))
    numpy.testing.assert_array_equal(zero, numpy.zeros((3, 4)))
    with pytest.raises(ValueError, match="rank >= 2"):
        newton_schulz5(xp.zeros(3), 5, 1.0, 1.0, 1.0)


# --------------------------------------------------------------------------- Muon's choice of rule
def test_muon_uses_adamw_by_rank_embedding_name_and_excluded_layers(xp, rng):
    paths = ["dense/kernel", "dense/bias", "conv2d/kernel", "Token_Embedding/kernel", "embedding/embeddings",
             "out/kernel", "outer/kernel", "head_1/kernel", "step/count"]
    shapes = [(3, 4), (4,), (3, 3, 1, 2), (5, 3), (6, 2), (4, 2), (2, 2), (3, 3), ()]
    variables = make_variables(xp, rng, shapes=shapes, paths=paths)
    opt = optimizers.Muon(exclude_layers=["^out/", r"head_\d"])
    expected = [False, True, True, True, True, True, False, True, True]
    assert [opt.uses_adamw(v) for v in variables] == expected
    assert [optimizers.Muon(exclude_embeddings=False).uses_adamw(v) for v in variables] == \
        [False, True, True, False, False, False, False, False, True]
    opt.build(variables)
    # Keras's order: per variable its momentum, then its velocity where it takes the AdamW step.
    order = []
    for v, adamw in zip(variables, expected):
        order.append(opt.get_slot(v, "momentum"))
        if adamw:
            order.append(opt.get_slot(v, "velocity"))
    assert len(opt.variables) == 2 + len(order) and all(a.value is b for a, b in zip(opt.variables[2:], order))
    with pytest.raises(KeyError, match="velocity"):
        opt.get_slot(variables[0], "velocity")


def test_muon_decays_matrices_by_weight_decay_and_the_rest_by_adam_weight_decay(xp, rng):
    variables = make_variables(xp, rng, shapes=[(3, 4), (4,), (3, 4)], paths=["a/kernel", "a/bias", "b/kernel"])
    start = [host(v.value).copy() for v in variables]
    opt = optimizers.Muon(learning_rate=0.5, weight_decay=0.1, adam_weight_decay=0.02)
    opt.exclude_from_weight_decay(var_list=[variables[2]])
    # Zero gradients: both rules then leave the variables where the decay put them.
    opt.apply_gradients([(xp.zeros(v.shape), v) for v in variables])
    numpy.testing.assert_allclose(host(variables[0].value), start[0] * (1 - 0.1 * 0.5), rtol=1e-14)
    numpy.testing.assert_allclose(host(variables[1].value), start[1] * (1 - 0.02 * 0.5), rtol=1e-14)
    numpy.testing.assert_array_equal(host(variables[2].value), start[2])
    none = optimizers.Muon(learning_rate=0.5, weight_decay=None, adam_weight_decay=0.02)
    none.apply_gradients([(xp.zeros(v.shape), v) for v in variables[:2]])
    numpy.testing.assert_allclose(host(variables[0].value), start[0] * (1 - 0.1 * 0.5), rtol=1e-14)
    numpy.testing.assert_allclose(host(variables[1].value), start[1] * (1 - 0.02 * 0.5) ** 2, rtol=1e-14)


# --------------------------------------------------------------------------- Schedule-Free's points
def test_schedule_free_momentum_starts_as_a_copy_of_the_variable(xp, rng):
    (var,) = make_variables(xp, rng, shapes=[(3, 5)], paths=["d/kernel"])
    opt = optimizers.ScheduleFreeAdamW()
    opt.build([var])
    z = opt.get_slot(var, "momentum")
    numpy.testing.assert_array_equal(host(z), host(var.value))
    assert z is not var.value and type(z) is type(var.value)
    numpy.testing.assert_array_equal(host(opt.get_slot(var, "velocity")), numpy.zeros((3, 5)))
    var.value[...] = 0
    assert float(numpy.abs(host(z)).sum()) > 0


def test_schedule_free_fit_ends_on_the_interpolated_point_as_keras_does(xp, rng):
    """finalize_variable_values leaves the weights at y (Keras 3.15 writes no average back), unless use_ema."""
    gpu_dl.backend.set_random_seed(2)
    model = gpu_dl.Sequential([layers.Input((4,)), layers.Dense(3)])
    model.compile(optimizer="schedulefreeadamw", loss="mse")
    x, y = rng.standard_normal((16, 4)).astype("float32"), rng.standard_normal((16, 3)).astype("float32")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    before = [w.copy() for w in model.get_weights()]
    model.optimizer.finalize_variable_values(model.trainable_weights)
    for a, b in zip(before, model.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 4


# --------------------------------------------------------------------------- state, configs, registry
@pytest.mark.parametrize("name,kwargs", [("Muon", {}), ("ScheduleFreeAdamW", {"warmup_steps": 2}),
                                         ("Muon", {"use_ema": True, "gradient_accumulation_steps": 2})])
def test_state_round_trips_continue_identically(xp, rng, name, kwargs):
    variables = make_variables(xp, rng)
    # A rate float32 holds exactly: the saved state keeps the learning rate in floatx, as Keras does.
    opt = getattr(optimizers, name)(learning_rate=0.015625, **kwargs)
    calls = [[xp.asarray(rng.normal(size=s)) for s in SHAPES] for _ in range(6)]
    for grads in calls[:3]:
        opt.apply_gradients(zip(grads, variables))
    twins = [Variable(v.value.copy(), v.name, path=v.path) for v in variables]
    restored = getattr(optimizers, name)(learning_rate=0.015625, **kwargs)
    restored.build(twins)
    store = {}
    opt.save_own_variables(store)
    restored.load_own_variables(store)
    third_twins = [Variable(v.value.copy(), v.name, path=v.path) for v in variables]
    third = getattr(optimizers, name)(learning_rate=0.015625, **kwargs)
    third.load_state_dict(opt.state_dict(variables), third_twins)
    for grads in calls[3:]:
        for o, vs in ((opt, variables), (restored, twins), (third, third_twins)):
            o.apply_gradients(zip(grads, vs))
    for vs in (twins, third_twins):
        for a, b in zip(variables, vs):
            numpy.testing.assert_array_equal(host(a.value), host(b.value))


def test_load_state_dict_checks_the_slots_each_variable_keeps(rng):
    variables = make_variables(numpy, rng, shapes=[(3, 4), (4,)], paths=["d/kernel", "d/bias"])
    opt = optimizers.Muon()
    opt.apply_gradients([(numpy.ones(v.shape), v) for v in variables])
    state = opt.state_dict(variables)
    assert sorted(state["slots"][0]) == ["momentum"] and sorted(state["slots"][1]) == ["momentum", "velocity"]
    state["slots"][0]["velocity"] = numpy.zeros((3, 4))
    other = optimizers.Muon()
    with pytest.raises(ValueError, match=r"state slots of variable 0 \('d/kernel'\)"):
        other.load_state_dict(state, variables)
    assert not other.built


@pytest.mark.parametrize("name,kwargs", [(n, kw) for n, kw, _ in CASES], ids=CASE_IDS)
def test_config_round_trip(name, kwargs):
    opt = getattr(optimizers, name)(learning_rate=0.02, clipnorm=2.0, **kwargs)
    config = optimizers.serialize(opt)
    assert config["class_name"] == name and config["module"] == "keras.optimizers"
    again = optimizers.deserialize(config)
    assert type(again) is type(opt) and again.get_config() == opt.get_config()
    assert isinstance(again.get_config().get("ns_steps", 0), int)


@pytest.mark.parametrize("identifier,cls", [("muon", "Muon"), ("Muon", "Muon"),
                                            ("schedulefreeadamw", "ScheduleFreeAdamW"),
                                            ("ScheduleFreeAdamW", "ScheduleFreeAdamW")])
def test_get_by_name(identifier, cls):
    opt = optimizers.get(identifier)
    assert type(opt).__name__ == cls
    assert opt.name.startswith("muon" if cls == "Muon" else "schedule_free_adam_w")


def test_defaults_are_keras_315s():
    muon = optimizers.Muon()
    config = muon.get_config()
    assert config["learning_rate"] == 0.001 and config["weight_decay"] == 0.004
    assert {k: config[k] for k in ("adam_beta_1", "adam_beta_2", "adam_weight_decay", "epsilon", "exclude_layers",
                                   "exclude_embeddings", "muon_a", "muon_b", "muon_c", "adam_lr_ratio", "momentum",
                                   "ns_steps", "nesterov", "rms_rate")} == {
        "adam_beta_1": 0.9, "adam_beta_2": 0.999, "adam_weight_decay": 0.004, "epsilon": 1e-7, "exclude_layers": [],
        "exclude_embeddings": True, "muon_a": 3.4445, "muon_b": -4.775, "muon_c": 2.0315, "adam_lr_ratio": 1,
        "momentum": 0.95, "ns_steps": 5, "nesterov": True, "rms_rate": 0.2}
    sf = optimizers.ScheduleFreeAdamW().get_config()
    assert sf["learning_rate"] == 0.0025 and sf["weight_decay"] is None
    assert (sf["beta_1"], sf["beta_2"], sf["epsilon"], sf["warmup_steps"]) == (0.9, 0.999, 1e-8, 0)


# --------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("name,kwargs,error,word", [
    ("Muon", {"adam_beta_1": 1.0}, ValueError, "adam_beta_1"), ("Muon", {"adam_beta_2": -0.1}, ValueError,
                                                                "adam_beta_2"),
    ("Muon", {"adam_weight_decay": -1.0}, ValueError, "adam_weight_decay"),
    ("Muon", {"epsilon": -1e-7}, ValueError, "epsilon"), ("Muon", {"weight_decay": -0.1}, ValueError, "weight_decay"),
    ("Muon", {"muon_a": float("nan")}, ValueError, "muon_a"), ("Muon", {"muon_b": "x"}, TypeError, "muon_b"),
    ("Muon", {"muon_c": float("inf")}, ValueError, "muon_c"),
    ("Muon", {"adam_lr_ratio": -1.0}, ValueError, "adam_lr_ratio"),
    ("Muon", {"momentum": 1.5}, ValueError, "momentum"), ("Muon", {"ns_steps": -1}, ValueError, "ns_steps"),
    ("Muon", {"ns_steps": 2.5}, ValueError, "ns_steps"), ("Muon", {"ns_steps": True}, ValueError, "ns_steps"),
    ("Muon", {"nesterov": "yes"}, TypeError, "nesterov"),
    ("Muon", {"exclude_embeddings": None}, TypeError, "exclude_embeddings"),
    ("Muon", {"exclude_layers": "dense"}, TypeError, "exclude_layers"),
    ("Muon", {"exclude_layers": ["dense", 3]}, TypeError, "exclude_layers"),
    ("Muon", {"exclude_layers": ["dense("]}, ValueError, "exclude_layers"),
    ("Muon", {"rms_rate": -0.2}, ValueError, "rms_rate"), ("Muon", {"learning_rate": -1.0}, ValueError,
                                                           "learning_rate"),
    ("ScheduleFreeAdamW", {"beta_1": 0.0}, ValueError, "beta_1"),
    ("ScheduleFreeAdamW", {"beta_1": 1.5}, ValueError, "beta_1"),
    ("ScheduleFreeAdamW", {"beta_2": 1.0}, ValueError, "beta_2"),
    ("ScheduleFreeAdamW", {"epsilon": -1.0}, ValueError, "epsilon"),
    ("ScheduleFreeAdamW", {"warmup_steps": -1}, ValueError, "warmup_steps"),
    ("ScheduleFreeAdamW", {"warmup_steps": 1.5}, ValueError, "warmup_steps"),
    ("ScheduleFreeAdamW", {"weight_decay": -0.1}, ValueError, "weight_decay"),
    ("ScheduleFreeAdamW", {"clipnorm": 0.0}, ValueError, "clipnorm"),
])
def test_bad_arguments_name_the_optimizer_and_argument(name, kwargs, error, word):
    with pytest.raises(error, match=f"{name}( '[a-z_0-9]+')?: argument `{word}`"):
        getattr(optimizers, name)(**kwargs)


def test_unknown_keyword_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="Muon got unexpected keyword argument.*beta_1"):
        optimizers.Muon(beta_1=0.9)
    with pytest.raises(TypeError, match="ScheduleFreeAdamW got unexpected keyword argument.*momentum"):
        optimizers.ScheduleFreeAdamW(momentum=0.9)
