"""Keras's API for writing optimizers: a subclass with its own ``build`` (slots from ``add_variable_from_reference``)
and ``update_step`` (the ``gpu_dl.ops`` functions and ``assign``/``assign_add``/``assign_sub``) trains on both
backends against plain NumPy expectations, with the base class's clipping, loss scaling, weight decay and averages;
``set_weights`` and ``stateless_apply`` on it and on the built-in optimizers, whose ``update_step`` is their fused
update; files keep its variables."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers, optimizers
from gpu_dl.layers.base import Variable
from gpu_dl.models import load_model
from optimizer_writing_classes import OURS

SHAPES = [(1,), (3, 17), (33,)]


def host(a):
    return backend.to_numpy(getattr(a, "value", a)).astype(numpy.float64)


MomentumSGD, ScaledRms = OURS["MomentumSGD"], OURS["ScaledRms"]


def make(xp, rng, dtype="float64"):
    starts = [rng.normal(size=s).astype(dtype) for s in SHAPES]
    return starts, [Variable(xp.asarray(w.copy()), f"v{i}") for i, w in enumerate(starts)]


def grad_steps(xp, rng, steps, dtype="float64"):
    return [[xp.asarray(rng.normal(size=s).astype(dtype)) for s in SHAPES] for _ in range(steps)]


def test_momentum_subclass_follows_the_plain_formula(xp, rng):
    starts, variables = make(xp, rng)
    opt = MomentumSGD(learning_rate=0.25, momentum=0.5)
    w = [s.copy() for s in starts]
    m = [numpy.zeros_like(s) for s in starts]
    for grads in grad_steps(xp, rng, 4):
        opt.apply_gradients(zip(grads, variables))
        m = [0.5 * mi - 0.25 * host(g) for mi, g in zip(m, grads)]
        w = [wi + mi for wi, mi in zip(w, m)]
    for v, e in zip(variables, w):
        assert backend.array_module(v.value) is xp
        numpy.testing.assert_allclose(host(v), e, rtol=1e-12, atol=1e-12)
    assert int(opt.iterations) == 4
    # Keras's order: the step count and the learning rate, then the variables build made
    assert [(s.path, int(s.numpy()) if s.dtype == numpy.int32 else float(s.numpy())) for s in opt.variables[:2]] \
        == [("momentum_sgd/iteration", 4), ("momentum_sgd/learning_rate", 0.25)]
    assert opt.variables[1] is opt.learning_rate and isinstance(opt.variables[0], Variable)
    assert [s.path for s in opt.variables[2:]] == [f"momentum_sgd/v{i}_momentum" for i in range(3)]
    assert [s.name for s in opt.variables[2:]] == [f"v{i}_momentum" for i in range(3)]
    for s, e in zip(opt.variables[2:], m):
        assert isinstance(s, Variable) and not s.trainable and backend.array_module(s.value) is xp
        numpy.testing.assert_allclose(host(s), e, rtol=1e-12, atol=1e-12)


def test_rule_reading_iterations_with_a_variable_of_its_own(xp, rng):
    starts, variables = make(xp, rng)
    opt = ScaledRms(learning_rate=0.1, rho=0.5)
    w = [s.copy() for s in starts]
    sq = [numpy.ones_like(s) for s in starts]
    for t, grads in enumerate(grad_steps(xp, rng, 3), start=1):
        opt.apply(grads, variables)
        g = [host(x) for x in grads]
        sq = [0.5 * s + 0.5 * gi ** 2 for s, gi in zip(sq, g)]
        # the learning rate reaches update_step as Keras gives it: a float32 scalar
        lr = float(numpy.float32(0.1))
        w = [wi - lr * gi / (numpy.sqrt(s / (1 - 0.5 ** t)) + 1e-4) for wi, gi, s in zip(w, g, sq)]
    for v, e in zip(variables, w):
        numpy.testing.assert_allclose(host(v), e, rtol=1e-12, atol=1e-12)
    assert [s.path for s in opt.variables[2:]] == [f"scaled_rms/v{i}_square" for i in range(3)] + \
        ["scaled_rms/steps_seen"]
    # once per variable and step
    assert float(opt.variables[-1].numpy()) == 9.0 and opt.variables[-1].dtype == numpy.float32


def test_base_class_clipping_loss_scaling_weight_decay_and_averages_apply(xp, rng):
    starts, variables = make(xp, rng)
    opt = MomentumSGD(learning_rate=0.5, momentum=0.5, clipnorm=0.5, loss_scale_factor=4.0, weight_decay=0.1,
                      use_ema=True, ema_momentum=0.75)
    opt.exclude_from_weight_decay(var_names=["v1"])
    w = [s.copy() for s in starts]
    m = [numpy.zeros_like(s) for s in starts]
    avg = None
    for grads in grad_steps(xp, rng, 3):
        opt.apply_gradients(zip(grads, variables))
        g = [host(x) / 4.0 for x in grads]
        g = [gi * 0.5 / max(numpy.sqrt((gi ** 2).sum()), 0.5) for gi in g]
        w = [wi if i == 1 else wi - wi * 0.1 * 0.5 for i, wi in enumerate(w)]
        m = [0.5 * mi - 0.5 * gi for mi, gi in zip(m, g)]
        w = [wi + mi for wi, mi in zip(w, m)]
        avg = list(w) if avg is None else [0.75 * a + 0.25 * wi for a, wi in zip(avg, w)]
    for v, e in zip(variables, w):
        numpy.testing.assert_allclose(host(v), e, rtol=1e-12, atol=1e-12)
    # Keras's order: every variable's average first, then what the subclass's build made
    assert [s.name for s in opt.variables[2:]] == [f"v{i}_average" for i in range(3)] + \
        [f"v{i}_momentum" for i in range(3)]
    for s, e in zip(opt.variables[2:5], avg):
        numpy.testing.assert_allclose(host(s), e, rtol=1e-12, atol=1e-12)
    opt.finalize_variable_values(variables)
    for v, e in zip(variables, avg):
        numpy.testing.assert_allclose(host(v), e, rtol=1e-12, atol=1e-12)


def test_gradient_accumulation_of_the_subclass(xp, rng):
    starts, variables = make(xp, rng)
    opt = MomentumSGD(learning_rate=0.5, momentum=0.0, gradient_accumulation_steps=2)
    steps = grad_steps(xp, rng, 4)
    for grads in steps:
        opt.apply_gradients(zip(grads, variables))
    assert [s.name for s in opt.variables[2:5]] == [f"v{i}_gradient_accumulator" for i in range(3)]
    for i, (v, s) in enumerate(zip(variables, starts)):
        mean_a = (host(steps[0][i]) + host(steps[1][i])) / 2
        mean_b = (host(steps[2][i]) + host(steps[3][i])) / 2
        numpy.testing.assert_allclose(host(v), s - 0.5 * mean_a - 0.5 * mean_b, rtol=1e-12, atol=1e-12)
    assert int(opt.iterations) == 2


def test_subclass_refuses_variables_it_was_not_built_on(rng):
    _, variables = make(numpy, rng)
    opt = MomentumSGD()
    opt.apply_gradients([(numpy.ones(1), variables[0])])
    before = host(variables[1])
    with pytest.raises(ValueError, match="cannot update other variables"):
        opt.apply_gradients([(numpy.ones((3, 17)), variables[1])])
    numpy.testing.assert_array_equal(host(variables[1]), before)
    assert int(opt.iterations) == 1
    with pytest.raises(ValueError, match="was not built on variable 'v2'"):
        opt._get_variable_index(variables[2])


def test_fit_and_a_custom_loop_train_a_model_with_the_subclass(rng):
    x = rng.standard_normal((64, 4)).astype("float32")
    y = (x @ rng.standard_normal((4, 2))).astype("float32")
    gpu_dl.backend.set_random_seed(2)
    model = gpu_dl.Sequential([layers.Input((4,)), layers.Dense(8, activation="tanh"), layers.Dense(2)])
    model.compile(optimizer=MomentumSGD(learning_rate=0.05), loss="mse")
    losses = model.fit(x, y, epochs=8, batch_size=16, verbose=0).history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert [v.path for v in model.optimizer.variables[2:]] == [
        f"momentum_sgd/{w.path.replace('/', '_')}_momentum" for w in model.trainable_weights]
    assert int(model.optimizer.iterations) == 32


def test_add_optimizer_variables_with_several_names_and_overwritten_variables(rng):
    _, variables = make(numpy, rng)
    variables[1].overwrite_with_gradient = True
    opt = MomentumSGD()
    m, v = opt.add_optimizer_variables(variables, ["m", "v"], initializer=["zeros", "ones"])
    assert m[1] is None and v[1] is None
    assert [x.name for x in opt.variables[2:]] == ["v0_m", "v0_v", "v2_m", "v2_v"]
    numpy.testing.assert_array_equal(host(v[2]), numpy.ones(33))
    with pytest.raises(ValueError, match="one per name"):
        opt.add_optimizer_variables(variables, ["a", "b"], initializer=["zeros"])
    with pytest.raises(TypeError, match="needs a variable"):
        opt.add_variable_from_reference(3.0)


def test_assign_methods_write_variables_and_slot_arrays(xp):
    opt = optimizers.Adam()
    var = Variable(xp.zeros(3), "w")
    arr = xp.zeros(3)
    for target in (var, arr):
        opt.assign(target, xp.asarray([1.0, 2.0, 3.0]))
        opt.assign_add(target, 1.0)
        opt.assign_sub(target, xp.asarray([0.5, 0.5, 0.5]))
        numpy.testing.assert_array_equal(host(target), [1.5, 2.5, 3.5])


@pytest.mark.parametrize("name", ["SGD", "Adam", "Nadam", "Adafactor"])
def test_builtin_update_step_is_one_variable_of_the_step(xp, rng, name):
    kwargs = {"momentum": 0.9} if name == "SGD" else {}
    starts, variables = make(xp, rng, "float32")
    _, twins = make(xp, numpy.random.default_rng(0), "float32")
    for t, s in zip(twins, starts):
        t.assign(xp.asarray(s))
    stepped, direct = getattr(optimizers, name)(**kwargs), getattr(optimizers, name)(**kwargs)
    grads = grad_steps(xp, rng, 1, "float32")[0]
    stepped.apply_gradients(zip(grads, variables))
    direct.build(twins)
    for g, v in zip(grads, twins):
        direct.update_step(g, v, direct.learning_rate)
    # (the rate given is Keras's float32 variable, the step's the exact number; Nadam's momentum product, path
    # "variable", advances in the step, not in update_step, as Keras's does)
    slots = [[v for v in opt.variables[2:] if v.path != "variable"] for opt in (stepped, direct)]
    assert len(slots[0]) == len(stepped.variables) - 2 - (name == "Nadam")
    for a, b in zip(variables + slots[0], twins + slots[1]):
        numpy.testing.assert_allclose(host(a), host(b), rtol=1e-6, atol=1e-9)
    assert not direct._writes_own_update() and not stepped._writes_own_update()


def test_set_weights_takes_keras_order_and_checks(rng):
    _, variables = make(numpy, rng, "float32")
    opt = optimizers.Adam(0.01)
    with pytest.raises(ValueError, match="before the optimizer was built"):
        opt.set_weights([])
    opt.build(variables)
    weights = [numpy.asarray(7), numpy.asarray(0.5, dtype="float32")] + \
        [numpy.full(s, k, dtype="float32") for s in SHAPES for k in (1.0, 2.0)]    # Adam's interleaved m, v
    opt.set_weights(weights)
    assert int(opt.iterations) == 7 and float(opt.learning_rate) == 0.5
    numpy.testing.assert_array_equal(host(opt.get_slot(variables[1], "velocity")), numpy.full((3, 17), 2.0))
    store = {}
    opt.save_own_variables(store)
    for i, w in enumerate(weights):
        numpy.testing.assert_array_equal(store[str(i)], w)
    with pytest.raises(ValueError, match="needs 8 arrays"):
        opt.set_weights(weights[:-1])
    with pytest.raises(ValueError, match=r"weight 4 has shape \(2,\), expected \(3, 17\)"):
        opt.set_weights(weights[:4] + [numpy.zeros(2)] + weights[5:])
    assert int(opt.iterations) == 7


@pytest.mark.parametrize("make_optimizer", [lambda: optimizers.Adam(0.01, use_ema=True), lambda: optimizers.Nadam(),
                                            lambda: MomentumSGD(0.1, use_ema=True)],
                         ids=["Adam-ema", "Nadam", "MomentumSGD"])
def test_stateless_apply_returns_the_step_and_changes_nothing(xp, rng, make_optimizer):
    starts, variables = make(xp, rng, "float32")
    opt = make_optimizer()
    for grads in grad_steps(xp, rng, 2, "float32"):
        opt.apply_gradients(zip(grads, variables))
    state = {}
    opt.save_own_variables(state)
    held = [host(v) for v in variables]
    extra = dict(opt._extra_state())
    grads = grad_steps(xp, rng, 1, "float32")[0]
    new_values, new_state = opt.stateless_apply([state[str(i)] for i in range(len(state))], grads,
                                                [v.value for v in variables])
    # nothing changed
    after = {}
    opt.save_own_variables(after)
    for i in range(len(state)):
        numpy.testing.assert_array_equal(after[str(i)], state[str(i)])
    for v, h in zip(variables, held):
        numpy.testing.assert_array_equal(host(v), h)
    assert opt._extra_state() == extra and int(opt.iterations) == 2
    # what it returned is the step apply takes
    opt.apply_gradients(zip(grads, variables))
    stepped = {}
    opt.save_own_variables(stepped)
    assert len(new_state) == len(stepped)
    for i, a in enumerate(new_state):
        numpy.testing.assert_allclose(host(a), numpy.asarray(stepped[str(i)], dtype=numpy.float64), rtol=1e-6,
                                      err_msg=str(i))
    assert all(backend.array_module(a) is xp for a in new_values)
    for a, v in zip(new_values, variables):
        numpy.testing.assert_array_equal(host(a), host(v))


def test_stateless_apply_checks_its_arguments(rng):
    _, variables = make(numpy, rng, "float32")
    opt = optimizers.SGD()
    with pytest.raises(ValueError, match="must be built"):
        opt.stateless_apply([], [], [])
    opt.build(variables)
    with pytest.raises(ValueError, match="`optimizer_variables` must be a list of 2"):
        opt.stateless_apply([0], [], [v.value for v in variables])
    with pytest.raises(ValueError, match="1:1 to the 3 variables"):
        opt.stateless_apply([0, 0.01], [], [variables[0].value])


@pytest.mark.parametrize("suffix", [".keras", ".weights.h5"])
def test_files_keep_the_subclass_variables(tmp_path, rng, suffix):
    x = rng.standard_normal((32, 4)).astype("float32")
    y = rng.standard_normal((32, 2)).astype("float32")

    def model():
        gpu_dl.backend.set_random_seed(1)
        m = gpu_dl.Sequential([layers.Input((4,)), layers.Dense(3), layers.Dense(2)])
        m.compile(optimizer=MomentumSGD(learning_rate=0.05, use_ema=True), loss="mse")
        return m

    first = model()
    first.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    path = tmp_path / f"m{suffix}"
    if suffix == ".keras":
        first.save(path)
        second = load_model(path)
        assert type(second.optimizer) is MomentumSGD
    else:
        first.save_weights(path)
        second = model()
        second.load_weights(path)
    assert int(second.optimizer.iterations) == 8
    assert [v.path for v in second.optimizer.variables[2:]] == [
        f"momentum_sgd/{w.path.replace('/', '_')}_{kind}" for kind in ("average", "momentum")
        for w in second.trainable_weights]
    for a, b in zip(second.optimizer.variables[2:], first.optimizer.variables[2:]):
        numpy.testing.assert_array_equal(a.numpy(), b.numpy())
    first.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    second.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(second.get_weights(), first.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_cast_of_a_python_number_is_exact_in_the_dtype(xp):
    # update rules cast their hyperparameters (ops.cast(0.9, variable.dtype)): not through float32
    from gpu_dl import ops
    assert float(backend.to_numpy(ops.cast(0.9, "float64"))) == 0.9
    assert ops.cast(0.9, "float64").dtype == numpy.float64 and ops.cast(3, "float32").dtype == numpy.float32
    assert float(backend.to_numpy(ops.cast(0.9, "float32"))) == float(numpy.float32(0.9))
    numpy.testing.assert_array_equal(backend.to_numpy(ops.cast([0.1, 2], "float64")), [0.1, 2.0])
    assert backend.to_numpy(ops.cast(xp.asarray([1.5]), "int32")).tolist() == [1]


class CountingAdam(optimizers.Adam):
    """A built-in rule under an update_step of the subclass's own: the generic step, Adam's slots as Variables."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def update_step(self, gradient, variable, learning_rate):
        self.calls += 1
        super().update_step(gradient, variable, learning_rate)


def test_subclass_of_a_builtin_with_its_own_update_step_takes_the_generic_step(xp, rng):
    starts, variables = make(xp, rng, "float32")
    _, twins = make(xp, rng, "float32")
    for t, s in zip(twins, starts):
        t.assign(xp.asarray(s))
    mine, plain = CountingAdam(learning_rate=0.01, use_ema=True), optimizers.Adam(learning_rate=0.01, use_ema=True)
    assert mine._writes_own_update() and not plain._writes_own_update()
    for grads in grad_steps(xp, rng, 3, "float32"):
        mine.apply_gradients(zip(grads, variables))
        plain.apply_gradients(zip(grads, twins))
    assert mine.calls == 9
    for a, b in zip(variables, twins):
        numpy.testing.assert_allclose(host(a), host(b), rtol=1e-6, atol=1e-7)
    assert [v.name for v in mine.variables[2:]] == [f"v{i}_average" for i in range(3)] + \
        [f"v{i}_{n}" for i in range(3) for n in ("momentum", "velocity")]
    assert len(mine.variables[2:]) == len(plain.variables[2:])
    for a, b in zip(mine.variables[2:], plain.variables[2:]):
        assert isinstance(a, Variable) and backend.array_module(a.value) is xp
        numpy.testing.assert_allclose(host(a), host(b), rtol=1e-6, atol=1e-7)
    assert mine.get_slot(variables[1], "velocity") is mine.variables[8].value


def test_state_dict_of_the_subclass_holds_its_own_variables(xp, rng):
    _, variables = make(xp, rng)
    opt = ScaledRms(learning_rate=0.1)
    for grads in grad_steps(xp, rng, 2):
        opt.apply_gradients(zip(grads, variables))
    state = opt.state_dict(variables)
    assert [a.shape for a in state["variables"]] == [(1,), (3, 17), (33,), ()]
    other = ScaledRms(learning_rate=0.1)
    other.load_state_dict(state, variables)
    assert int(other.iterations) == 2 and [v.path for v in other.variables] == [v.path for v in opt.variables]
    for a, b in zip(other.variables, opt.variables):
        numpy.testing.assert_array_equal(host(a), host(b))
    state["variables"][1] = numpy.zeros(2)
    with pytest.raises(ValueError, match="state 'variables' have shapes"):
        other.load_state_dict(state, variables)


def test_add_variable_copies_an_initial_array_and_checks_the_name(xp):
    opt = MomentumSGD()
    start = xp.zeros(2)
    made = opt.add_variable((2,), initializer=start, name="q")
    made.assign_add(1.0)
    numpy.testing.assert_array_equal(host(start), [0.0, 0.0])
    assert made.path == "momentum_sgd/q" and not made.trainable and opt.variables[2:] == [made]
    drawn = opt.add_variable((3,), initializer="ones", dtype="float64")
    assert drawn.dtype == numpy.float64 and host(drawn).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="cannot contain character `/`"):
        opt.add_variable((1,), name="a/b")
