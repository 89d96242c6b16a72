"""Keras's guide "Transfer learning & fine-tuning" against Keras itself (tests/guide_transfer_programs.py): the same
weight lists, frozen layers that stay as they were, summaries, predictions, training logs and weights from the same
initial weights, batch normalization in inference mode in a frozen base, fine-tuning after a recompile, and the
custom training loop over the trainable weights."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

import guide_transfer_programs as guide  # noqa: E402
from keras_steps import assert_same_summary  # noqa: E402


@pytest.fixture(autouse=True)
def cpu(on_cpu):
    """gpu_dl on NumPy, as Keras runs here on the CPU."""


def _clear():
    for lib in (gpu_dl, keras):
        lib.backend.clear_session()


def _totals(model):
    """The summary's lines of parameter counts (total, trainable, non-trainable)."""
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    return [line.strip() for line in "\n".join(lines).splitlines() if "params:" in line]


def _assert_same_history(ours, theirs, rtol=2e-5):
    assert list(ours.history) == list(theirs.history)
    for key in theirs.history:
        numpy.testing.assert_allclose(ours.history[key], theirs.history[key], rtol=rtol, atol=1e-6, err_msg=key)


def _assert_same_weights(ours, theirs, rtol=1e-4, atol=1e-6):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        numpy.testing.assert_allclose(numpy.asarray(a), keras.ops.convert_to_numpy(b) if not isinstance(
            b, numpy.ndarray) else b, rtol=rtol, atol=atol)


def _images(rng, n):
    return (rng.random((n,) + guide.IMAGE_SHAPE) * 255).astype("float32")


def _base_pair(rng, **classifier_kwargs):
    """(ours, theirs) as (base, model): the guide's model on a frozen base, gpu_dl's holding Keras's random
    weights, the batch normalizations' moving statistics among them (variances kept positive)."""
    _clear()
    pairs = []
    for lib in (gpu_dl, keras):
        base = guide.small_base(lib)
        base.trainable = False
        pairs.append((base, guide.classifier_on(lib, base, **classifier_kwargs)))
    (_, ours), (_, theirs) = pairs
    weights = [0.3 * rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()]
    weights = [numpy.abs(w) + 0.5 if "moving_variance" in v.path else w for w, v in zip(weights, theirs.weights)]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    return pairs


def test_the_weight_lists_and_frozen_layers(rng):
    _clear()
    assert guide.weight_counts(gpu_dl) == guide.weight_counts(keras) == [(2, 2, 0), (4, 2, 2), (2, 0, 2)]

    x, y = rng.random((2, 3)).astype("float32"), rng.random((2, 3)).astype("float32")
    _clear()
    (ours, ours_layer1), (theirs, theirs_layer1) = guide.frozen_first_layer(gpu_dl), guide.frozen_first_layer(keras)
    ours.set_weights(theirs.get_weights())
    initial = ours_layer1.get_weights()
    _assert_same_history(ours.fit(x, y, verbose=0), theirs.fit(x, y, verbose=0))
    for before, after, keras_after in zip(initial, ours_layer1.get_weights(), theirs_layer1.get_weights()):
        numpy.testing.assert_array_equal(after, before)
        numpy.testing.assert_array_equal(keras_after, before)
    _assert_same_weights(ours.get_weights(), theirs.get_weights())


def test_freezing_a_model_freezes_its_inner_model(monkeypatch):
    _clear()
    (ours, ours_inner), (theirs, theirs_inner) = guide.nested_frozen(gpu_dl), guide.nested_frozen(keras)
    for inner in (ours_inner, theirs_inner):
        assert inner.trainable is False and inner.layers[0].trainable is False
    assert_same_summary(ours, theirs, monkeypatch)
    assert _totals(ours) == _totals(theirs)
    assert _totals(ours)[1].startswith("Trainable params: 0 ")


def test_the_guides_model_summary_and_inference_on_a_frozen_base(rng, monkeypatch):
    (ours_base, ours), (theirs_base, theirs) = _base_pair(rng)
    assert ours.name == theirs.name == "functional_1"
    assert_same_summary(ours, theirs, monkeypatch)
    assert _totals(ours) == _totals(theirs)
    assert len(ours.trainable_weights) == len(theirs.trainable_weights) == 2
    x, y = _images(rng, 12), rng.integers(0, 2, (12, 1)).astype("float32")
    # inference: the augmentation and the dropout pass their inputs through
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    for model, lib in ((ours, gpu_dl), (theirs, keras)):
        guide.compile_top(lib, model)
    numpy.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-5)

    # trained with its random layers on, the frozen base keeps every weight, moving statistics included
    base_before = ours_base.get_weights()
    fit = dict(epochs=2, batch_size=4, validation_data=(x[:4], y[:4]), verbose=0)
    ours_history, theirs_history = ours.fit(x, y, **fit), theirs.fit(x, y, **fit)
    assert list(ours_history.history) == list(theirs_history.history) == [
        "binary_accuracy", "loss", "val_binary_accuracy", "val_loss"]
    for before, after, keras_after in zip(base_before, ours_base.get_weights(), theirs_base.get_weights()):
        numpy.testing.assert_array_equal(after, before)
        numpy.testing.assert_array_equal(keras_after, before)


def test_training_the_top_then_fine_tuning_trains_as_keras(rng, monkeypatch):
    # without the random augmentation and dropout, whose draws differ between the libraries
    (ours_base, ours), (theirs_base, theirs) = _base_pair(rng, augment=False, dropout=False)
    x, y = _images(rng, 16), rng.integers(0, 2, (16, 1)).astype("float32")
    fit = dict(epochs=2, batch_size=8, validation_data=(x[:8], y[:8]), verbose=0, shuffle=False)
    for model, lib in ((ours, gpu_dl), (theirs, keras)):
        guide.compile_top(lib, model)
    _assert_same_history(ours.fit(x, y, **fit), theirs.fit(x, y, **fit))
    _assert_same_weights(ours.get_weights(), theirs.get_weights())

    base_before = ours_base.get_weights()
    statistics = [i for i, v in enumerate(theirs_base.weights) if "moving" in v.path]
    for base in (ours_base, theirs_base):
        base.trainable = True
    assert_same_summary(ours, theirs, monkeypatch)
    assert _totals(ours) == _totals(theirs)
    assert len(ours.trainable_weights) == len(theirs.trainable_weights) == 16
    for model, lib in ((ours, gpu_dl), (theirs, keras)):
        guide.compile_top(lib, model, learning_rate=1e-5)
    _assert_same_history(ours.fit(x, y, **fit), theirs.fit(x, y, **fit))
    _assert_same_weights(ours.get_weights(), theirs.get_weights())
    # The guide says the base, called with training=False, keeps its moving statistics while fine-tuning; in
    # Keras 3.15 fit's training=True reaches the layers of a nested model whatever its node recorded, so they move
    # (in both libraries alike, as the weights above show), and so do the kernels.
    after = ours_base.get_weights()
    assert statistics and all(not numpy.array_equal(a, b) for a, b in zip(base_before, after))


def test_a_frozen_batch_normalization_runs_in_inference_mode(rng):
    # trainable=False puts the layer in inference mode even in fit (training=True): its moving statistics stay
    _clear()
    models = []
    for lib in (gpu_dl, keras):
        bn = lib.layers.BatchNormalization()
        # no bias before the normalization, as in Keras's applications: a batch's statistics cancel its gradient,
        # which Adam would turn from rounding noise into steps of full size
        model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(4, use_bias=False), bn, lib.layers.Dense(1)])
        models.append((model, bn))
    (ours, ours_bn), (theirs, theirs_bn) = models
    theirs_bn.set_weights([numpy.full(4, 1.5, "float32"), numpy.full(4, 0.2, "float32"),
                           numpy.full(4, -0.3, "float32"), numpy.full(4, 2.0, "float32")])
    ours.set_weights(theirs.get_weights())
    x, y = rng.standard_normal((16, 4)).astype("float32"), rng.standard_normal((16, 1)).astype("float32")
    for bn in (ours_bn, theirs_bn):
        bn.trainable = False
    for model in (ours, theirs):
        model.compile("adam", "mse")
    fit = dict(epochs=2, batch_size=8, verbose=0, shuffle=False)
    _assert_same_history(ours.fit(x, y, **fit), theirs.fit(x, y, **fit))
    _assert_same_weights(ours.get_weights(), theirs.get_weights())
    numpy.testing.assert_array_equal(ours_bn.get_weights()[3], numpy.full(4, 2.0, "float32"))

    # unfrozen and recompiled, it normalises by the batch and updates its statistics again, as in Keras
    for bn in (ours_bn, theirs_bn):
        bn.trainable = True
    for model in (ours, theirs):
        model.compile("adam", "mse")
    _assert_same_history(ours.fit(x, y, **fit), theirs.fit(x, y, **fit))
    _assert_same_weights(ours.get_weights(), theirs.get_weights())
    assert not numpy.array_equal(ours_bn.get_weights()[3], numpy.full(4, 2.0, "float32"))


def test_the_custom_training_loop_updates_only_the_trainable_weights(rng):
    (ours_base, ours), (theirs_base, theirs) = _base_pair(rng, augment=False, dropout=False)
    base_before = ours_base.get_weights()
    batches = [(_images(rng, 4), rng.integers(0, 2, (4, 1)).astype("float32")) for _ in range(3)]
    ours_losses, theirs_losses = guide.custom_loop(gpu_dl, ours, batches), guide.custom_loop(keras, theirs, batches)
    numpy.testing.assert_allclose(ours_losses, theirs_losses, rtol=2e-5)
    _assert_same_weights(ours.get_weights(), theirs.get_weights())
    for before, after in zip(base_before, ours_base.get_weights()):
        numpy.testing.assert_array_equal(after, before)


def test_changing_trainable_without_recompiling(rng):
    # The guide asks for a recompile after any change of `trainable`. Without one, a layer frozen after training
    # began stops training in both libraries; a layer unfrozen then makes Keras 3.15's optimizer refuse the
    # variables it was not built with, while gpu_dl's builds their slots and trains them.
    x, y = rng.standard_normal((16, 4)).astype("float32"), rng.standard_normal((16, 1)).astype("float32")
    for frozen_first in (False, True):
        _clear()
        pairs = []
        for lib in (gpu_dl, keras):
            first = lib.layers.Dense(4)
            model = lib.Sequential([lib.Input((4,)), first, lib.layers.Dense(1)])
            first.trainable = not frozen_first
            model.compile("adam", "mse")
            pairs.append((model, first))
        (ours, ours_first), (theirs, theirs_first) = pairs
        ours.set_weights(theirs.get_weights())
        fit = dict(epochs=1, batch_size=8, verbose=0, shuffle=False)
        _assert_same_history(ours.fit(x, y, **fit), theirs.fit(x, y, **fit))
        before = ours_first.get_weights()[0]
        for layer in (ours_first, theirs_first):
            layer.trainable = frozen_first
        if frozen_first:
            with pytest.raises(ValueError, match="Unknown variable"):
                theirs.fit(x, y, **fit)
            ours.fit(x, y, **fit)
            assert not numpy.array_equal(ours_first.get_weights()[0], before)
        else:
            _assert_same_history(ours.fit(x, y, **fit), theirs.fit(x, y, **fit))
            _assert_same_weights(ours.get_weights(), theirs.get_weights())
            numpy.testing.assert_array_equal(ours_first.get_weights()[0], before)
