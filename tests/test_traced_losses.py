"""Custom losses written with gpu_dl.ops (a function given to compile, a LossFunctionWrapper without grad_fn, a Loss
subclass with a call and no grad) train through the graph their call records: values against NumPy, gradients
(through Keras's reductions, sample weights, masks and loss weights) against float64 finite differences, models
trained with them, the clear errors of calls that cannot be traced, and saving."""
import json
import zipfile

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers, losses, ops
from gpu_dl.backend import to_numpy
from gpu_dl.losses import reduce_weighted_values
from gpu_dl.models import Sequential, load_model
from gpu_dl.models.model import _reduced_loss
from gpu_dl.saving import register_keras_serializable
from gradcheck import assert_gradient
from traced_loss_classes import custom_mean_squared_error, custom_mse, focal_like, robust_log_loss

REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight"]


# ------------------------------------------------------------ the losses and their NumPy expectations
def sparse_log_softmax_loss(y_true, y_pred):
    """Integer class ids in y_true (cast: no gradient reaches them), a log-softmax of y_pred."""
    ids = ops.expand_dims(ops.cast(y_true, "int32"), -1)
    return -ops.squeeze(ops.take_along_axis(ops.log_softmax(y_pred, axis=-1), ids, axis=-1), -1)


def whole_batch_loss(y_true, y_pred):
    return ops.mean(ops.abs(y_true - y_pred))


def scaled_error(y_true, y_pred, scale=1.0, power=2.0):
    return ops.mean(scale * ops.abs(y_true - y_pred) ** power, axis=-1)


def expected_robust(t, p):
    p = numpy.clip(p, -3.0, 3.0)
    error = numpy.abs(t - p)
    smooth = numpy.log1p(error ** 2)
    return numpy.where(error > 1.0, numpy.maximum(error, smooth) - 1.0 + numpy.log(numpy.float32(2.0)),
                       smooth).mean(-1)


def expected_focal(t, p, gamma):
    s = numpy.clip(1 / (1 + numpy.exp(-p)), 1e-6, 1 - 1e-6)
    p_t = numpy.where(t > 0.5, s, 1 - s)
    return (-((1 - p_t) ** gamma) * numpy.log(p_t)).sum(-1)


def expected_sparse(t, p):
    log_softmax = p - p.max(-1, keepdims=True)
    log_softmax = log_softmax - numpy.log(numpy.exp(log_softmax).sum(-1, keepdims=True))
    return -log_softmax[numpy.arange(len(t)), t.astype(int)]


def guide_class(reduction, dtype):
    loss = custom_mse(gpu_dl)(regularization_factor=0.3)
    loss.reduction, loss.dtype = reduction, dtype     # the guide's __init__ takes neither
    return loss


def wrapped(fn, **kwargs):
    return lambda reduction, dtype: losses.LossFunctionWrapper(fn, reduction=reduction, dtype=dtype, **kwargs)


def normal(rng, shape):
    return rng.standard_normal(shape)


# name: (make(reduction, dtype), targets(rng, n), predictions(rng, n), expected(t, p))
CASES = {
    "guide_function": (wrapped(custom_mean_squared_error(gpu_dl)), lambda rng, n: normal(rng, (n, 3)),
                       lambda rng, n: normal(rng, (n, 3)), lambda t, p: ((t - p) ** 2).mean(-1)),
    "guide_class": (guide_class, lambda rng, n: normal(rng, (n, 3)), lambda rng, n: normal(rng, (n, 3)),
                    lambda t, p: ((t - p) ** 2).mean(-1) + 0.3 * ((0.5 - p) ** 2).mean(-1)),
    "where_abs_log_clip_maximum": (wrapped(robust_log_loss(gpu_dl)), lambda rng, n: 2 * normal(rng, (n, 4)),
                                   lambda rng, n: 2 * normal(rng, (n, 4)), expected_robust),
    "loss_subclass": (lambda reduction, dtype: focal_like(gpu_dl)(gamma=1.5, reduction=reduction, dtype=dtype),
                      lambda rng, n: (rng.random((n, 3)) > 0.5).astype(float), lambda rng, n: 2 * normal(rng, (n, 3)),
                      lambda t, p: expected_focal(t, p, 1.5)),
    "whole_batch": (wrapped(whole_batch_loss), lambda rng, n: normal(rng, (n, 2)), lambda rng, n: normal(rng, (n, 2)),
                    lambda t, p: numpy.abs(t - p).mean()),
    "rank_one_targets": (wrapped(robust_log_loss(gpu_dl)), lambda rng, n: 2 * normal(rng, (n,)),
                         lambda rng, n: 2 * normal(rng, (n, 1)), lambda t, p: expected_robust(t[:, None], p)),
    "integer_ids": (wrapped(sparse_log_softmax_loss), lambda rng, n: rng.integers(0, 5, n).astype(float),
                    lambda rng, n: 2 * normal(rng, (n, 5)), expected_sparse),
    "wrapper_kwargs": (wrapped(scaled_error, scale=0.5, power=3.0), lambda rng, n: normal(rng, (n, 3)),
                       lambda rng, n: normal(rng, (n, 3)), lambda t, p: (0.5 * numpy.abs(t - p) ** 3).mean(-1)),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("n", [1, 3, 17])
def test_values_match_numpy(xp, rng, name, n):
    make, targets, predictions, expected = CASES[name]
    t, p = targets(rng, n), predictions(rng, n)
    want = expected(t, p)
    loss = make("sum_over_batch_size", "float64")
    assert loss.traced
    t_dev, p_dev = xp.asarray(t), xp.asarray(p)
    from_graph = loss.per_sample(t_dev, p_dev)
    assert type(from_graph) is type(p_dev) and from_graph.shape == numpy.shape(want)
    numpy.testing.assert_allclose(to_numpy(from_graph), want, rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(to_numpy(loss.call(t_dev, p_dev)), want, rtol=1e-10, atol=1e-12)   # eagerly
    sw = rng.random(n)
    numpy.testing.assert_allclose(float(loss(t_dev, p_dev, sample_weight=xp.asarray(sw))),
                                  (numpy.broadcast_to(want, sw.shape) * sw).mean(), rtol=1e-10)
    # float32 by default, as Keras's losses compute
    loss32 = make("sum_over_batch_size", None)
    values = loss32.per_sample(xp.asarray(t, dtype="float32"), xp.asarray(p, dtype="float32"))
    assert values.dtype == numpy.float32
    numpy.testing.assert_allclose(to_numpy(values), want, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_gradient_through_the_reduction_matches_finite_differences(xp, rng, name, reduction, weighted):
    """The training step's loss and gradient (``_reduced_loss``): Keras's reduced value, and its derivative
    along random directions, the loss weight (``scale``) included."""
    make, targets, predictions, _ = CASES[name]
    loss = make(reduction, "float64")
    t, p = xp.asarray(targets(rng, 7)), xp.asarray(predictions(rng, 7))
    sw = xp.asarray(rng.random(7) * (rng.random(7) > 0.2)) if weighted else None
    value, dout = _reduced_loss(loss, t, p, sw, None, training=True, scale=0.75)
    numpy.testing.assert_allclose(float(value), float(loss(t, p, sample_weight=sw)), rtol=1e-12)
    assert dout.shape == p.shape and dout.dtype == p.dtype and type(dout) is type(p)
    assert_gradient(lambda q: 0.75 * loss(t, q, sample_weight=sw), p, dout, rng, what=f"{name} {reduction}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradient_with_an_output_mask_matches_finite_differences(xp, rng, reduction):
    """A mask of padded steps on the output (per step of a sequence) leaves those values out of the reduction."""
    loss = losses.LossFunctionWrapper(robust_log_loss(gpu_dl), reduction=reduction, dtype="float64")
    t, p = xp.asarray(2 * rng.standard_normal((4, 5, 3))), xp.asarray(2 * rng.standard_normal((4, 5, 3)))
    mask = xp.asarray(rng.random((4, 5)) > 0.3)
    sw = xp.asarray(rng.random((4, 5)))     # per step, as Keras takes sample weights of a sequence
    value, dout = _reduced_loss(loss, t, p, sw, mask, training=True)

    def reduced(q):
        return reduce_weighted_values(loss.call(t, q), sw, mask, reduction)
    numpy.testing.assert_allclose(float(value), float(reduced(p)), rtol=1e-12)
    assert_gradient(reduced, p, dout, rng, what=f"masked {reduction}")
    assert float(abs(dout[~mask]).max()) == 0.0


def test_public_gradient_methods_agree(xp, rng):
    loss = focal_like(gpu_dl)(dtype="float64")
    t, p = xp.asarray((rng.random((6, 3)) > 0.5).astype(float)), xp.asarray(rng.standard_normal((6, 3)))
    values = loss.per_sample(t, p, training=True)
    weights = xp.asarray(rng.random(6))
    by_weights = loss.weighted_grad(t, p, weights)
    assert_gradient(lambda q: (weights * loss.call(t, q)).sum(), p, by_weights, rng)
    ones = loss.grad(t, p)
    assert_gradient(lambda q: loss.call(t, q).sum(), p, ones, rng)
    numpy.testing.assert_allclose(to_numpy(loss.training_grad(t, p, 0.25)), 0.25 * to_numpy(ones), rtol=1e-12)
    numpy.testing.assert_allclose(to_numpy(loss.training_grad(t, p, weights)), to_numpy(by_weights), rtol=1e-12)
    assert values.shape == (6,)


# ------------------------------------------------------------------------------- models
def regression_model(loss, seed=0, outputs=2, **compile_kwargs):
    backend.set_random_seed(seed)
    model = Sequential([layers.Input((5,)), layers.Dense(6, activation="tanh"), layers.Dense(outputs)])
    model.compile(optimizer=gpu_dl.optimizers.Adam(0.01), loss=loss, **compile_kwargs)
    return model


def data(n=29, seed=1, outputs=2):
    rng = numpy.random.default_rng(seed)
    return rng.standard_normal((n, 5)).astype("float32"), rng.standard_normal((n, outputs)).astype("float32")


def test_the_guide_function_trains_as_the_built_in_mean_squared_error(xp):
    x, y = data()
    sw = numpy.linspace(0.0, 2.0, len(x)).astype("float32")
    ours = regression_model(custom_mean_squared_error(gpu_dl))
    builtin = regression_model("mse")
    assert ours.loss.traced and not builtin.loss.traced and ours.loss.name == "custom_mean_squared_error"
    # batches of 8 leave a last one of 5: the graph traced with the batch axis None serves both sizes
    ours_history = ours.fit(x, y, batch_size=8, epochs=2, sample_weight=sw, shuffle=False, verbose=0).history
    builtin_history = builtin.fit(x, y, batch_size=8, epochs=2, sample_weight=sw, shuffle=False, verbose=0).history
    assert ours_history["loss"] == pytest.approx(builtin_history["loss"], rel=1e-6)
    for a, b in zip(ours.get_weights(), builtin.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert ours.evaluate(x, y, verbose=0) == pytest.approx(builtin.evaluate(x, y, verbose=0), rel=1e-6)


def categorical_crossentropy_with_ops(y_true, y_pred):
    """Keras's probability path of categorical cross-entropy, written with ops."""
    p = ops.clip(y_pred / ops.sum(y_pred, axis=-1, keepdims=True), 1e-7, 1.0 - 1e-7)
    return -ops.sum(y_true * ops.log(p), axis=-1)


def test_class_weights_weigh_a_traced_loss_as_a_built_in_one(xp):
    rng = numpy.random.default_rng(2)
    x = rng.standard_normal((24, 5)).astype("float32")
    y = numpy.eye(3, dtype="float32")[rng.integers(0, 3, 24)]
    histories, weights = [], []
    for loss in (categorical_crossentropy_with_ops, losses.CategoricalCrossentropy()):
        backend.set_random_seed(0)
        model = Sequential([layers.Input((5,)), layers.Dense(6, activation="tanh"),
                            layers.Dense(3), layers.Activation("sigmoid")])   # probabilities, not the fused path
        model.compile(optimizer="adam", loss=loss)
        histories.append(model.fit(x, y, batch_size=8, epochs=2, class_weight={0: 0.5, 1: 2.0, 2: 1.0},
                                   shuffle=False, verbose=0).history["loss"])
        weights.append(model.get_weights())
    assert histories[0] == pytest.approx(histories[1], rel=1e-5)
    for a, b in zip(*weights):
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_loss_with_a_gradient_of_its_own_keeps_it():
    class FrozenMSE(losses.Loss):
        """A call and a grad that says nothing moves: training must use this grad, not the call's own."""

        def call(self, y_true, y_pred):
            return ops.mean(ops.square(y_true - y_pred), axis=-1)

        def grad(self, y_true, y_pred):
            return y_pred * 0.0

    model = regression_model(FrozenMSE())
    assert not model.loss.traced
    before = model.get_weights()
    model.fit(*data(), epochs=1, verbose=0)
    for a, b in zip(before, model.get_weights()):
        numpy.testing.assert_array_equal(a, b)


def test_which_losses_are_traced():
    class NewCall(losses.MeanSquaredError):
        """A built-in's gradient was written for the built-in's call, not for this one."""

        def call(self, y_true, y_pred):
            return 3.0 * ops.mean(ops.square(y_true - y_pred), axis=-1)

    class GradientMixin:
        def grad(self, y_true, y_pred):
            return 2.0 * (y_pred - y_true) / y_pred.shape[-1]

    class WithMixin(GradientMixin, losses.Loss):
        def call(self, y_true, y_pred):
            return ops.mean(ops.square(y_true - y_pred), axis=-1)

    assert NewCall().traced and not WithMixin().traced
    assert not any(cls().traced for cls in (losses.MeanSquaredError, losses.Huber, losses.Dice, losses.CTC,
                                            losses.Circle, losses.BinaryFocalCrossentropy))
    assert losses.LossFunctionWrapper(custom_mean_squared_error(gpu_dl)).traced
    assert not losses.LossFunctionWrapper(losses.mean_squared_error, grad_fn=lambda t, p: p - t).traced
    rng = numpy.random.default_rng(3)
    t, p = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    loss = NewCall(dtype="float64")
    assert_gradient(lambda q: loss.call(t, q).sum(), p, loss.grad(t, p), rng)
    assert_gradient(lambda q: 0.5 * loss.call(t, q).sum(), p, loss.training_grad(t, p, 0.5), rng)


def test_a_loss_is_traced_once_per_shape():
    calls = []

    def counting(y_true, y_pred):
        calls.append(y_pred.shape)
        return ops.mean(ops.square(y_true - y_pred), axis=-1)

    model = regression_model(counting)
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    model.evaluate(x, y, batch_size=5, verbose=0)
    assert calls == [(None, 2)]          # traced for the targets check; every batch size reuses it
    wide = regression_model(counting, outputs=3)
    wide.fit(*data(outputs=3), epochs=1, verbose=0)
    assert calls == [(None, 2), (None, 3)]


def test_tracing_a_loss_takes_no_layer_or_operation_names():
    """Keras's losses run eagerly and name nothing: the names of the loss graph's operations are its own."""
    def names():
        x = gpu_dl.Input((2,))
        return [x.name, ops.mean(x, axis=-1)._keras_history.operation.name,
                ops.square(x)._keras_history.operation.name]

    def following(name):
        base, _, number = name.rpartition("_")
        return f"{base}_{int(number) + 1}" if base and number.isdigit() else f"{name}_1"

    model = regression_model(custom_mse(gpu_dl)())      # its graph has mean, square and two inputs
    first = names()
    model.fit(*data(), epochs=1, verbose=0)
    assert names() == [following(name) for name in first]


# ------------------------------------------------------------------------------- errors
def numpy_loss(y_true, y_pred):
    return numpy.mean(numpy.square(y_true - y_pred), axis=-1)


def method_loss(y_true, y_pred):
    return ((y_true - y_pred) ** 2).mean(axis=-1)


def branching_loss(y_true, y_pred):
    if ops.mean(y_pred) > 0.5:
        return ops.mean(y_pred, axis=-1)
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


def constant_loss(y_true, y_pred):
    return 0.5


class NumpySubclass(losses.Loss):
    def call(self, y_true, y_pred):
        return numpy.abs(y_true - y_pred).max(axis=-1)


@pytest.mark.parametrize("loss, named, why", [
    (numpy_loss, "Loss function 'numpy_loss'", "does not support ufuncs"),
    (method_loss, "Loss function 'method_loss'", "has no attribute 'mean'"),
    (branching_loss, "Loss function 'branching_loss'", "no value to be True or False"),
    (constant_loss, "Loss function 'constant_loss'", "returned float for them"),
    (NumpySubclass(), r"Loss 'numpy_subclass' \(NumpySubclass\)", "does not support ufuncs"),
], ids=["numpy", "array_method", "python_if", "constant", "loss_subclass"])
def test_a_loss_that_cannot_be_traced_is_refused_before_training_changes_anything(loss, named, why):
    model = regression_model(loss)
    before = model.get_weights()
    x, y = data()
    pattern = f"{named} cannot be trained.*{why}.*gpu_dl.ops.*ops.where.*grad\\(y_true, y_pred\\).*grad_fn"
    for run in (lambda: model.fit(x, y, epochs=1, verbose=0), lambda: model.train_on_batch(x, y),
                lambda: model.evaluate(x, y, verbose=0)):
        with pytest.raises(TypeError, match=pattern):
            run()
    assert model.optimizer.iterations == 0
    for a, b in zip(before, model.get_weights()):
        numpy.testing.assert_array_equal(a, b)


def test_shapes_a_loss_cannot_take_are_a_value_error_naming_them():
    model = regression_model(custom_mean_squared_error(gpu_dl))
    x, _ = data()
    with pytest.raises(ValueError, match=r"Loss function 'custom_mean_squared_error' cannot compute on targets of "
                                         r"shape \(None, 3\) and predictions of shape \(None, 2\).*broadcast"):
        model.fit(x, numpy.zeros((len(x), 3), "float32"), epochs=1, verbose=0)
    # A traced loss takes the shapes its call takes: no check of its own refuses other targets.
    sparse = regression_model(sparse_log_softmax_loss, outputs=4)
    sparse.fit(x, numpy.arange(len(x)) % 4, epochs=1, verbose=0)


def test_a_lambda_loss_trains_and_is_left_out_of_a_saved_file_with_a_warning(tmp_path):
    model = regression_model(lambda y_true, y_pred: ops.mean(ops.abs(y_true - y_pred), axis=-1))
    assert model.loss.name == "lambda"
    model.fit(*data(), epochs=1, verbose=0)
    with pytest.warns(UserWarning, match="cannot be written down"):
        model.save(tmp_path / "m.keras")


# ------------------------------------------------------------------------------- saving
@register_keras_serializable(package="TracedTest")
def registered_error(y_true, y_pred):
    return ops.mean(ops.abs(y_true - y_pred) ** 1.5, axis=-1)


RegisteredFocal = register_keras_serializable(package="TracedTest")(focal_like(gpu_dl))


def saved_config(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def assert_trains_on_the_same(original, loaded):
    x, y = data(seed=4)
    assert loaded.fit(x, y, batch_size=8, shuffle=False, verbose=0).history == \
        original.fit(x, y, batch_size=8, shuffle=False, verbose=0).history
    for a, b in zip(original.get_weights(), loaded.get_weights()):
        numpy.testing.assert_array_equal(a, b)


def test_a_function_loss_is_saved_as_keras_writes_it_and_loads_by_its_registered_name(tmp_path):
    model = regression_model(registered_error)
    model.fit(*data(), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    assert saved_config(tmp_path / "m.keras")["compile_config"]["loss"] == {
        "module": "builtins", "class_name": "function", "config": "TracedTest>registered_error",
        "registered_name": "function"}
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.loss.fn is registered_error and loaded.loss.traced and loaded.loss.given_as_function
    assert_trains_on_the_same(model, loaded)


def test_a_registered_loss_subclass_round_trips_with_its_config(tmp_path):
    model = regression_model(RegisteredFocal(gamma=3.0, reduction="sum"))
    y = (numpy.random.default_rng(5).random((29, 2)) > 0.5).astype("float32")
    model.fit(data()[0], y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    entry = saved_config(tmp_path / "m.keras")["compile_config"]["loss"]
    assert entry["registered_name"] == "TracedTest>FocalLike"
    assert entry["config"] == {"name": "focal_like", "reduction": "sum", "gamma": 3.0}
    loaded = load_model(tmp_path / "m.keras")
    assert type(loaded.loss) is RegisteredFocal and loaded.loss.gamma == 3.0 and loaded.loss.reduction == "sum"
    assert_trains_on_the_same(model, loaded)


def test_a_wrapper_without_grad_fn_writes_keras_config_and_round_trips(tmp_path):
    model = regression_model(losses.LossFunctionWrapper(registered_error, reduction="sum", name="err"))
    model.fit(*data(), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    entry = saved_config(tmp_path / "m.keras")["compile_config"]["loss"]
    assert entry["class_name"] == "LossFunctionWrapper"
    assert entry["config"] == {"name": "err", "reduction": "sum", "fn": {
        "module": "builtins", "class_name": "function", "config": "TracedTest>registered_error",
        "registered_name": "function"}}        # Keras's wrapper has no grad_fn: none is written
    loaded = load_model(tmp_path / "m.keras")
    assert type(loaded.loss) is losses.LossFunctionWrapper and loaded.loss.fn is registered_error
    assert loaded.loss.reduction == "sum" and loaded.loss.name == "err" and loaded.loss.traced
    assert_trains_on_the_same(model, loaded)


def test_an_unregistered_function_loss_loads_through_custom_objects(tmp_path):
    loss = custom_mean_squared_error(gpu_dl)
    model = regression_model(loss)
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="names the function 'custom_mean_squared_error'.*custom_objects"):
        load_model(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras", custom_objects={"custom_mean_squared_error": loss})
    assert loaded.loss.fn is loss
    assert_trains_on_the_same(model, loaded)


# ------------------------------------------------------------------ outputs without a loss
def two_heads(as_dict=True):
    backend.set_random_seed(0)
    inputs = gpu_dl.Input((4,))
    h = layers.Dense(5, activation="tanh", name="trunk")(inputs)
    score, label = layers.Dense(2, name="score_output")(h), layers.Dense(3, name="class_output")(h)
    return gpu_dl.Model(inputs, {"score_output": score, "class_output": label} if as_dict else [score, label])


@pytest.mark.filterwarnings("ignore:.*gradients do not exist")
def test_a_dict_of_losses_may_leave_out_an_output_of_a_dict_output_model(tmp_path):
    rng = numpy.random.default_rng(6)
    x = rng.standard_normal((10, 4)).astype("float32")
    y = {"score_output": rng.standard_normal((10, 2)).astype("float32"),
         "class_output": rng.standard_normal((10, 3)).astype("float32")}
    model = two_heads()
    model.compile(optimizer="adam", loss={"class_output": custom_mean_squared_error(gpu_dl)})
    assert model._output_losses[model.output_names.index("score_output")] is None
    untouched = model.get_layer("score_output").get_weights()
    history = model.fit(x, y, epochs=2, verbose=0).history
    assert list(history) == ["loss"]
    for a, b in zip(untouched, model.get_layer("score_output").get_weights()):
        numpy.testing.assert_array_equal(a, b)
    # its loss is that output's alone
    prediction = model.predict(x, verbose=0)["class_output"]
    assert model.evaluate(x, y, verbose=0) == pytest.approx(float(((prediction - y["class_output"]) ** 2).mean()),
                                                             rel=1e-5)
    # the targets of the output without a loss may be left out too
    assert model.evaluate(x, {"class_output": y["class_output"]}, verbose=0) == pytest.approx(
        model.evaluate(x, y, verbose=0))
    model.save(tmp_path / "m.keras")
    assert list(saved_config(tmp_path / "m.keras")["compile_config"]["loss"]) == ["class_output"]
    loaded = load_model(tmp_path / "m.keras", custom_objects={
        "custom_mean_squared_error": model._output_losses[model.output_names.index("class_output")].fn})
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))


def test_a_list_output_model_needs_every_output_in_a_dict_of_losses():
    with pytest.raises(ValueError, match="needs an entry for every output.*none for 'score_output'.*Expected keys"):
        two_heads(as_dict=False).compile(optimizer="adam", loss={"class_output": "mse"})


@pytest.mark.filterwarnings("ignore:.*gradients do not exist")
def test_a_list_of_losses_with_none_takes_the_targets_of_the_outputs_with_a_loss():
    rng = numpy.random.default_rng(7)
    x = rng.standard_normal((10, 4)).astype("float32")
    y_score, y_class = rng.standard_normal((10, 2)).astype("float32"), rng.standard_normal((10, 3)).astype("float32")
    results = []
    for y in ([y_score, y_class], [y_class], y_class, {"class_output": y_class}):
        model = two_heads(as_dict=False)
        model.compile(optimizer="adam", loss=[None, custom_mean_squared_error(gpu_dl)])
        results.append(model.fit(x, y, epochs=2, verbose=0).history["loss"])
    assert results[1:] == [results[0]] * 3
    model = two_heads(as_dict=False)
    model.compile(optimizer="adam", loss=[None, "mse"], metrics=[["mae"], None])
    with pytest.raises(ValueError, match="no targets for output 'score_output', which has a loss or metrics"):
        model.fit(x, [y_class], verbose=0)
