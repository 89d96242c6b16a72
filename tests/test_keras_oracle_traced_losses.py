"""Custom losses written with ops against Keras 3 itself (where Keras is installed): the loss bodies of Keras's guide
"Training & evaluation with the built-in methods" and others (tests/traced_loss_classes.py), written once for both
libraries, give the same losses and weights after training steps, with each of Keras's reductions, sample weights,
several outputs and a dict of losses that leaves an output out."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

from keras_steps import assert_training_steps_match  # noqa: E402
from traced_loss_classes import custom_mean_squared_error, custom_mse, focal_like, robust_log_loss  # noqa: E402


def regression(lib, outputs=3):
    return lib.Sequential([lib.Input((4,)), lib.layers.Dense(8, activation="tanh"), lib.layers.Dense(outputs)])


def normal_targets(rng, batch):
    return rng.standard_normal((batch, 3)).astype("float32")


def binary_targets(rng, batch):
    return (rng.random((batch, 3)) > 0.5).astype("float32")


LOSSES = {
    "guide_function": (lambda lib: custom_mean_squared_error(lib), normal_targets),
    "guide_class": (lambda lib: custom_mse(lib)(), normal_targets),
    "guide_class_factor": (lambda lib: custom_mse(lib)(regularization_factor=0.7), normal_targets),
    "where_abs_log_clip_maximum": (lambda lib: robust_log_loss(lib), lambda rng, b: 2.5 * normal_targets(rng, b)),
    "focal_like": (lambda lib: focal_like(lib)(gamma=1.5), binary_targets),
}


@pytest.mark.parametrize("case", sorted(LOSSES))
def test_custom_loss_trains_as_keras(case):
    make, targets = LOSSES[case]
    rng = numpy.random.default_rng(3)
    ours, theirs = regression(gpu_dl), regression(keras)
    assert_training_steps_match(keras, ours, theirs, rng, (4,), classes=None, batch=8, steps=4,
                                loss=make(gpu_dl), keras_loss=make(keras), targets=targets)


def _steps_with_sample_weights(ours, theirs, ours_loss, theirs_loss, rng, steps=3, batch=8, targets=normal_targets):
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer="adam", loss=ours_loss)
    theirs.compile(optimizer=keras.optimizers.Adam(), loss=theirs_loss)
    for step in range(steps):
        x = rng.standard_normal((batch, 4)).astype("float32")
        y = targets(rng, batch)
        sw = rng.random(batch).astype("float32")
        sw[0] = 0.0
        ours_value = ours.train_on_batch(x, y, sample_weight=sw)
        theirs_value = float(theirs.train_on_batch(x, y, sample_weight=sw))
        assert ours_value == pytest.approx(theirs_value, rel=2e-5, abs=1e-6), f"step {step}"
        assert ours.evaluate(x, y, sample_weight=sw, verbose=0) == pytest.approx(
            float(theirs.evaluate(x, y, sample_weight=sw, verbose=0)), rel=2e-5, abs=1e-6)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight"])
def test_reductions_and_sample_weights_train_as_keras(reduction):
    from keras.src.losses import LossFunctionWrapper      # Keras 3.15 does not export it under keras.losses
    rng = numpy.random.default_rng(4)
    ours, theirs = regression(gpu_dl), regression(keras)
    _steps_with_sample_weights(
        ours, theirs, gpu_dl.losses.LossFunctionWrapper(robust_log_loss(gpu_dl), reduction=reduction),
        LossFunctionWrapper(robust_log_loss(keras), reduction=reduction), rng)


def test_a_loss_subclass_with_a_reduction_and_sample_weights_trains_as_keras():
    rng = numpy.random.default_rng(5)
    ours, theirs = regression(gpu_dl), regression(keras)
    _steps_with_sample_weights(ours, theirs, focal_like(gpu_dl)(reduction="sum"),
                               focal_like(keras)(reduction="sum"), rng, targets=binary_targets)


def test_a_loss_of_the_whole_batch_trains_as_keras():
    """A loss that reduces every axis gives one value for the batch; sample weights multiply it out as Keras's
    reduction does."""
    def whole_batch(lib):
        def loss(y_true, y_pred):
            return lib.ops.mean(lib.ops.abs(y_true - y_pred))
        return loss
    rng = numpy.random.default_rng(6)
    ours, theirs = regression(gpu_dl), regression(keras)
    _steps_with_sample_weights(ours, theirs, whole_batch(gpu_dl), whole_batch(keras), rng)


def test_targets_of_rank_one_are_aligned_as_keras_aligns_them():
    """Keras's wrapper of a function hands it y_true (batch,) as (batch, 1) for a y_pred of (batch, 1)."""
    rng = numpy.random.default_rng(7)
    ours, theirs = regression(gpu_dl, outputs=1), regression(keras, outputs=1)
    assert_training_steps_match(keras, ours, theirs, rng, (4,), classes=None, batch=8, steps=3,
                                loss=robust_log_loss(gpu_dl), keras_loss=robust_log_loss(keras),
                                targets=lambda rng, b: rng.standard_normal(b).astype("float32"))


def two_heads(lib, as_dict=True):
    inputs = lib.Input((4,), name="features")
    h = lib.layers.Dense(6, activation="tanh", name="trunk")(inputs)
    score = lib.layers.Dense(3, name="score_output")(h)
    logits = lib.layers.Dense(3, name="class_output")(h)
    return lib.Model(inputs, {"score_output": score, "class_output": logits} if as_dict else [score, logits])


def logs_and_weights_match(ours, theirs, rng, as_dict):
    """Three training steps of both two-output models on the same batches give the same logs, then the same
    weights."""
    for step in range(3):
        x = rng.standard_normal((8, 4)).astype("float32")
        y = two_targets(rng, 8, as_dict=as_dict)
        ours_logs = ours.train_on_batch(x, y, return_dict=True)
        theirs_logs = theirs.train_on_batch(x, y, return_dict=True)
        assert set(ours_logs) == set(theirs_logs)
        for key in theirs_logs:
            assert ours_logs[key] == pytest.approx(float(theirs_logs[key]), rel=2e-5, abs=1e-6), (step, key)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def two_targets(rng, batch, as_dict=True, only=None):
    y = {"score_output": normal_targets(rng, batch), "class_output": binary_targets(rng, batch)}
    if only is not None:
        y = {only: y[only]}
    return y if as_dict else list(y.values())


def test_custom_losses_of_a_dict_output_model_train_as_keras():
    rng = numpy.random.default_rng(8)
    ours, theirs = two_heads(gpu_dl), two_heads(keras)
    theirs.set_weights(ours.get_weights())
    for lib, model in ((gpu_dl, ours), (keras, theirs)):
        model.compile(optimizer=lib.optimizers.Adam(), loss_weights={"score_output": 0.5, "class_output": 2.0},
                      loss={"score_output": custom_mse(lib)(), "class_output": focal_like(lib)()})
    logs_and_weights_match(ours, theirs, rng, as_dict=True)


def test_a_dict_of_losses_that_leaves_an_output_out_trains_as_keras():
    rng = numpy.random.default_rng(9)
    ours, theirs = two_heads(gpu_dl), two_heads(keras)
    theirs.set_weights(ours.get_weights())
    for lib, model in ((gpu_dl, ours), (keras, theirs)):
        model.compile(optimizer=lib.optimizers.Adam(), loss={"class_output": focal_like(lib)()})
    untrained = ours.get_layer("score_output").get_weights()
    for step in range(3):
        x = rng.standard_normal((8, 4)).astype("float32")
        y = two_targets(rng, 8)             # Keras takes the targets of every output, the unused ones too
        # Both say that the output without a loss gets no gradient.
        with pytest.warns(UserWarning, match="radients do not exist for variables.*score_output/kernel"):
            ours_logs = ours.train_on_batch(x, y, return_dict=True)
        with pytest.warns(UserWarning, match="radients do not exist for variables.*score_output/kernel"):
            theirs_logs = theirs.train_on_batch(x, y, return_dict=True)
        assert list(ours_logs) == list(theirs_logs) == ["loss"]
        assert ours_logs["loss"] == pytest.approx(float(theirs_logs["loss"]), rel=2e-5, abs=1e-6), step
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    for a, b in zip(ours.get_layer("score_output").get_weights(), untrained):
        numpy.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore:.*radients do not exist")      # the output without a loss, in both
@pytest.mark.parametrize("targets", ["all", "with_loss"])
def test_a_list_of_losses_with_none_trains_as_keras(targets):
    rng = numpy.random.default_rng(10)
    ours, theirs = two_heads(gpu_dl, as_dict=False), two_heads(keras, as_dict=False)
    theirs.set_weights(ours.get_weights())
    for lib, model in ((gpu_dl, ours), (keras, theirs)):
        model.compile(optimizer=lib.optimizers.Adam(), loss=[None, robust_log_loss(lib)])
    for step in range(3):
        x = rng.standard_normal((8, 4)).astype("float32")
        y = two_targets(rng, 8, as_dict=False)
        if targets == "with_loss":
            y = [y[1]]                     # Keras takes the targets of the outputs with a loss only, too
        ours_value = ours.train_on_batch(x, y)
        theirs_value = float(theirs.train_on_batch(x, y))
        assert ours_value == pytest.approx(theirs_value, rel=2e-5, abs=1e-6), step
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_one_custom_loss_for_every_output_trains_as_keras():
    rng = numpy.random.default_rng(11)
    ours, theirs = two_heads(gpu_dl, as_dict=False), two_heads(keras, as_dict=False)
    theirs.set_weights(ours.get_weights())
    for lib, model in ((gpu_dl, ours), (keras, theirs)):
        model.compile(optimizer=lib.optimizers.Adam(), loss=custom_mean_squared_error(lib))
    logs_and_weights_match(ours, theirs, rng, as_dict=False)


@pytest.mark.parametrize("kind", ["function", "loss_subclass"])
def test_files_with_custom_losses_load_in_the_other_library_and_train_on_the_same(kind, tmp_path):
    """Keras writes compile(loss=fn) as the function, and a Loss subclass by its class name and config; each
    library finds them through custom_objects in the other's file and takes the same next step."""
    name = "custom_mean_squared_error" if kind == "function" else "FocalLike"
    make = (lambda lib: custom_mean_squared_error(lib)) if kind == "function" else \
        (lambda lib: focal_like(lib)(gamma=2.5, reduction="sum"))
    targets = normal_targets if kind == "function" else binary_targets
    rng = numpy.random.default_rng(12)
    x, y = rng.standard_normal((12, 4)).astype("float32"), targets(rng, 12)
    ours, theirs = regression(gpu_dl), regression(keras)
    theirs.set_weights(ours.get_weights())
    for lib, model in ((gpu_dl, ours), (keras, theirs)):
        model.compile(optimizer="adam", loss=make(lib))
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    ours.save(tmp_path / "g.keras")
    theirs.save(tmp_path / "k.keras")
    keras_custom = {name: custom_mean_squared_error(keras) if kind == "function" else focal_like(keras)}
    ours_custom = {name: custom_mean_squared_error(gpu_dl) if kind == "function" else focal_like(gpu_dl)}
    keras_read = keras.models.load_model(tmp_path / "g.keras", custom_objects=keras_custom)
    ours_read = gpu_dl.models.load_model(tmp_path / "k.keras", custom_objects=ours_custom)
    assert ours_read.loss.traced
    if kind == "loss_subclass":
        assert ours_read.loss.gamma == 2.5 and ours_read.loss.reduction == "sum"
    expected = float(theirs.train_on_batch(x, y))
    assert ours.train_on_batch(x, y) == pytest.approx(expected, rel=2e-5, abs=1e-6)
    assert ours_read.train_on_batch(x, y) == pytest.approx(expected, rel=2e-5, abs=1e-6)
    assert float(keras_read.train_on_batch(x, y)) == pytest.approx(expected, rel=2e-5, abs=1e-6)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None, "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_calling_a_custom_loss_reduces_as_keras(reduction, weighted):
    from keras.src.losses import LossFunctionWrapper
    rng = numpy.random.default_rng(13)
    t, p = 2 * rng.standard_normal((6, 3)).astype("float32"), 2 * rng.standard_normal((6, 3)).astype("float32")
    sw = rng.random(6).astype("float32") if weighted else None
    ours = gpu_dl.losses.LossFunctionWrapper(robust_log_loss(gpu_dl), reduction=reduction)(t, p, sample_weight=sw)
    theirs = LossFunctionWrapper(robust_log_loss(keras), reduction=reduction)(t, p, sample_weight=sw)
    theirs = keras.ops.convert_to_numpy(theirs)
    assert numpy.shape(ours) == theirs.shape
    numpy.testing.assert_allclose(gpu_dl.backend.to_numpy(ours), theirs, rtol=2e-6, atol=1e-7)
    if reduction in (None, "none"):
        # Keras's torch trainer fails on the first step ("grad can be implicitly created only for scalar
        # outputs"); gpu_dl refuses it at compile.
        with pytest.raises(ValueError, match="reduction 'none' gives no scalar to train on"):
            regression(gpu_dl).compile(optimizer="adam", loss=focal_like(gpu_dl)(reduction=reduction))
