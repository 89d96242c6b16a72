"""Pipeline, RandomShear, RandomPerspective, RandAugment and AugMix: plain NumPy expectations, seeds, training
flags, gradients where they exist and clear errors where they do not."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy


def images(rng, shape=(2, 4, 5, 3)):
    return rng.uniform(0, 255, shape).astype(numpy.float32)


# ------------------------------------------------------------------ Pipeline
class Recorder(layers.Layer):
    """Appends its tag and the training flag it was given to a shared log; adds its tag to the input."""

    def __init__(self, tag=0.0, log=None, **kwargs):
        super().__init__(**kwargs)
        self.tag, self.log = tag, log if log is not None else []

    def call(self, x, training=False):
        self.log.append((self.tag, training))
        return x * 2 + self.tag

    def backward(self, dy):
        self.log.append((self.tag, "backward", self.input_gradient_wanted))
        return dy * 2


def test_pipeline_applies_its_layers_in_order_and_passes_training(xp):
    log = []
    pipe = layers.Pipeline([Recorder(1.0, log), Recorder(10.0, log)])
    x = xp.ones((2, 3), dtype=xp.float32)
    numpy.testing.assert_array_equal(to_numpy(pipe(x)), numpy.full((2, 3), (1 * 2 + 1) * 2 + 10))
    assert log == [(1.0, True), (10.0, True)]        # Keras's Pipeline: training defaults to True
    log.clear()
    pipe(x, training=False)
    assert log == [(1.0, False), (10.0, False)]
    log.clear()
    pipe.input_gradient_wanted = False
    numpy.testing.assert_array_equal(to_numpy(pipe.backward(xp.ones((2, 3), dtype=xp.float32))), 4)
    assert log == [(10.0, "backward", True), (1.0, "backward", False)]


def test_pipeline_of_augmentation_layers_at_inference_and_in_a_model(xp, rng):
    x = xp.asarray(images(rng))
    pipe = layers.Pipeline([layers.RandomFlip(seed=1), layers.RandomRotation(0.2, seed=2)], name="aug")
    numpy.testing.assert_array_equal(to_numpy(pipe(x, training=False)), to_numpy(x))
    assert not numpy.array_equal(to_numpy(pipe(x)), to_numpy(x))
    assert pipe(x[0]).shape == x[0].shape            # one image without a batch axis
    model = gpu_dl.Sequential([layers.Input((4, 5, 3)), pipe, layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(to_numpy(x) / 255, numpy.zeros((2, 2), numpy.float32), epochs=1, verbose=0)
    numpy.testing.assert_array_equal(model.predict(to_numpy(x), verbose=0), model.predict(to_numpy(x), verbose=0))


def test_pipeline_weights_gradients_and_config_round_trip(rng):
    inner = layers.Dense(3)
    pipe = layers.Pipeline([layers.Dropout(0.5, seed=4), inner, layers.Dense(2)])
    x = rng.standard_normal((4, 5)).astype(numpy.float32)
    y = pipe(x, training=True)
    assert len(pipe.weights) == 4 and pipe.weights[0] is inner.kernel
    dx = pipe.backward(numpy.ones_like(y))
    assert dx.shape == x.shape and inner.kernel.grad is not None
    pipe.trainable = False
    assert pipe.trainable_weights == [] and not inner.trainable
    config = pipe.get_config()
    assert set(config) == {"layers", "name"} and [e["class_name"] for e in config["layers"]] == [
        "Dropout", "Dense", "Dense"]
    again = layers.Pipeline.from_config(config)
    assert [type(layer) for layer in again.layers] == [layers.Dropout, layers.Dense, layers.Dense]
    assert again.layers[0].rate == 0.5 and again.layers[2].units == 2 and again.name == pipe.name


def test_pipeline_refuses_what_is_not_a_list_of_its_layers():
    with pytest.raises(ValueError, match="Pipeline layer 'p': layers must be a list"):
        layers.Pipeline(layers.Dense(2), name="p")
    with pytest.raises(ValueError, match="gpu_dl's layer classes"):
        layers.Pipeline.from_config({"layers": [{"class_name": "os.system", "config": {}}], "name": "p"})
    with pytest.raises(ValueError, match="'layers'"):
        layers.Pipeline.from_config({"name": "p"})
