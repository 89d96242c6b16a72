"""LossScaleOptimizer: Keras's dynamic loss scale (halved and the step skipped on a non-finite gradient, doubled
after ``dynamic_growth_steps`` finite steps), the unscaled step of its inner optimizer, its variables, config and
state, and compile's wrapping of the optimizer of a "mixed_float16" model."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers, mixed_precision, optimizers
from gpu_dl.layers.base import Variable
from gpu_dl.optimizers import LossScaleOptimizer


@pytest.fixture(autouse=True)
def global_policy_restored():
    yield
    gpu_dl.utils.clear_session(free_memory=False)      # the global policy follows floatx again


def variable(xp, values):
    return Variable(xp.asarray(numpy.asarray(values, dtype="float32")), "w")


def test_scale_schedule_skipped_steps_and_unscaled_updates(xp):
    """A NumPy expectation of the schedule: finite steps divide the gradient by the scale before SGD's step and
    count towards doubling; a step with an inf or NaN changes no weight and halves the scale."""
    var = variable(xp, [1.0, 2.0])
    opt = LossScaleOptimizer(optimizers.SGD(learning_rate=0.5), initial_scale=8.0, dynamic_growth_steps=3)
    assert opt.dynamic_scale == 8.0 and opt.scale_loss(2.0) == 16.0
    expected, scale, counter, iterations = numpy.array([1.0, 2.0], "float32"), 8.0, 0, 0
    grads = [[8.0, -16.0], [numpy.inf, 1.0], [4.0, 4.0], [numpy.nan, 0.0], [2.0, 2.0], [1.0, 1.0], [1.0, -1.0],
             [2.0, 2.0]]
    for step, g in enumerate(grads):
        opt.apply_gradients([(xp.asarray(numpy.asarray(g, "float32")), var)])
        if numpy.isfinite(g).all():
            expected = expected - numpy.float32(0.5) * (numpy.asarray(g, "float32") / numpy.float32(scale))
            iterations += 1
            counter += 1
            if counter == 3:
                counter, scale = 0, scale * 2
        else:
            counter, scale = 0, scale / 2
        numpy.testing.assert_allclose(numpy.asarray(backend.to_numpy(var.value)), expected, rtol=1e-6,
                                      err_msg=f"step {step}")
        assert (opt.dynamic_scale, opt.step_counter, opt.iterations) == (scale, counter, iterations), step
    assert opt.inner_optimizer.iterations == iterations
    assert opt.dynamic_scale == 4.0          # halved twice, doubled once
    # Keras's: its iteration and learning rate, then step_counter (int32) and dynamic_scale (float32)
    assert opt.variables[2].dtype == numpy.int32 and opt.variables[3].dtype == numpy.float32
    assert float(opt.variables[3].numpy()) == opt.dynamic_scale and int(opt.variables[2].numpy()) == opt.step_counter


def test_inner_optimizer_state_is_left_alone_on_a_skipped_step(xp):
    var = variable(xp, [0.5, -0.5])
    opt = LossScaleOptimizer(optimizers.Adam(learning_rate=0.1), initial_scale=4.0)
    opt.apply_gradients([(xp.asarray(numpy.array([4.0, 8.0], "float32")), var)])
    momentum = numpy.asarray(backend.to_numpy(opt.get_slot(var, "momentum"))).copy()
    before = var.numpy()
    opt.apply_gradients([(xp.asarray(numpy.array([numpy.inf, 1.0], "float32")), var)])
    numpy.testing.assert_array_equal(var.numpy(), before)
    numpy.testing.assert_array_equal(numpy.asarray(backend.to_numpy(opt.get_slot(var, "momentum"))), momentum)
    assert opt.iterations == 1 and opt.dynamic_scale == 2.0
    # The first step was Adam's on the gradient divided by 4: [1, 2].
    reference = optimizers.Adam(learning_rate=0.1)
    other = variable(xp, [0.5, -0.5])
    reference.apply_gradients([(xp.asarray(numpy.array([1.0, 2.0], "float32")), other)])
    numpy.testing.assert_allclose(before, other.numpy(), rtol=1e-6)


def test_arguments_config_and_learning_rate():
    inner = optimizers.Adam(learning_rate=0.01)
    opt = LossScaleOptimizer(inner)
    assert (opt.initial_scale, opt.dynamic_growth_steps) == (2.0 ** 15, 2000)
    assert opt.name.startswith("loss_scale_optimizer")
    config = opt.get_config()
    assert config["inner_optimizer"]["class_name"] == "Adam"
    assert {k: v for k, v in config.items() if k != "inner_optimizer"} == {
        "name": opt.name, "initial_scale": 32768.0, "dynamic_growth_steps": 2000}
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert isinstance(again, LossScaleOptimizer) and isinstance(again.inner_optimizer, optimizers.Adam)
    assert again.inner_optimizer.learning_rate == pytest.approx(0.01)
    opt.learning_rate = 0.5
    assert inner.learning_rate == 0.5 and opt.learning_rate == 0.5
    assert mixed_precision.LossScaleOptimizer is LossScaleOptimizer
    assert optimizers.SGD(loss_scale_factor=4.0).scale_loss(2.0) == 8.0 and optimizers.SGD().scale_loss(2.0) == 2.0
    with pytest.raises(ValueError, match="does not support `clipnorm`"):
        LossScaleOptimizer(inner, clipnorm=1.0)
    with pytest.raises(ValueError, match="dynamic=False"):
        LossScaleOptimizer(inner, dynamic=False)
    with pytest.raises(TypeError, match="inner_optimizer"):
        LossScaleOptimizer("adam")
    with pytest.raises(ValueError, match="initial_scale"):
        LossScaleOptimizer(inner, initial_scale=0)
    with pytest.raises(ValueError, match="dynamic_growth_steps"):
        LossScaleOptimizer(inner, dynamic_growth_steps=0)


def test_compile_wraps_the_optimizer_of_a_mixed_model_only():
    mixed_precision.set_global_policy("mixed_float16")
    model = gpu_dl.Sequential([layers.Input((3,)), layers.Dense(2)])
    model.compile("sgd", "mse")
    assert isinstance(model.optimizer, LossScaleOptimizer) and isinstance(model.optimizer.inner_optimizer,
                                                                         optimizers.SGD)
    model.compile("sgd", "mse", auto_scale_loss=False)
    assert isinstance(model.optimizer, optimizers.SGD)
    given = LossScaleOptimizer(optimizers.SGD(), initial_scale=4.0)
    model.compile(given, "mse")
    assert model.optimizer is given
    mixed_precision.set_global_policy("float32")
    plain = gpu_dl.Sequential([layers.Input((3,)), layers.Dense(2, dtype="mixed_float16")])
    plain.compile("sgd", "mse")       # as in Keras, the model's own policy decides
    assert isinstance(plain.optimizer, optimizers.SGD)


def test_fit_skips_an_overflowing_first_step_and_state_round_trips(tmp_path, xp):
    """A scale so large that float16 gradients overflow: the first step is skipped and the scale halves until
    the gradients are finite, as in Keras; the scale and counter are saved with the model."""
    mixed_precision.set_global_policy("mixed_float16")
    rng = numpy.random.default_rng(3)
    model = gpu_dl.Sequential([layers.Input((4,)), layers.Dense(3)])
    before = model.get_weights()
    model.compile(LossScaleOptimizer(optimizers.SGD(0.01), initial_scale=2.0 ** 24), "mse")
    x, y = rng.standard_normal((8, 4)).astype("float32") * 10, rng.standard_normal((8, 3)).astype("float32")
    model.train_on_batch(x, y)
    assert model.optimizer.dynamic_scale == 2.0 ** 23 and model.optimizer.iterations == 0
    for a, b in zip(model.get_weights(), before):
        numpy.testing.assert_array_equal(a, b)
    model.fit(x, y, epochs=30, batch_size=8, verbose=0)
    assert model.optimizer.iterations >= 5 and model.optimizer.dynamic_scale < 2.0 ** 16
    path = tmp_path / "mixed.keras"
    model.save(path)
    loaded = gpu_dl.models.load_model(path)
    assert isinstance(loaded.optimizer, LossScaleOptimizer)
    assert (loaded.optimizer.dynamic_scale, loaded.optimizer.step_counter, loaded.optimizer.iterations) == \
        (model.optimizer.dynamic_scale, model.optimizer.step_counter, model.optimizer.iterations)
    assert loaded.layers[0].dtype_policy.name == "mixed_float16"
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_train_step_of_ones_own_scales_its_loss_with_scale_loss(xp):
    """Keras's torch train step, written by hand: compute_loss counts the float16 output in float32, the loss
    scaled by scale_loss trains the float32 weights as the float32 model's step does (to float16 rounding)."""
    rng = numpy.random.default_rng(0)
    x, y = rng.standard_normal((16, 4)).astype("float32"), rng.standard_normal((16, 2)).astype("float32")
    weights = [rng.standard_normal(s).astype("float32") * 0.5 for s in ((4, 8), (8,), (8, 2), (2,))]
    results = {}
    for policy in ("float32", "mixed_float16"):
        mixed_precision.set_global_policy(policy)

        class Stepping(gpu_dl.Model):
            def train_step(self, data):
                inputs, targets = data
                self.zero_grad()
                loss = self.compute_loss(y=targets, y_pred=self(inputs, training=True))
                self.optimizer.scale_loss(loss).backward()
                variables = list(self.trainable_weights)
                self.optimizer.apply([v.grad for v in variables], variables)
                return {"value": float(loss)}

        inputs = gpu_dl.Input((4,))
        model = Stepping(inputs, layers.Dense(2)(layers.Dense(8, activation="relu")(inputs)))
        model.set_weights(weights)
        model.compile(optimizers.SGD(0.1), "mse")
        losses = model.fit(x, y, epochs=3, batch_size=16, verbose=0).history["value"]
        results[policy] = (losses, model.get_weights(), model.optimizer)
    (plain_losses, plain, _), (mixed_losses, mixed, optimizer) = results["float32"], results["mixed_float16"]
    assert isinstance(optimizer, LossScaleOptimizer) and optimizer.iterations == 3
    numpy.testing.assert_allclose(mixed_losses, plain_losses, rtol=2e-3)
    # A loss counted in float16 would sit on float16's grid (2.638671875 for the first step here).
    assert any(numpy.float32(v) != numpy.float16(v) for v in mixed_losses)
    for a, b in zip(mixed, plain):
        assert a.dtype == numpy.float32
        numpy.testing.assert_allclose(a, b, rtol=2e-3, atol=5e-4)
