"""Weight moving averages (use_ema) and gradient accumulation on every optimizer: plain-formula expectations over
several steps on both backends, Keras's variable order, saved state, argument checks, a rejected call changing
nothing, fit's final averages and the SwapEMAWeights callback."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backend, callbacks, layers, optimizers
from gpu_dl.layers.base import Variable

ALL = ["SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "AdamW", "Adamax", "Nadam", "Lion", "Lamb", "Ftrl",
       "Adafactor", "Muon", "ScheduleFreeAdamW"]
SHAPES = [(1,), (3, 17), (33,)]


def host(a):
    return backend.to_numpy(a).astype(numpy.float64)


def make(xp, rng, shapes=SHAPES):
    starts = [rng.normal(size=s).astype("float32") for s in shapes]
    # Copies: NumPy's asarray would share the array the expectations start from.
    return starts, [Variable(xp.asarray(w.copy()), f"v{i}") for i, w in enumerate(starts)]


def gradients(xp, rng, steps, shapes=SHAPES):
    return [[xp.asarray(rng.normal(size=s).astype("float32")) for s in shapes] for _ in range(steps)]


def test_ema_follows_the_plain_formula_and_starts_at_the_first_value(xp, rng):
    starts, variables = make(xp, rng)
    opt = optimizers.SGD(learning_rate=0.1, use_ema=True, ema_momentum=0.9)
    expected_w = [w.astype(numpy.float64) for w in starts]
    expected_avg = None
    for grads in gradients(xp, rng, 5):
        opt.apply_gradients(zip(grads, variables))
        expected_w = [w - 0.1 * host(g) for w, g in zip(expected_w, grads)]
        # The first step copies the variable (momentum 0 while iterations is 0).
        expected_avg = list(expected_w) if expected_avg is None else \
            [0.9 * a + 0.1 * w for a, w in zip(expected_avg, expected_w)]
    for var, w, a in zip(variables, expected_w, expected_avg):
        numpy.testing.assert_allclose(host(var.value), w, rtol=1e-5, atol=1e-6)
        numpy.testing.assert_allclose(host(opt.get_slot(var, "average")), a, rtol=1e-5, atol=1e-6)
        assert backend.array_module(opt.get_slot(var, "average")) is xp
    assert opt.iterations == 5


def test_ema_overwrites_the_variables_every_frequency_steps(xp, rng):
    _, variables = make(xp, rng)
    opt = optimizers.Adam(learning_rate=0.1, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=3)
    for step, grads in enumerate(gradients(xp, rng, 6), start=1):
        before = [host(v.value) for v in variables]
        opt.apply_gradients(zip(grads, variables))
        for var, b in zip(variables, before):
            same = numpy.array_equal(host(var.value), host(opt.get_slot(var, "average")))
            assert same == (step % 3 == 0) or step == 1, f"step {step}"
            assert not numpy.array_equal(host(var.value), b)


def test_finalize_variable_values_sets_the_averages(xp, rng):
    _, variables = make(xp, rng)
    opt = optimizers.RMSprop(learning_rate=0.01, use_ema=True)
    for grads in gradients(xp, rng, 3):
        opt.apply_gradients(zip(grads, variables))
    averages = [host(opt.get_slot(v, "average")) for v in variables]
    opt.finalize_variable_values(variables)
    for var, a in zip(variables, averages):
        numpy.testing.assert_array_equal(host(var.value), a)
    # Without use_ema it changes nothing.
    plain = optimizers.SGD()
    kept = [host(v.value) for v in variables]
    plain.finalize_variable_values(variables)
    for var, k in zip(variables, kept):
        numpy.testing.assert_array_equal(host(var.value), k)


def test_accumulation_applies_the_mean_gradient_every_nth_call(xp, rng):
    starts, variables = make(xp, rng)
    opt = optimizers.SGD(learning_rate=0.1, gradient_accumulation_steps=3)
    expected = [w.astype(numpy.float64) for w in starts]
    pending = [numpy.zeros(s) for s in SHAPES]
    for call, grads in enumerate(gradients(xp, rng, 7), start=1):
        returned = opt.apply_gradients(zip(grads, variables))
        pending = [p + host(g) for p, g in zip(pending, grads)]
        if call % 3 == 0:
            expected = [w - 0.1 * p / 3 for w, p in zip(expected, pending)]
            pending = [numpy.zeros(s) for s in SHAPES]
        assert returned == call                      # apply_gradients returns the raw call count, as Keras
        assert opt.iterations == call // 3
        for var, w, p in zip(variables, expected, pending):
            numpy.testing.assert_allclose(host(var.value), w, rtol=1e-5, atol=1e-6)
            numpy.testing.assert_allclose(host(opt.get_slot(var, "gradient_accumulator")), p, rtol=1e-5,
                                          atol=1e-6)


@pytest.mark.parametrize("name", ["Adam", "Nadam", "Lamb", "Adafactor", "Muon", "ScheduleFreeAdamW"])
def test_accumulated_steps_equal_plain_steps_on_the_mean_gradient(xp, rng, name):
    """Bias corrections count updates: n accumulated calls make the step one plain call makes."""
    starts, variables = make(xp, rng)
    reference = [Variable(xp.asarray(w.copy()), f"r{i}") for i, w in enumerate(starts)]
    opt = getattr(optimizers, name)(learning_rate=0.01, gradient_accumulation_steps=3)
    plain = getattr(optimizers, name)(learning_rate=0.01)
    calls = gradients(xp, rng, 6)
    for group in (calls[:3], calls[3:]):
        for grads in group:
            opt.apply_gradients(zip(grads, variables))
        # The order the accumulator adds in: (g3 + (g1 + g2)) / 3.
        means = [(c + (a + b)) / 3 for a, b, c in zip(*group)]
        plain.apply_gradients(zip(means, reference))
    assert opt.iterations == plain.iterations == 2
    for var, ref in zip(variables, reference):
        numpy.testing.assert_allclose(host(var.value), host(ref.value), rtol=1e-6, atol=1e-7)


def test_clipping_and_weight_decay_see_the_mean_gradient_on_update_calls_only(xp, rng):
    starts, variables = make(xp, rng, [(4,)])
    opt = optimizers.SGD(learning_rate=0.1, gradient_accumulation_steps=2, clipnorm=0.5, weight_decay=0.2)
    g1, g2 = xp.asarray(numpy.full(4, 3.0, "float32")), xp.asarray(numpy.full(4, 1.0, "float32"))
    opt.apply_gradients([(g1, variables[0])])
    numpy.testing.assert_array_equal(host(variables[0].value), starts[0])   # no decay, no update yet
    opt.apply_gradients([(g2, variables[0])])
    mean = numpy.full(4, 2.0)
    clipped = mean * 0.5 / numpy.linalg.norm(mean)
    expected = starts[0] * (1 - 0.2 * 0.1) - 0.1 * clipped
    numpy.testing.assert_allclose(host(variables[0].value), expected, rtol=1e-6)


def test_the_learning_rate_schedule_reads_the_raw_call_count(xp, rng):
    seen = []

    class Recording(optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            seen.append(int(step))
            return 0.1

        def get_config(self):
            return {}

    _, variables = make(xp, rng)
    opt = optimizers.SGD(learning_rate=Recording(), gradient_accumulation_steps=2)
    for grads in gradients(xp, rng, 4):
        seen.clear()
        opt.apply_gradients(zip(grads, variables))
        assert seen and set(seen) == {opt._iterations - 1}


def test_ema_with_accumulation_counts_updates(xp, rng):
    """The EMA updates on every call; its first-step rule holds while updates (calls // n) are 0."""
    _, variables = make(xp, rng)
    opt = optimizers.SGD(learning_rate=0.1, use_ema=True, ema_momentum=0.9, gradient_accumulation_steps=2)
    calls = gradients(xp, rng, 3)
    opt.apply_gradients(zip(calls[0], variables))
    opt.apply_gradients(zip(calls[1], variables))
    for var in variables:   # calls 1 and 2: iterations is 0, the average copies the (updated) variable
        numpy.testing.assert_array_equal(host(opt.get_slot(var, "average")), host(var.value))
    held = [host(opt.get_slot(v, "average")) for v in variables]
    opt.apply_gradients(zip(calls[2], variables))   # accumulates only: the variable is unchanged
    for var, h in zip(variables, held):
        numpy.testing.assert_allclose(host(opt.get_slot(var, "average")), 0.9 * h + 0.1 * host(var.value),
                                      rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ALL)
def test_variables_in_keras_order_and_state_round_trip(xp, rng, name):
    """Averages, then accumulators, then the rule's own slots; a restored optimizer continues identically."""
    _, variables = make(xp, rng)
    kwargs = dict(learning_rate=0.01, use_ema=True, ema_overwrite_frequency=4, gradient_accumulation_steps=2)
    opt = getattr(optimizers, name)(**kwargs)
    calls = gradients(xp, rng, 8)
    for grads in calls[:3]:
        opt.apply_gradients(zip(grads, variables))
    # the count of calls (Keras's iteration variable counts them too), the learning rate, then the slots
    assert [int(opt.variables[0].numpy()), float(opt.variables[1].numpy())] == [3, numpy.float32(0.01)]
    slots = [v.value for v in opt.variables[2:]]
    n = len(variables)
    for i, var in enumerate(variables):
        assert slots[i] is opt.get_slot(var, "average")
        assert slots[n + i] is opt.get_slot(var, "gradient_accumulator")
    store = {}
    opt.save_own_variables(store)
    assert int(store["0"]) == 3
    twins = [Variable(v.value.copy(), v.name) for v in variables]
    other = getattr(optimizers, name)(**kwargs)
    other.build(twins)
    other.load_own_variables(store)
    assert other.iterations == opt.iterations == 1
    for grads in calls[3:]:
        opt.apply_gradients(zip(grads, variables))
        other.apply_gradients(zip(grads, twins))
    for a, b in zip(opt.variables + variables, other.variables + twins):
        if a.path == "variable":
            # Nadam's momentum product: the file holds it in float32, as Keras's does, so the restored optimizer
            # went on from the rounded product
            numpy.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
            continue
        numpy.testing.assert_array_equal(a.numpy(), b.numpy())
    state = opt.state_dict(variables)
    third = getattr(optimizers, name)(**kwargs)
    third.load_state_dict(state, twins)
    assert third.iterations == opt.iterations and third._iterations == 8


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("argument,value", [
    ("ema_momentum", 1.5), ("ema_momentum", -0.1), ("ema_momentum", "0.9"), ("ema_momentum", True),
    ("gradient_accumulation_steps", 1), ("gradient_accumulation_steps", 0), ("gradient_accumulation_steps", 2.5),
    ("gradient_accumulation_steps", True), ("gradient_accumulation_steps", "2"),
    ("ema_overwrite_frequency", 0), ("ema_overwrite_frequency", -2), ("ema_overwrite_frequency", 1.5),
    ("ema_overwrite_frequency", True)])
def test_bad_arguments_name_the_optimizer_and_argument(name, argument, value):
    with pytest.raises(ValueError, match=rf"{name}: argument `{argument}`"):
        getattr(optimizers, name)(use_ema=True, **{argument: value})


def test_iterations_is_read_only_with_accumulation():
    opt = optimizers.SGD(gradient_accumulation_steps=2)
    with pytest.raises(ValueError, match="read-only"):
        opt.iterations = 3


def test_a_rejected_call_changes_nothing(xp, rng):
    _, variables = make(xp, rng)
    opt = optimizers.Adam(learning_rate=0.01, use_ema=True, gradient_accumulation_steps=2)
    for grads in gradients(xp, rng, 3):
        opt.apply_gradients(zip(grads, variables))
    before = [a.numpy() for a in opt.variables + variables]
    raw = opt._iterations
    bad = gradients(xp, rng, 1)[0]
    bad[2] = xp.zeros((34,), dtype="float32")
    with pytest.raises(ValueError, match="shape"):
        opt.apply_gradients(zip(bad, variables))
    assert opt._iterations == raw
    for a, b in zip(before, opt.variables + variables):
        numpy.testing.assert_array_equal(a, b.numpy())


def test_configs_round_trip():
    opt = optimizers.AdamW(use_ema=True, ema_momentum=0.95, ema_overwrite_frequency=7, gradient_accumulation_steps=4)
    config = optimizers.serialize(opt)
    again = optimizers.deserialize(config)
    assert (again.use_ema, again.ema_momentum, again.ema_overwrite_frequency, again.gradient_accumulation_steps) \
        == (True, 0.95, 7, 4)


# ------------------------------------------------------------------------------------------------ models
def small_model(seed):
    gpu_dl.backend.set_random_seed(seed)
    return gpu_dl.Sequential([layers.Input((5,)), layers.Dense(4, activation="tanh"), layers.Dense(2)])


def data(rng, n=24):
    return rng.normal(size=(n, 5)).astype("float32"), rng.normal(size=(n, 2)).astype("float32")


def test_fit_ends_with_the_averages(xp, rng):
    model = small_model(1)
    model.compile(optimizer=optimizers.SGD(0.1, use_ema=True, ema_momentum=0.8), loss="mse")
    x, y = data(rng)
    seen = {}

    class Record(callbacks.Callback):
        def on_train_end(self, logs=None):
            opt = self.model.optimizer
            seen["averages"] = [host(opt.get_slot(v, "average")) for v in self.model.trainable_weights]
            seen["weights"] = [host(v.value) for v in self.model.trainable_weights]

    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[Record()])
    for w, a in zip(seen["weights"], seen["averages"]):
        numpy.testing.assert_array_equal(w, a)


def test_swap_ema_weights_evaluates_with_the_averages(xp, rng):
    model = small_model(2)
    model.compile(optimizer=optimizers.Adam(0.05, use_ema=True, ema_momentum=0.5), loss="mse")
    x, y = data(rng)
    log = []

    class Record(callbacks.Callback):
        def on_test_begin(self, logs=None):
            opt = self.model.optimizer
            log.append(("test", [host(v.value) for v in self.model.trainable_weights],
                        [host(opt.get_slot(v, "average")) for v in self.model.trainable_weights]))

        def on_epoch_begin(self, epoch, logs=None):
            log.append(("epoch", [host(v.value) for v in self.model.trainable_weights], None))

    swap = callbacks.SwapEMAWeights()
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(x, y),
                        callbacks=[swap, Record()])
    tests = [entry for entry in log if entry[0] == "test"]
    assert len(tests) == 2
    # During validation the model holds the averages and the optimizer the raw weights.
    raw_after_epoch_1 = log[2][1]
    for held, raw in zip(tests[0][2], raw_after_epoch_1):
        numpy.testing.assert_array_equal(held, raw)
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)


def test_swap_ema_weights_needs_use_ema():
    model = small_model(3)
    model.compile(optimizer="sgd", loss="mse")
    x = numpy.zeros((4, 5), "float32")
    with pytest.raises(ValueError, match="use_ema=True"):
        model.evaluate(x, numpy.zeros((4, 2), "float32"), verbose=0, callbacks=[callbacks.SwapEMAWeights()])


def test_swap_on_epoch_shows_the_averages_to_later_callbacks_and_predict_swaps_back(xp, rng):
    model = small_model(4)
    model.compile(optimizer=optimizers.SGD(0.1, use_ema=True, ema_momentum=0.6), loss="mse")
    x, y = data(rng)
    at_epoch_end = []

    class Record(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            opt = self.model.optimizer
            # The swap put the averages in the model and the raw weights in the optimizer's slots.
            at_epoch_end.append(([host(v.value) for v in self.model.trainable_weights],
                                 [host(opt.get_slot(v, "average")) for v in self.model.trainable_weights]))

    swap = callbacks.SwapEMAWeights(swap_on_epoch=True)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[swap, Record()])
    final = [host(v.value) for v in model.trainable_weights]
    # After the last epoch the averages stay in the model, and fit's finalize keeps them there.
    for w, m in zip(final, at_epoch_end[-1][0]):
        numpy.testing.assert_array_equal(w, m)
    for w, v in zip(final, model.trainable_weights):
        numpy.testing.assert_array_equal(w, host(model.optimizer.get_slot(v, "average")))
    # predict swaps in and back out.
    raw = [host(v.value) for v in model.trainable_weights]
    for v in model.trainable_weights:
        model.optimizer.get_slot(v, "average")[...] = 0
    zero_out = model.predict(x, verbose=0, callbacks=[callbacks.SwapEMAWeights()])
    numpy.testing.assert_allclose(zero_out, 0.0, atol=1e-7)   # all-zero weights predict zeros
    for w, v in zip(raw, model.trainable_weights):
        numpy.testing.assert_array_equal(w, host(v.value))


def test_fit_on_a_generator_also_ends_with_the_averages(xp, rng):
    model = small_model(5)
    model.compile(optimizer=optimizers.Adam(0.05, use_ema=True, gradient_accumulation_steps=2), loss="mse")
    x, y = data(rng)

    def batches():
        while True:
            for i in range(0, 24, 8):
                yield x[i:i + 8], y[i:i + 8]

    model.fit(batches(), steps_per_epoch=3, epochs=2, verbose=0, shuffle=False)
    assert model.optimizer.iterations == 3
    for v in model.trainable_weights:
        numpy.testing.assert_array_equal(host(v.value), host(model.optimizer.get_slot(v, "average")))
