"""Keras 3's guides "Customizing what happens in fit()" and "Writing a training loop from scratch" (PyTorch
versions) against Keras itself: the same programs (tests/custom_step_classes.py) from the same initial weights give
the same per-epoch logs, in the same order, and the same weights after a few epochs, with shuffle=False."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

import custom_step_classes as guide  # noqa: E402


@pytest.fixture(autouse=True)
def cpu(on_cpu):
    """gpu_dl on NumPy, as Keras runs here on the CPU."""


def _data(seed=0, n=100, features=32):
    rng = numpy.random.default_rng(seed)
    return (rng.random((n, features)).astype("float32"), rng.random((n, 1)).astype("float32"),
            rng.random((n, 1)).astype("float32"))


def _pair(make, **kwargs):
    ours, theirs = guide.dense_model(gpu_dl, make(gpu_dl), **kwargs), guide.dense_model(keras, make(keras), **kwargs)
    rng = numpy.random.default_rng(7)
    weights = [rng.standard_normal(w.shape).astype("float32") * 0.3 for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    return ours, theirs


def assert_same_history(ours, theirs):
    assert list(ours.history) == list(theirs.history)
    for key in theirs.history:
        numpy.testing.assert_allclose(ours.history[key], theirs.history[key], rtol=2e-5, atol=1e-6, err_msg=key)


def assert_same_weights(ours, theirs):
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_compute_loss_and_the_metrics_loop():
    ours, theirs = _pair(guide.compute_loss_model)
    assert isinstance(ours, gpu_dl.models.Functional) and type(ours).__name__ == "CustomModel"
    x, y, _ = _data()
    for model in (ours, theirs):
        model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    assert [m.name for m in ours.metrics] == [m.name for m in theirs.metrics] == ["loss", "compile_metrics"]
    fit = dict(epochs=3, batch_size=16, shuffle=False, verbose=0, validation_data=(x[:30], y[:30]))
    assert_same_history(ours.fit(x, y, **fit), theirs.fit(x, y, **fit))
    assert_same_weights(ours, theirs)
    # evaluate runs the default test step: get_metrics_result's keys, sorted
    assert list(ours.evaluate(x, y, verbose=0, return_dict=True)) == \
        list(theirs.evaluate(x, y, verbose=0, return_dict=True)) == ["loss", "mae"]
    numpy.testing.assert_allclose(ours.evaluate(x, y, verbose=0, batch_size=20),
                                  theirs.evaluate(x, y, verbose=0, batch_size=20), rtol=2e-5)
    # train_on_batch hands the step (x, y, sample_weight) in both libraries: the guide's `x, y = data` fails
    with pytest.raises(ValueError, match="too many values to unpack"):
        theirs.train_on_batch(x, y)
    with pytest.raises(ValueError, match="too many values to unpack"):
        ours.train_on_batch(x, y)


def test_own_metrics_listed_by_the_metrics_property():
    ours, theirs = _pair(guide.own_metrics_model)
    x, y, _ = _data(1)
    for model in (ours, theirs):
        model.compile(optimizer="adam")
    assert [m.name for m in ours.metrics] == ["loss", "mae"]
    fit = dict(epochs=4, batch_size=16, shuffle=False, verbose=0)
    assert_same_history(ours.fit(x, y, **fit), theirs.fit(x, y, **fit))
    assert_same_weights(ours, theirs)
    # reset at each epoch: the last epoch's loss is the mean over that epoch's batches only
    assert ours.loss_tracker.result() == pytest.approx(ours.history.history["loss"][-1])


def test_sample_weights_reach_compute_loss_and_the_metrics():
    ours, theirs = _pair(guide.sample_weight_model)
    x, y, sw = _data(2)
    for model in (ours, theirs):
        model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    fit = dict(sample_weight=sw, epochs=3, batch_size=16, shuffle=False, verbose=0)
    assert_same_history(ours.fit(x, y, **fit), theirs.fit(x, y, **fit))
    assert_same_weights(ours, theirs)


def test_an_evaluation_step_of_its_own():
    ours, theirs = _pair(guide.test_step_model)
    x, y, _ = _data(3)
    for model in (ours, theirs):
        model.compile(loss="mse", metrics=["mae"])
    for kwargs in ({}, {"return_dict": True}):
        got = ours.evaluate(x, y, verbose=0, batch_size=16, **kwargs)
        want = theirs.evaluate(x, y, verbose=0, batch_size=16, **kwargs)
        if kwargs:
            assert list(got) == list(want)
            got, want = list(got.values()), list(want.values())
        numpy.testing.assert_allclose(got, want, rtol=2e-5)
    # its default train step trains as Keras's does, with the evaluation step of its own for validation
    fit = dict(epochs=2, batch_size=16, shuffle=False, verbose=0, validation_split=0.2)
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    assert_same_history(ours.fit(x, y, **fit), theirs.fit(x, y, **fit))
    assert_same_weights(ours, theirs)


def test_compute_loss_overridden_alone_trains_the_built_in_step_on_it():
    ours, theirs = _pair(guide.extra_loss_model)
    x, y, sw = _data(4)
    for model in (ours, theirs):
        model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    fit = dict(sample_weight=sw, epochs=3, batch_size=16, shuffle=False, verbose=0, validation_data=(x[:20], y[:20]))
    assert_same_history(ours.fit(x, y, **fit), theirs.fit(x, y, **fit))
    assert_same_weights(ours, theirs)
    assert ours.train_on_batch(x, y) == pytest.approx(theirs.train_on_batch(x, y), rel=2e-5)


@pytest.mark.parametrize("generator_trains_in_d_step", [False, True])
def test_the_gan(generator_trains_in_d_step):
    rng = numpy.random.default_rng(5)
    images = rng.random((40, 6)).astype("float32")
    latents = rng.standard_normal((12, 2, 16, 3)).astype("float32")
    noise = rng.random((12, 32, 1)).astype("float32")
    results = []
    weights = None
    for lib in (gpu_dl, keras):
        discriminator, generator = guide.gan_networks(lib)
        if weights is None:
            weights = [rng.standard_normal(w.shape).astype("float32") * 0.5
                       for w in discriminator.get_weights() + generator.get_weights()]
        discriminator.set_weights(weights[:4])
        generator.set_weights(weights[4:])
        cls = guide.gan(lib, generator_trains_in_d_step and lib is gpu_dl)
        model = cls(discriminator, generator, latents, noise)
        model.compile(d_optimizer=lib.optimizers.Adam(learning_rate=0.01),
                      g_optimizer=lib.optimizers.Adam(learning_rate=0.01),
                      loss_fn=lib.losses.BinaryCrossentropy(from_logits=True))
        history = model.fit(images, batch_size=16, epochs=4, shuffle=False, verbose=0)
        results.append((history, discriminator.get_weights() + generator.get_weights()))
    (ours, our_weights), (theirs, their_weights) = results
    assert list(ours.history) == ["d_loss", "g_loss"]
    assert_same_history(ours, theirs)
    for a, b in zip(our_weights, their_weights):
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)


def test_a_training_loop_from_scratch_step_for_step():
    rng = numpy.random.default_rng(9)
    x = rng.standard_normal((90, 20)).astype("float32")
    labels = numpy.eye(5, dtype="float32")[rng.integers(0, 5, 90)]
    train = [(x[i:i + 16], labels[i:i + 16]) for i in range(0, 70, 16)]
    val = [(x[i:i + 8], labels[i:i + 8]) for i in range(70, 90, 8)]
    ours, theirs = guide.mnist_like_model(gpu_dl), guide.mnist_like_model(keras)
    theirs.set_weights(ours.get_weights())
    our_losses, our_metrics = guide.training_loop(gpu_dl, ours, train, val, epochs=3)
    their_losses, their_metrics = guide.training_loop(keras, theirs, train, val, epochs=3)
    numpy.testing.assert_allclose(our_losses, their_losses, rtol=2e-5, atol=1e-6)
    numpy.testing.assert_allclose(our_metrics, their_metrics, rtol=1e-6)
    assert_same_weights(ours, theirs)


def test_the_built_in_steps_of_a_model_of_two_outputs():
    def make(lib):
        class Same(lib.Model):
            def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
                return super().compute_loss(x, y, y_pred, sample_weight, training)
        inputs = lib.Input((3,))
        h = lib.layers.Dense(4, activation="relu")(inputs)
        return Same(inputs, {"a": lib.layers.Dense(2, name="a")(h),
                             "b": lib.layers.Dense(1, name="b", activation="sigmoid")(h)})

    ours, theirs = make(gpu_dl), make(keras)
    theirs.set_weights(ours.get_weights())
    for model in (ours, theirs):
        model.compile(optimizer="adam", loss={"a": "mse", "b": "binary_crossentropy"},
                      loss_weights={"a": 1.0, "b": 0.5}, metrics={"a": ["mae"], "b": ["accuracy"]})
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((20, 3)).astype("float32")
    y = {"a": rng.standard_normal((20, 2)).astype("float32"), "b": (rng.random((20, 1)) > 0.5).astype("float32")}
    fit = dict(batch_size=8, epochs=3, shuffle=False, verbose=0,
               validation_data=(x[:6], {"a": y["a"][:6], "b": y["b"][:6]}))
    assert_same_history(ours.fit(x, y, **fit), theirs.fit(x, y, **fit))
    assert_same_weights(ours, theirs)
    # Keras lists each output's loss tracker once its loss has run
    assert [m.name for m in ours.metrics] == [m.name for m in theirs.metrics] == \
        ["loss", "compile_metrics", "a_loss", "b_loss"]
    numpy.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=2e-5)
