"""More trees of models, as Keras 3 makes them: a model inside ``TimeDistributed`` (a per-frame encoder), checked
against the same layers each wrapped in its own TimeDistributed (outputs, training steps, float64 finite
differences), its saved layout, and the refusals that remain (several inputs or outputs, activity regularizers
inside, cycles and layers in two places through the wrapper)."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers
from gpu_dl.models import Sequential, load_model
from test_nested_models import _assert_trains_as, _check_model_gradients, _data, _h5_entries


# ------------------------------------------------------------------ TimeDistributed(model)
def frame_layers(dtype="float32"):
    return [layers.Conv2D(3, 3, activation="relu", dtype=dtype), layers.BatchNormalization(dtype=dtype),
            layers.Flatten(dtype=dtype), layers.Dense(4, activation="tanh", dtype=dtype)]


def frame_encoder(dtype="float32", functional=False, name="frame"):
    if not functional:
        return Sequential([gpu_dl.Input((5, 5, 2), dtype=dtype)] + frame_layers(dtype), name=name)
    inp = x = gpu_dl.Input((5, 5, 2), dtype=dtype)
    for layer in frame_layers(dtype):
        x = layer(x)
    return gpu_dl.Model(inp, x, name=name)


def video_models(dtype="float32", functional=False, seed=0):
    """TimeDistributed(encoder) then a Dense head, against each of the encoder's layers in a TimeDistributed of
    its own (BatchNormalization takes its statistics per step either way, as Keras's loop over steps does)."""
    backend.set_random_seed(seed)
    encoder = frame_encoder(dtype, functional)
    nested = Sequential([gpu_dl.Input((3, 5, 5, 2), dtype=dtype), layers.TimeDistributed(encoder, name="per_frame"),
                         layers.Flatten(dtype=dtype), layers.Dense(2, dtype=dtype)], name="video")
    flat = Sequential([gpu_dl.Input((3, 5, 5, 2), dtype=dtype)]
                      + [layers.TimeDistributed(layer) for layer in frame_layers(dtype)]
                      + [layers.Flatten(dtype=dtype), layers.Dense(2, dtype=dtype)])
    return nested, flat, encoder


@pytest.mark.parametrize("functional", [False, True])
def test_a_model_in_time_distributed_trains_as_its_layers_each_wrapped(xp, rng, functional):
    nested, flat, encoder = video_models(functional=functional)
    td = nested.get_layer("per_frame")
    assert td.layer is encoder and nested.output_shape == (None, 2)
    assert nested.weights == encoder.weights + nested.layers[-1].weights
    assert td.count_params() == encoder.count_params() and len(nested.non_trainable_weights) == 2
    _assert_trains_as(nested, flat, _data(rng, 3, 5, 5, 2), _data(rng, 2))
    # The moving statistics moved once per step, as the flat model's did.
    numpy.testing.assert_allclose(encoder.layers[-3].moving_mean.numpy(), flat.layers[1].layer.moving_mean.numpy(),
                                  rtol=1e-6, atol=1e-7)


def test_gradients_through_a_model_in_time_distributed_match_finite_differences(xp, rng):
    nested, _, _ = video_models(dtype="float64", functional=True, seed=1)
    _check_model_gradients(nested, [xp.asarray(rng.standard_normal((2, 3, 5, 5, 2)))], rng)


def test_time_distributed_model_file_layout_and_round_trip(tmp_path, rng):
    nested, _, encoder = video_models(seed=2)
    x, y = _data(rng, 3, 5, 5, 2), _data(rng, 2)
    nested.compile(optimizer="adam", loss="mse")
    nested.fit(x, y, verbose=0)
    nested.save(tmp_path / "m.keras")
    entries, config = _h5_entries(tmp_path / "m.keras")
    # As Keras 3 writes it: the model's groups under the wrapper's 'layer'.
    assert entries["layers/time_distributed/layer/layers/conv2d/vars/0"] == (3, 3, 2, 3)
    assert entries["layers/time_distributed/layer/layers/batch_normalization/vars/3"] == (3,)
    assert entries["layers/time_distributed/layer/layers/dense/vars/0"] == (27, 4)
    wrapped = config["config"]["layers"][1]["config"]["layer"]
    assert (wrapped["class_name"], wrapped["build_config"]) == ("Sequential", {"input_shape": [None, 5, 5, 2]})
    loaded = load_model(tmp_path / "m.keras")
    assert type(loaded.layers[0].layer).__name__ == "Sequential"
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), nested.predict(x, verbose=0))
    assert loaded.train_on_batch(x, y) == pytest.approx(nested.train_on_batch(x, y), rel=1e-6)
    again = Sequential.from_config(nested.get_config())
    assert type(again.layers[0].layer).__name__ == "Sequential"


def test_time_distributed_refuses_what_keras_cannot_run_or_gpu_dl_would_get_wrong():
    a, b = gpu_dl.Input((3,)), gpu_dl.Input((3,))
    pair = gpu_dl.Model([a, b], layers.Add()([a, b]), name="pair")
    with pytest.raises(ValueError, match=r"model 'pair' \(Functional\) has 2 input\(s\) and 1 output\(s\)"):
        layers.TimeDistributed(pair)
    i = gpu_dl.Input((3,))
    two = gpu_dl.Model(i, [layers.Dense(2)(i), layers.Dense(1)(i)], name="two")
    with pytest.raises(ValueError, match=r"model 'two' \(Functional\) has 1 input\(s\) and 2 output\(s\)"):
        layers.TimeDistributed(two)
    # A per-step activity penalty: Keras divides each step's by the batch; refused rather than trained otherwise.
    regularized = Sequential([gpu_dl.Input((3,)), layers.Dense(2, activity_regularizer="l2", name="act")])
    model = Sequential([gpu_dl.Input((4, 3)), layers.TimeDistributed(regularized)])
    with pytest.raises(ValueError, match=r"has layers with an activity regularizer \(act\)"):
        model.predict(numpy.ones((2, 4, 3), "float32"), verbose=0)
    # The wrapper's model belongs to the tree: cycles and layers in two places are found through it.
    inner = Sequential([gpu_dl.Input((3,)), layers.Dense(3, name="d")], name="inner")
    outer = Sequential([gpu_dl.Input((4, 3)), layers.TimeDistributed(inner)], name="outer")
    with pytest.raises(ValueError, match=r"Model 'inner' \(Sequential\) cannot hold itself: it is inside model "
                                         r"'outer'"):
        inner.add(layers.TimeDistributed(outer))
    with pytest.raises(ValueError, match=r"layer 'd' \(Dense\) in two places"):
        outer.add(inner.get_layer("d"))
    with pytest.raises(TypeError, match="SpectralNormalization wraps one layer; 'inner' is a model"):
        layers.SpectralNormalization(inner)
