"""layers.serialize / layers.deserialize: round trips of several layers (weights' settings and built shape kept),
custom layers through custom_objects, and dicts that describe something other than a layer refused."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers


def several():
    return [layers.Dense(3, activation="relu", kernel_regularizer="l2", name="d"),
            layers.Conv2D(4, 3, padding="same", name="c"), layers.Dropout(0.25, seed=1, name="drop"),
            layers.LSTM(5, return_sequences=True, name="lstm"), layers.Embedding(10, 4, mask_zero=True, name="e"),
            layers.ReversibleEmbedding(10, 4, tie_weights=False, logit_soft_cap=5.0, name="re"),
            layers.BatchNormalization(momentum=0.9, name="bn")]


@pytest.mark.parametrize("index", range(len(several())))
def test_round_trip(index):
    layer = several()[index]
    entry = layers.serialize(layer)
    assert entry["module"] == "keras.layers" and entry["class_name"] == type(layer).__name__
    again = layers.deserialize(entry)
    assert type(again) is type(layer) and again is not layer
    assert again.get_config() == layer.get_config()


def test_round_trip_of_a_built_layer_keeps_its_build_config():
    layer = layers.Dense(2, name="d")
    layer(numpy.zeros((3, 4), "float32"))
    entry = layers.serialize(layer)
    assert entry["build_config"] == {"input_shape": [3, 4]}      # with the batch size it was built for, as Keras
    again = layers.deserialize(entry)
    assert again.built and [w.shape for w in again.weights] == [(4, 2), (2,)]


class Scale(layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x, training=False):
        return x * self.factor

    def backward(self, dy):
        return dy * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def test_custom_layers_through_custom_objects():
    entry = layers.serialize(Scale(3.0, name="s"))
    assert entry["class_name"] == "Scale"
    with pytest.raises(ValueError, match="Scale"):
        layers.deserialize(entry)                       # an unknown class is never imported
    again = layers.deserialize(entry, custom_objects={"Scale": Scale})
    assert isinstance(again, Scale) and again.factor == 3.0 and again.name == "s"
    with gpu_dl.saving.custom_object_scope({"Scale": Scale}):
        assert layers.deserialize(entry).factor == 3.0


def test_what_is_not_a_layer_is_refused():
    entry = gpu_dl.saving.serialize_keras_object(gpu_dl.initializers.Constant(0.5))
    with pytest.raises(ValueError, match="`keras.layers.deserialize` was passed a `config` object that is not a "
                                         "`keras.layers.Layer`"):
        layers.deserialize(entry)
    with pytest.raises(TypeError):
        layers.serialize(object())
