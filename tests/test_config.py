"""gpu_dl.config (Keras's keras.config): the image data format layers default to, the fixed fuzz factor, the caps on
fit's epochs and on each epoch's batches, backend(), and Keras's top-level classes and backend functions. Where Keras
is installed, layers under channels_first take the data format Keras's do, and the caps cut the same batches."""
import os
import subprocess
import sys
import warnings

import numpy
import pytest

import gpu_dl
from gpu_dl import config, layers
from gpu_dl.callbacks import Callback


@pytest.fixture(autouse=True)
def settings_restored():
    yield
    config.set_image_data_format("channels_last")
    config.set_max_epochs(None)
    config.set_max_steps_per_epoch(None)


@pytest.fixture
def channels_first_keras():
    keras = pytest.importorskip("keras")
    keras.config.set_image_data_format("channels_first")
    yield keras
    keras.config.set_image_data_format("channels_last")


LAYERS_WITH_DATA_FORMAT = [
    ("Conv1D", (2, 3)), ("Conv2D", (2, 3)), ("Conv3D", (2, 3)), ("Conv2DTranspose", (2, 3)),
    ("SeparableConv2D", (2, 3)), ("DepthwiseConv2D", (3,)), ("MaxPooling2D", (2,)), ("AveragePooling1D", (2,)),
    ("MaxPooling3D", (2,)), ("GlobalAveragePooling2D", ()), ("GlobalMaxPooling1D", ()), ("UpSampling2D", ()),
    ("ZeroPadding2D", ()), ("Cropping2D", ()), ("Flatten", ()), ("ConvLSTM2D", (2, 3)), ("RandomFlip", ()),
    ("Resizing", (4, 4)), ("RandomRotation", (0.1,)),
]


def test_image_data_format_defaults_to_channels_last_and_checks_its_word():
    assert config.image_data_format() == "channels_last" == gpu_dl.backend.image_data_format()
    config.set_image_data_format("channels_first")
    assert config.image_data_format() == "channels_first"
    with pytest.raises(ValueError, match="data_format"):
        config.set_image_data_format("NHWC")
    assert config.image_data_format() == "channels_first"       # a refused value changes nothing


@pytest.mark.parametrize("name, args", LAYERS_WITH_DATA_FORMAT)
def test_layers_take_the_global_data_format_for_none(name, args):
    config.set_image_data_format("channels_first")
    assert getattr(layers, name)(*args).data_format == "channels_first"
    assert getattr(layers, name)(*args, data_format="channels_last").data_format == "channels_last"
    config.set_image_data_format("channels_last")
    assert getattr(layers, name)(*args).data_format == "channels_last"


@pytest.mark.parametrize("name, args", LAYERS_WITH_DATA_FORMAT)
def test_layers_under_channels_first_match_keras(channels_first_keras, name, args):
    config.set_image_data_format("channels_first")
    ours, theirs = getattr(layers, name)(*args), getattr(channels_first_keras.layers, name)(*args)
    assert ours.data_format == theirs.data_format
    assert ours.get_config().get("data_format") == theirs.get_config().get("data_format")


def test_a_channels_first_conv_model_predicts_as_keras(channels_first_keras):
    config.set_image_data_format("channels_first")
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 7)).astype("float32")
    ours = gpu_dl.Sequential([layers.Input((3, 9, 7)), layers.Conv2D(4, 3, padding="same"), layers.MaxPooling2D(),
                              layers.Flatten()])
    keras = channels_first_keras
    theirs = keras.Sequential([keras.Input((3, 9, 7)), keras.layers.Conv2D(4, 3, padding="same"),
                               keras.layers.MaxPooling2D(), keras.layers.Flatten()])
    theirs.set_weights(ours.get_weights())
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_epsilon_is_keras_default_and_cannot_change():
    assert config.epsilon() == 1e-7 == gpu_dl.backend.epsilon()
    config.set_epsilon(1e-7)
    with pytest.raises(ValueError, match="fixed at 1e-07"):
        config.set_epsilon(1e-5)
    assert config.epsilon() == 1e-7


class StepCounter(Callback):
    def __init__(self):
        super().__init__()
        self.train, self.test, self.predict, self.epochs = [], 0, 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.train.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.train[-1] += 1

    def on_test_batch_end(self, batch, logs=None):
        self.test += 1

    def on_predict_batch_end(self, batch, logs=None):
        self.predict += 1


def small_model():
    model = gpu_dl.Sequential([layers.Input((3,)), layers.Dense(2)])
    model.compile("sgd", "mse")
    return model


def test_max_epochs_caps_fit_with_a_warning():
    config.set_max_epochs(2)
    model, x, y = small_model(), numpy.ones((6, 3), "float32"), numpy.ones((6, 2), "float32")
    with pytest.warns(UserWarning, match="Limiting epochs to 2"):
        history = model.fit(x, y, epochs=5, verbose=0)
    assert len(history.history["loss"]) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(model.fit(x, y, epochs=1, verbose=0).history["loss"]) == 1     # under the cap: no warning
    with pytest.raises(ValueError, match="max_epochs"):
        config.set_max_epochs(0)
    assert config.max_epochs() == 2


def test_max_steps_per_epoch_caps_fit_evaluate_and_predict():
    config.set_max_steps_per_epoch(2)
    model, counter = small_model(), StepCounter()
    x, y = numpy.arange(30, dtype="float32").reshape(10, 3), numpy.ones((10, 2), "float32")
    with pytest.warns(UserWarning, match="Limiting steps_per_epoch to 2"):
        model.fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=[counter])
        model.evaluate(x, y, batch_size=2, verbose=0, callbacks=[counter])
        out = model.predict(x, batch_size=2, verbose=0, callbacks=[counter])
    assert counter.train == [2, 2] and counter.test == 2 and counter.predict == 2
    numpy.testing.assert_allclose(out, model.predict(x[:4], verbose=0))     # the first two batches


def test_max_steps_per_epoch_caps_a_pydataset_epoch():
    config.set_max_steps_per_epoch(3)

    class Batches(gpu_dl.utils.PyDataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return numpy.full((2, 3), i, "float32"), numpy.ones((2, 2), "float32")

    counter = StepCounter()
    with pytest.warns(UserWarning, match="Limiting steps_per_epoch to 3"):
        small_model().fit(Batches(), epochs=2, verbose=0, callbacks=[counter])
    assert counter.train == [3, 3]      # each epoch half of the 6 batches (Keras goes on where the last stopped)


def test_the_caps_equal_keras_on_arrays():
    keras = pytest.importorskip("keras")
    keras.config.set_max_steps_per_epoch(2)
    config.set_max_steps_per_epoch(2)
    try:
        x = numpy.arange(30, dtype="float32").reshape(10, 3)
        theirs = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        ours = small_model()
        theirs.set_weights(ours.get_weights())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected, got = theirs.predict(x, batch_size=3, verbose=0), ours.predict(x, batch_size=3, verbose=0)
    finally:
        keras.config.set_max_steps_per_epoch(None)
    assert got.shape == expected.shape == (6, 2)
    numpy.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)   # float32 sums of several terms


@pytest.mark.parametrize("variable, value, ok", [("KERAS_MAX_EPOCHS", "3", True),
                                                 ("KERAS_MAX_STEPS_PER_EPOCH", "4", True),
                                                 ("KERAS_MAX_EPOCHS", "three", False)])
def test_the_caps_are_read_from_the_environment(variable, value, ok):
    getter = "max_epochs" if variable == "KERAS_MAX_EPOCHS" else "max_steps_per_epoch"
    run = subprocess.run([sys.executable, "-c", f"import gpu_dl.config as c; print(c.{getter}())"],
                         capture_output=True, text=True, env={**os.environ, variable: value})
    if ok:
        assert run.returncode == 0 and run.stdout.strip() == value
    else:
        assert run.returncode != 0 and f"{variable} must be a positive integer" in run.stderr


def test_backend_is_gpu_dl_and_cannot_be_switched():
    assert config.backend() == "gpu_dl" == gpu_dl.backend.backend()
    with pytest.raises(ValueError, match="set_device"):
        config.set_backend("jax")
    with pytest.warns(UserWarning, match="never runs code from a file"):
        config.enable_unsafe_deserialization()


def test_interactive_logging_switch_is_keras_one():
    assert config.is_interactive_logging_enabled()
    config.disable_interactive_logging()
    try:
        assert not gpu_dl.utils.is_interactive_logging_enabled()
    finally:
        config.enable_interactive_logging()


def test_top_level_classes_and_backend_functions():
    assert gpu_dl.Layer is layers.Layer and gpu_dl.InputSpec is layers.InputSpec
    assert gpu_dl.Loss is gpu_dl.losses.Loss and gpu_dl.Metric is gpu_dl.metrics.Metric
    assert gpu_dl.Optimizer is gpu_dl.optimizers.Optimizer and gpu_dl.Regularizer is gpu_dl.regularizers.Regularizer
    assert gpu_dl.Initializer is gpu_dl.initializers.Initializer
    assert isinstance(gpu_dl.Input((3,)), gpu_dl.KerasTensor)
    assert isinstance(layers.Dense(2), gpu_dl.Layer)
    assert gpu_dl.version() == gpu_dl.__version__
    assert gpu_dl.backend.is_keras_tensor(gpu_dl.Input((2,))) and not gpu_dl.backend.is_keras_tensor(numpy.ones(2))
    assert gpu_dl.backend.is_float_dtype("float16") and not gpu_dl.backend.is_float_dtype("int32")
    assert gpu_dl.backend.is_int_dtype(numpy.uint8) and not gpu_dl.backend.is_int_dtype("bool")
    layers.Dense(1, name="dense")
    assert layers.Dense(1).name != "dense"
    gpu_dl.backend.clear_session()
    assert layers.Dense(1).name == "dense"


def test_flash_attention_traceback_and_nnx_settings_read_back_as_keras():
    """The settings Keras keeps and gpu_dl keeps without acting on: each reads back what was set, with Keras's
    defaults, and clear_session restores them. Where Keras is installed, its functions give the same values."""
    keras = None
    if os.environ.get("KERAS_BACKEND", "torch") == "torch":
        try:
            import keras
        except ImportError:
            keras = None
    libraries = [config] + ([keras.config] if keras is not None else [])
    try:
        for lib in libraries:
            assert lib.is_flash_attention_enabled() is None
            lib.disable_flash_attention()
            assert lib.is_flash_attention_enabled() is False
            lib.enable_flash_attention()
            assert lib.is_flash_attention_enabled() is None
            assert lib.is_traceback_filtering_enabled() is True
            lib.disable_traceback_filtering()
            assert lib.is_traceback_filtering_enabled() is False
            lib.enable_traceback_filtering()
            assert lib.is_traceback_filtering_enabled() is True
            assert lib.is_nnx_enabled() is False
        config.disable_flash_attention()
        config.disable_traceback_filtering()
        gpu_dl.utils.clear_session()
        assert config.is_flash_attention_enabled() is None and config.is_traceback_filtering_enabled() is True
        # Attention computes the same either way.
        rng = numpy.random.default_rng(0)
        q = rng.standard_normal((2, 3, 4)).astype("float32")
        mha = layers.MultiHeadAttention(num_heads=2, key_dim=2)
        first = mha(q, q)
        config.disable_flash_attention()
        numpy.testing.assert_array_equal(mha(q, q), first)
    finally:
        config.enable_flash_attention()
        config.enable_traceback_filtering()
