"""The layers Keras defines in its applications' modules, as gpu_dl has them (gpu_dl.applications): InceptionResNetV2's
CustomScaleLayer, ConvNeXt's LayerScale and StochasticDepth. Forward against NumPy and gradients against float64
finite differences on both backends, their configs, and their reading from the Keras modules' names."""
import sys

import numpy
import pytest

from gpu_dl import applications, layers, models
from gpu_dl.applications.convnext import LayerScale, StochasticDepth
from gpu_dl.applications.inception_resnet_v2 import CustomScaleLayer
from gpu_dl.backend import to_numpy

from gradcheck import assert_gradient


def test_custom_scale_layer_forward_and_gradients(xp, rng):
    layer = CustomScaleLayer(0.17, dtype="float64")
    shortcut, branch = (xp.asarray(rng.standard_normal((2, 3, 4, 5))) for _ in range(2))
    y = layer([shortcut, branch], training=True)
    numpy.testing.assert_allclose(to_numpy(y), to_numpy(shortcut) + 0.17 * to_numpy(branch), rtol=1e-12)
    w = xp.asarray(rng.standard_normal(y.shape))
    d_shortcut, d_branch = layer.backward(w)
    assert_gradient(lambda v: (layer([v, branch]) * w).sum(), shortcut, d_shortcut, rng)
    assert_gradient(lambda v: (layer([shortcut, v]) * w).sum(), branch, d_branch, rng)


def test_custom_scale_layer_config_and_module():
    layer = CustomScaleLayer(0.2, name="scale")
    assert layer.get_config()["scale"] == 0.2 and CustomScaleLayer.from_config(layer.get_config()).scale == 0.2
    with pytest.raises(TypeError, match="CustomScaleLayer: `scale` must be a number"):
        CustomScaleLayer("0.2")
    inputs = layers.Input((4, 4, 2))
    model = models.Model(inputs, CustomScaleLayer(0.5)([inputs, layers.Conv2D(2, 1)(inputs)]))
    entry = model.get_config()["layers"][-1]
    assert (entry["module"], entry["class_name"], entry["registered_name"]) == \
        ("keras.src.applications.inception_resnet_v2", "CustomScaleLayer", "CustomScaleLayer")

    class Mine(CustomScaleLayer):
        """A subclass is the caller's own, written under its own module."""
    assert models.Model(inputs, Mine(0.5)([inputs, inputs])).get_config()["layers"][-1]["module"] == __name__


def test_custom_scale_layer_is_read_from_keras_module_name(tmp_path, rng, monkeypatch):
    inputs = layers.Input((4, 4, 2))
    model = models.Model(inputs, CustomScaleLayer(0.5)([inputs, layers.Conv2D(2, 1)(inputs)]))
    model.save(tmp_path / "m.keras")
    x = rng.standard_normal((2, 4, 4, 2)).astype("float32")
    # Loading imports gpu_dl's module of the class when no one has: here a fresh copy of it.
    name = "gpu_dl.applications.inception_resnet_v2"
    monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(applications, "inception_resnet_v2", applications.inception_resnet_v2)
    loaded = models.load_model(tmp_path / "m.keras")
    assert name in sys.modules and type(loaded.layers[-1]) is sys.modules[name].CustomScaleLayer
    assert loaded.layers[-1].scale == 0.5
    numpy.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_other_names_of_keras_application_modules_are_refused(tmp_path):
    inputs = layers.Input((4,))
    config = models.Model(inputs, layers.Dense(2, name="d")(inputs)).get_config()
    config["layers"][-1].update(module="keras.src.applications.inception_resnet_v2", class_name="Dense2")
    with pytest.raises(ValueError, match="unknown layer class 'Dense2'"):
        models.Model.from_config(config)


# ------------------------------------------------------------------ ConvNeXt's LayerScale and StochasticDepth
def test_layer_scale_forward_and_gradients(xp, rng):
    layer = LayerScale(0.5, 4, dtype="float64")
    x = xp.asarray(rng.standard_normal((2, 3, 3, 4)))
    y = layer(x, training=True)
    assert [w.name for w in layer.weights] == [layer.gamma.name] and layer.gamma.name.startswith("variable")
    numpy.testing.assert_array_equal(to_numpy(layer.gamma.value), [0.5] * 4)
    layer.gamma.assign(rng.standard_normal(4))
    y = layer(x, training=True)
    numpy.testing.assert_allclose(to_numpy(y), to_numpy(x) * to_numpy(layer.gamma.value), rtol=1e-12)
    w = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(w)
    dgamma = layer.gamma.grad.copy()
    assert_gradient(lambda v: (layer(v, training=True) * w).sum(), x, dx, rng)
    original = layer.gamma.value.copy()

    def loss_of_gamma(value):
        layer.gamma.value[...] = value
        return (layer(x, training=True) * w).sum()
    assert_gradient(loss_of_gamma, original, dgamma, rng, what="gamma")


def test_layer_scale_arguments():
    with pytest.raises(ValueError, match="LayerScale 'ls': `projection_dim` must be a positive integer"):
        LayerScale(0.1, 0, name="ls")
    with pytest.raises(TypeError, match="LayerScale 'ls': `init_values` must be a number"):
        LayerScale("0.1", 4, name="ls")
    with pytest.raises(ValueError, match=r"LayerScale 'ls': the input's last axis \(5\) must be projection_dim=4"):
        LayerScale(0.1, 4, name="ls")(numpy.zeros((1, 5), "float32"))
    assert LayerScale(0.1, 4).get_config()["projection_dim"] == 4


def test_stochastic_depth_drops_whole_samples_in_training(xp, rng):
    layer = StochasticDepth(0.25, dtype="float64")
    x = xp.asarray(rng.uniform(1, 2, (4000, 2, 3)))
    numpy.testing.assert_array_equal(to_numpy(layer(x)), to_numpy(x))
    y = to_numpy(layer(x, training=True))
    # Each sample is either dropped (0) or kept and scaled by 1 / 0.75, whole.
    scale = y[:, 0, 0] / to_numpy(x)[:, 0, 0]
    kept = scale > 0
    numpy.testing.assert_allclose(scale[kept], 1 / 0.75, rtol=1e-12)
    numpy.testing.assert_allclose(y, to_numpy(x) * scale[:, None, None], rtol=1e-12)
    assert abs((~kept).mean() - 0.25) < 0.03
    w = xp.asarray(rng.standard_normal(x.shape))
    dx = layer.backward(w)
    numpy.testing.assert_allclose(to_numpy(dx), to_numpy(w) * scale[:, None, None], rtol=1e-12)
    with pytest.raises(ValueError, match=r"StochasticDepth 'sd': `drop_path_rate` must be a number in \[0, 1\)"):
        StochasticDepth(1.0, name="sd")
