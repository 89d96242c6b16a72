"""The 1-D layers against Keras 3 itself (where Keras is installed): outputs and output shapes from the same
weights and inputs, the masked global average, training steps, and .keras files both ways."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from keras_steps import assert_keras_file_loads_both_ways, assert_training_steps_match  # noqa: E402

CASES = [
    ("Conv1D", {"filters": 4, "kernel_size": 3, "activation": "relu"}),
    ("Conv1D", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}),
    ("Conv1D", {"filters": 3, "kernel_size": 4, "strides": 3, "padding": "same", "use_bias": False}),
    ("Conv1D", {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "same"}),
    ("Conv1D", {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "causal", "activation": "tanh"}),
    ("Conv1D", {"filters": 5, "kernel_size": 2, "strides": 3, "padding": "causal"}),
    ("Conv1D", {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", "data_format": "channels_first"}),
    ("Conv1D", {"filters": 2, "kernel_size": 1}),
    ("MaxPooling1D", {}),
    ("MaxPooling1D", {"pool_size": 3, "strides": 2, "padding": "same"}),
    ("MaxPool1D", {"pool_size": 2, "strides": 1, "padding": "same", "data_format": "channels_first"}),
    ("AveragePooling1D", {"pool_size": 3, "strides": 3}),
    ("AveragePooling1D", {"pool_size": 3, "strides": 2, "padding": "same"}),
    ("AvgPool1D", {"pool_size": 2, "strides": 1, "padding": "same"}),
    ("GlobalMaxPooling1D", {}),
    ("GlobalMaxPool1D", {"keepdims": True, "data_format": "channels_first"}),
    ("GlobalAveragePooling1D", {}),
    ("GlobalAvgPool1D", {"keepdims": True}),
    ("ZeroPadding1D", {"padding": (2, 1)}),
    ("ZeroPadding1D", {"padding": 3, "data_format": "channels_first"}),
    ("Cropping1D", {"cropping": (0, 1)}),
    ("UpSampling1D", {"size": 3}),
]


def fits(name, kwargs, steps):
    """Whether Keras takes ``steps`` for this layer ("valid" windows must fit; cropping must leave a step)."""
    if name == "Cropping1D":
        return steps > sum(kwargs["cropping"])
    if name.startswith(("Conv", "Max", "Av")) and kwargs.get("padding", "valid") == "valid":
        window = kwargs.get("kernel_size", kwargs.get("pool_size", 2))
        return steps >= kwargs.get("dilation_rate", 1) * (window - 1) + 1
    return True


@pytest.mark.parametrize("name,kwargs", CASES)
@pytest.mark.parametrize("steps", [1, 3, 17, 33])
def test_layer_output_matches_keras(rng, name, kwargs, steps):
    if not fits(name, kwargs, steps):
        pytest.skip("Keras refuses this length too (tests/test_conv1d_layers.py checks gpu_dl's error)")
    shape = (2, 3, steps) if kwargs.get("data_format") == "channels_first" else (2, steps, 3)
    x = rng.standard_normal(shape).astype("float32")
    ours, theirs = getattr(layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    y_ours = ours(x)
    theirs.build(x.shape)
    if ours.weights:
        assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
        theirs.set_weights(ours.get_weights())
    y_theirs = keras.ops.convert_to_numpy(theirs(x))
    assert y_ours.shape == y_theirs.shape
    numpy.testing.assert_allclose(y_ours, y_theirs, rtol=1e-5, atol=1e-5)
    symbolic = (None,) + shape[1:]
    assert tuple(ours.compute_output_shape(symbolic)) == tuple(theirs.compute_output_shape(symbolic))
    ours_config = {k: v for k, v in ours.get_config().items() if k not in ("name", "dtype")}
    theirs_config = {k: v for k, v in theirs.get_config().items() if k in ours_config}
    assert ours_config == theirs_config


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_masked_global_average_matches_keras(rng, data_format, keepdims):
    mask = numpy.array([[1, 0, 1, 1, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 0, 0, 0, 0], [1] * 9], bool)
    shape = (3, 4, 9) if data_format == "channels_first" else (3, 9, 4)
    x = rng.standard_normal(shape).astype("float32")
    ours = layers.GlobalAveragePooling1D(data_format=data_format, keepdims=keepdims)
    theirs = keras.layers.GlobalAveragePooling1D(data_format=data_format, keepdims=keepdims)
    numpy.testing.assert_allclose(ours(x, mask=mask), keras.ops.convert_to_numpy(theirs(x, mask=mask)),
                                  rtol=1e-6, atol=1e-6)


def test_conv1d_training_steps_match_keras(rng):
    def stack(lib):
        return [lib.layers.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu"),
                lib.layers.MaxPooling1D(2, padding="same"),
                lib.layers.Conv1D(6, 3, strides=2, padding="same", activation="tanh"),
                lib.layers.AveragePooling1D(2, strides=1),
                lib.layers.Conv1D(5, 2),
                lib.layers.GlobalMaxPooling1D(),
                lib.layers.Dense(5, activation="softmax")]
    gpu_dl.backend.set_random_seed(3)
    ours = gpu_dl.Sequential([layers.Input((17, 2))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((17, 2))] + stack(keras))
    assert_training_steps_match(keras, ours, theirs, rng, (17, 2), classes=5, batch=6)


# ------------------------------------------------------------------------ .keras files
def keras_models():
    L = keras.layers
    return {
        "conv1d": (keras.Sequential([keras.Input((17, 3)), L.ZeroPadding1D((1, 2)),
                                     L.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu"),
                                     L.MaxPooling1D(), L.Conv1D(5, 3, strides=2, padding="same"),
                                     L.UpSampling1D(2), L.Cropping1D((1, 0)), L.AveragePooling1D(2, strides=1),
                                     L.Conv1D(3, 2, data_format="channels_last", use_bias=False),
                                     L.GlobalMaxPooling1D(), L.Dense(2)]), (17, 3)),
        "masked": (keras.Sequential([keras.Input((7,)), L.Embedding(9, 4, mask_zero=True),
                                     L.GlobalAveragePooling1D(), L.Dense(2)]), (7,)),
        "channels_first": (keras.Sequential([keras.Input((3, 11)),
                                             L.Conv1D(4, 3, padding="same", data_format="channels_first"),
                                             L.MaxPool1D(3, padding="same", data_format="channels_first"),
                                             L.GlobalAvgPool1D(data_format="channels_first", keepdims=True),
                                             L.Flatten(), L.Dense(2)]), (3, 11)),
    }


def sample(name, shape, rng):
    if name == "masked":
        ids = rng.integers(1, 9, (9,) + shape)
        ids[:, 4:] = 0                         # padded ids: the mask leaves them out of the mean
        ids[1, 1:] = 0
        return ids
    return rng.standard_normal((9,) + shape).astype("float32")


@pytest.mark.parametrize("name", ["conv1d", "masked", "channels_first"])
def test_files_written_by_keras_load_and_predict_the_same(name, tmp_path):
    keras.utils.set_random_seed(0)
    theirs, shape = keras_models()[name]
    assert_keras_file_loads_both_ways(keras, theirs, lambda rng: sample(name, shape, rng), tmp_path, load_model)


def test_keras_loads_a_conv1d_model_gpu_dl_trained(tmp_path, rng):
    gpu_dl.backend.set_random_seed(1)
    model = gpu_dl.Sequential([layers.Input((33, 2)), layers.Conv1D(4, 5, padding="causal", activation="relu"),
                               layers.AvgPool1D(2), layers.ZeroPadding1D(1), layers.Conv1D(3, 3, strides=2),
                               layers.UpSampling1D(), layers.Cropping1D(2), layers.MaxPool1D(3, padding="same"),
                               layers.GlobalAveragePooling1D(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = rng.standard_normal((12, 33, 2)).astype("float32"), rng.integers(0, 3, 12)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert int(theirs.optimizer.iterations) == model.optimizer.iterations == 3
    assert [type(l).__name__ for l in theirs.layers] == [type(l).__name__ for l in model.layers]
