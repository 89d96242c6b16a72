"""``optimizer.iterations`` as Keras 3's ``iteration`` Variable, on both backends: the same object as the first of
``optimizer.variables`` for the optimizer's life; read as Keras users read it (int, numpy, truth, comparisons,
arithmetic); set by ``assign``/``assign_add``/``assign_sub``, which moves a learning-rate schedule and Adam's bias
correction (checked against plain NumPy steps); read-only with gradient accumulation (the variable counts calls,
``iterations`` updates); LossScaleOptimizer's and MultiOptimizer's counts; copies; files and resumed training;
callbacks reading it."""
import copy

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, callbacks, layers, optimizers
from gpu_dl.layers.base import Variable
from gpu_dl.models import Sequential, load_model

ALL = ["SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "AdamW", "Adamax", "Nadam", "Lion", "Lamb", "Ftrl",
       "Adafactor", "Muon", "ScheduleFreeAdamW"]


def host(a):
    return backend.to_numpy(a).astype(numpy.float64)


def variables_and_grads(xp, rng, shapes=((3, 17), (5,))):
    starts = [rng.normal(size=s).astype("float32") for s in shapes]
    grads = [xp.asarray(rng.normal(size=s).astype("float32")) for s in shapes]
    return starts, [Variable(xp.asarray(w.copy()), f"v{i}") for i, w in enumerate(starts)], grads


@pytest.mark.parametrize("name", ALL)
def test_iterations_is_the_first_variable_for_the_optimizers_life(xp, rng, name):
    opt = getattr(optimizers, name)()
    count = opt.iterations
    assert isinstance(count, Variable) and count is opt.variables[0] and count is opt.iterations
    assert (count.name, count.path, count.shape, numpy.dtype(count.dtype).name, count.trainable) == \
        ("iteration", f"{opt.name}/iteration", (), "int32", False)
    _, variables, grads = variables_and_grads(xp, rng)
    for step in range(1, 4):
        opt.apply(grads, variables)
        assert opt.iterations is count and opt.variables[0] is count and int(count) == step
    value = count.numpy()
    assert isinstance(value, numpy.ndarray) and value.dtype == numpy.int32 and value.shape == () and value == 3
    # a host array: reading the count copies nothing from the device
    assert isinstance(count.value, numpy.ndarray)


def test_iterations_reads_as_keras_users_read_it(xp, rng):
    opt = optimizers.SGD(0.1)
    count = opt.iterations
    assert not count and not bool(count) and count == 0
    _, variables, grads = variables_and_grads(xp, rng)
    for _ in range(3):
        opt.apply(grads, variables)
    assert count and count == 3 and count != 2 and count > 2 and count >= 3 and count < 4 and 2 < count
    assert int(count) == 3 and float(count) == 3.0 and count + 1 == 4 and 1 + count == 4 and count * 2 == 6
    assert count // 2 == 1 and count % 2 == 1 and count - 1 == 2
    assert list(range(count)) == [0, 1, 2] and "ab cd"[count] == "c" and numpy.asarray(count) == 3
    assert int(gpu_dl.ops.convert_to_numpy(count)) == 3
    # a value read earlier keeps what it read; the variable reads the count as it is now
    held = count.numpy()
    opt.apply(grads, variables)
    assert held == 3 and int(count) == 4


def test_assign_moves_the_learning_rate_schedule_and_the_next_step(xp, rng):
    schedule = optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    opt = optimizers.SGD(learning_rate=schedule)
    starts, variables, grads = variables_and_grads(xp, rng)
    assert float(opt.learning_rate) == pytest.approx(0.1)
    returned = opt.iterations.assign(6)
    assert int(returned) == 6 and int(opt.iterations) == 6
    assert float(opt.learning_rate) == pytest.approx(0.1 * 0.5 ** 3, rel=1e-6)
    opt.apply(grads, variables)
    for start, var, grad in zip(starts, variables, grads):
        numpy.testing.assert_allclose(host(var.value), start - 0.1 * 0.5 ** 3 * host(grad), rtol=1e-6, atol=1e-7)
    assert int(opt.iterations) == 7
    assert int(opt.iterations.assign_add(3)) == 10 and int(opt.iterations.assign_sub(8)) == 2
    assert float(opt.learning_rate) == pytest.approx(0.1 * 0.5, rel=1e-6)
    # an array or another variable's value, as Keras's assign takes them
    opt.iterations.assign(numpy.asarray(4, dtype="int64"))
    assert int(opt.iterations) == 4
    other = optimizers.SGD()
    other.iterations.assign(opt.iterations)
    assert int(other.iterations) == 4


@pytest.mark.parametrize("start", [0, 9])
def test_assign_moves_adams_bias_correction(xp, rng, start):
    b1, b2, eps, lr = 0.9, 0.999, 1e-7, 0.01
    opt = optimizers.Adam(learning_rate=lr)
    starts, variables, grads = variables_and_grads(xp, rng)
    opt.iterations.assign(start)
    opt.apply(grads, variables)
    t = start + 1
    for w, var, grad in zip(starts, variables, grads):
        g = host(grad)
        m, v = (1 - b1) * g, (1 - b2) * g * g          # the slots start at zero
        alpha = lr * numpy.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        numpy.testing.assert_allclose(host(var.value), w - alpha * m / (numpy.sqrt(v) + eps), rtol=1e-5, atol=1e-7)


def test_bad_assignments_are_clear_errors(xp, rng):
    opt = optimizers.Adam(name="counted")
    with pytest.raises(ValueError, match="'counted/iteration'.*negative"):
        opt.iterations.assign(-1)
    with pytest.raises(ValueError, match="'counted/iteration'.*negative"):
        opt.iterations.assign_sub(1)
    with pytest.raises(ValueError, match="'counted/iteration'.*step count.*integer"):
        opt.iterations.assign(1.5)
    with pytest.raises(ValueError, match="'counted/iteration'.*step count.*integer"):
        opt.iterations.assign(numpy.ones(2, "int32"))
    with pytest.raises(ValueError, match="non-negative integer"):
        opt.iterations = -2
    assert int(opt.iterations) == 0


def test_with_gradient_accumulation_iterations_counts_updates_and_the_variable_counts_calls(xp, rng):
    opt = optimizers.SGD(0.1, gradient_accumulation_steps=3)
    starts, variables, grads = variables_and_grads(xp, rng)
    for _ in range(7):
        opt.apply(grads, variables)
    calls = opt.variables[0]
    assert int(opt.iterations) == 2 and opt.iterations.numpy().dtype == numpy.int32
    assert isinstance(calls, Variable) and calls.path == f"{opt.name}/iteration" and int(calls) == 7
    with pytest.raises(ValueError, match="gradient_accumulation_steps.*read-only"):
        opt.iterations.assign(4)
    with pytest.raises(ValueError, match="read-only"):
        opt.iterations = 4
    # Setting the count of calls (as Keras's variable is set) moves the position in the accumulation group: the
    # next call, the 9th, is the last of its group and updates with the mean of what was accumulated and its own.
    before = [host(v.value) for v in variables]
    calls.assign(8)
    opt.apply(grads, variables)
    assert int(opt.iterations) == 3
    for b, var, grad in zip(before, variables, grads):
        numpy.testing.assert_allclose(host(var.value), b - 0.1 * (2 * host(grad)) / 3, rtol=1e-5, atol=1e-6)


def test_apply_gradients_returns_the_first_variable_and_apply_returns_none(xp, rng):
    """As Keras: apply_gradients gives the optimizer's own ``iteration`` Variable (the count of calls, also when
    accumulating; a LossScaleOptimizer's own, which stays 0), apply gives None."""
    _, variables, grads = variables_and_grads(xp, rng)
    for opt, counts in [(optimizers.SGD(0.1), [1, 2]), (optimizers.SGD(0.1, gradient_accumulation_steps=2), [1, 2]),
                        (optimizers.LossScaleOptimizer(optimizers.SGD(0.1)), [0, 0])]:
        for count in counts:
            returned = opt.apply_gradients(zip(grads, variables))
            assert returned is opt.variables[0] and isinstance(returned, Variable)
            assert int(returned) == count and returned.numpy().dtype == numpy.int32
        assert opt.apply(grads, variables) is None


def test_loss_scale_optimizer_counts_with_its_inner_optimizers_variable(xp, rng):
    inner = optimizers.SGD(optimizers.schedules.ExponentialDecay(0.1, 1, 0.5))
    opt = optimizers.LossScaleOptimizer(inner, initial_scale=4.0)
    assert opt.iterations is inner.iterations is inner.variables[0]
    _, variables, grads = variables_and_grads(xp, rng)
    opt.apply(grads, variables)
    opt.apply([g * float("inf") for g in grads], variables)       # skipped: the count stays
    own = opt.variables[0]
    assert (own.path, int(own), int(opt.iterations)) == (f"{opt.name}/iteration", 0, 1)
    assert own is not opt.iterations and opt.variables[opt.variables.index(inner.variables[0])] is opt.iterations
    opt.iterations.assign(3)
    assert int(inner.iterations) == 3 and float(opt.learning_rate) == pytest.approx(0.1 * 0.5 ** 3)


def test_loss_scale_optimizer_applies_gradients_alone_to_the_variables_it_was_built_on(xp, rng):
    """``apply(grads)`` without variables pairs them with the variables the wrapped optimizer was built on, as
    ``apply(grads, variables)`` does: the two give the same values."""
    _, variables, grads = variables_and_grads(xp, rng)
    _, twins, _ = variables_and_grads(xp, numpy.random.default_rng(0))
    for var, twin in zip(variables, twins):
        twin.assign(var.value.copy())
    alone, paired = (optimizers.LossScaleOptimizer(optimizers.SGD(0.1), initial_scale=4.0) for _ in range(2))
    alone.apply([g * 4.0 for g in grads], variables)
    paired.apply([g * 4.0 for g in grads], twins)
    alone.apply([g * 4.0 for g in grads])
    paired.apply([g * 4.0 for g in grads], twins)
    for var, twin in zip(variables, twins):
        numpy.testing.assert_array_equal(host(var.value), host(twin.value))
    assert int(alone.iterations) == int(paired.iterations) == 2
    with pytest.raises(ValueError, match=r"one gradient per variable the optimizer was built with \(2\), got 1"):
        alone.apply(grads[:1])


def test_multi_optimizer_counts_its_own_steps(xp, rng):
    adam, sgd = optimizers.Adam(), optimizers.SGD()
    multi = optimizers.MultiOptimizer(optimizers.OptimizerMap(sgd, {"v0": adam}))
    assert multi.variables[0] is multi.iterations and multi.variables[1].path == f"{multi.name}/learning_rate"
    _, variables, grads = variables_and_grads(xp, rng)
    multi.apply(grads, variables)
    multi.apply(grads[1:], variables[1:])
    assert (int(multi.iterations), int(adam.iterations), int(sgd.iterations)) == (2, 1, 2)
    assert [v.path for v in multi.variables[:2]] == [f"{multi.name}/iteration", f"{multi.name}/learning_rate"]
    assert multi.variables[2] is adam.iterations
    multi.iterations.assign(7)
    assert int(multi.iterations) == 7 and int(adam.iterations) == 1


def test_a_copy_counts_on_its_own(xp, rng):
    opt = optimizers.Adam()
    _, variables, grads = variables_and_grads(xp, rng)
    opt.apply(grads, variables)
    twin = copy.deepcopy(opt)
    assert twin.iterations is twin.variables[0] and twin.iterations is not opt.iterations
    twin.iterations.assign(5)
    assert (int(twin.iterations), int(opt.iterations)) == (5, 1)


def _model(learning_rate):
    backend.set_random_seed(5)
    model = Sequential([layers.Input((4,)), layers.Dense(6, activation="tanh"), layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
    return model


def _data():
    rng = numpy.random.default_rng(2)
    return rng.standard_normal((40, 4)).astype("float32"), rng.integers(0, 3, 40)


def _schedule():
    return optimizers.schedules.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.7)


def test_resumed_training_with_a_schedule_equals_uninterrupted_training(tmp_path, on_cpu):
    x, y = _data()
    straight = _model(_schedule())
    straight.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0)
    first = _model(_schedule())
    first.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    first.save(tmp_path / "half.keras")
    first.save_weights(tmp_path / "half.weights.h5")
    resumed = load_model(tmp_path / "half.keras")
    fresh = _model(_schedule())
    fresh.load_weights(tmp_path / "half.weights.h5")
    for model in (resumed, fresh):
        assert model.optimizer.iterations is model.optimizer.variables[0] and int(model.optimizer.iterations) == 10
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        assert int(model.optimizer.iterations) == 20
        for a, b in zip(straight.get_weights(), model.get_weights()):
            numpy.testing.assert_array_equal(a, b)


def test_an_assigned_count_goes_through_files(tmp_path, on_cpu):
    x, y = _data()
    model = _model(_schedule())
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.optimizer.iterations.assign(100)
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    loaded, fresh = load_model(tmp_path / "m.keras"), _model(_schedule())
    fresh.load_weights(tmp_path / "m.weights.h5")
    for other in (loaded, fresh):
        assert int(other.optimizer.iterations) == 100
        assert float(other.optimizer.learning_rate) == pytest.approx(_schedule()(100), rel=1e-6)
        other.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for other in (loaded, fresh):
        for a, b in zip(model.get_weights(), other.get_weights()):
            numpy.testing.assert_array_equal(a, b)


def test_callbacks_read_and_set_the_count(on_cpu):
    x, y = _data()
    model = _model(0.01)
    seen = []

    class Reader(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(int(self.model.optimizer.iterations))

        def on_epoch_end(self, epoch, logs=None):
            self.model.optimizer.iterations.assign(100 * (epoch + 1))

    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[Reader()])
    assert seen == [1, 2, 3, 4, 5, 101, 102, 103, 104, 105]
    assert int(model.optimizer.iterations) == 200
