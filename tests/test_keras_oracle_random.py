"""gpu_dl.random against keras.random (where Keras is installed): the same signatures and defaults, dtypes and shapes;
SeedGenerators with the same states, configs and place in a layer (among its variables, not its weights, not in
weight files, which load both ways); and Keras's guide's layers (Sampling in an encoder, CustomDropout) built from
the same class bodies in both libraries: the same weights, the same outputs where no noise reaches them, the same
training steps, the same kept-and-scaled dropout."""
import inspect
import os

import h5py
import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from guide_random_layers import guide_layers  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402

FUNCTIONS = ["normal", "uniform", "truncated_normal", "randint", "dropout", "shuffle", "categorical", "gamma",
             "beta", "binomial"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_signatures_and_defaults_are_keras_s(name):
    ours, theirs = inspect.signature(getattr(gpu_dl.random, name)), inspect.signature(getattr(keras.random, name))
    assert [(p.name, p.default) for p in ours.parameters.values()] == \
        [(p.name, p.default) for p in theirs.parameters.values()]
    assert inspect.signature(gpu_dl.random.SeedGenerator).parameters.keys() == \
        inspect.signature(keras.random.SeedGenerator).parameters.keys()


def test_dtypes_and_shapes_are_keras_s():
    host = numpy.ones((3, 4), "float32")
    calls = {
        "normal": lambda R, x: R.normal((2, 3), seed=1), "uniform": lambda R, x: R.uniform((), seed=1),
        "truncated_normal": lambda R, x: R.truncated_normal((4,), dtype="float64", seed=1),
        "randint": lambda R, x: R.randint((2, 2), 0, 4, seed=1),
        "randint64": lambda R, x: R.randint((2,), 0, 4, "int64"),
        "dropout": lambda R, x: R.dropout(x, 0.5, seed=1), "shuffle": lambda R, x: R.shuffle(x, axis=1, seed=1),
        "categorical": lambda R, x: R.categorical(x, 5, seed=1), "gamma": lambda R, x: R.gamma((3,), 2.0, seed=1),
        "beta": lambda R, x: R.beta((3,), 2.0, 1.0, seed=1),
        "binomial": lambda R, x: R.binomial((3,), 5, 0.5, seed=1),
    }
    for name, call in calls.items():
        ours = call(gpu_dl.random, host)
        theirs = keras.ops.convert_to_numpy(call(keras.random, keras.ops.convert_to_tensor(host)))
        assert (ours.shape, numpy.dtype(ours.dtype)) == (theirs.shape, theirs.dtype), name
    for R, x in ((gpu_dl.random, host), (keras.random, keras.ops.convert_to_tensor(host))):
        numpy.testing.assert_array_equal(keras.ops.convert_to_numpy(R.dropout(x, 1.0)), numpy.zeros_like(host))
        t = keras.ops.convert_to_numpy(R.truncated_normal((20000,), mean=1.0, stddev=0.5, seed=2))
        assert t.min() >= 0.0 and t.max() <= 2.0


def test_refusals_match_keras_s():
    for R, convert in ((gpu_dl.random, numpy.asarray), (keras.random, keras.ops.convert_to_tensor)):
        with pytest.raises(ValueError, match="requires a floating point|requires a float dtype"):
            R.uniform((2,), dtype="int32")
        with pytest.raises(ValueError, match="requires an integer"):
            R.randint((2,), 0, 3, dtype="float32")
        with pytest.raises(ValueError, match="seed"):
            R.normal((2,), seed=1.5)
        with pytest.raises(ValueError, match="seed"):
            R.SeedGenerator("a")
        with pytest.raises(ValueError, match="2-D"):
            R.categorical(convert(numpy.zeros((2, 3, 1), "float32")), 2)


def test_seed_generators_move_on_as_keras_s():
    ours, theirs = gpu_dl.random.SeedGenerator(42), keras.random.SeedGenerator(42)
    for _ in range(3):
        assert list(ours.next()) == keras.ops.convert_to_numpy(theirs.next()).tolist()
    assert ours.state.numpy().tolist() == keras.ops.convert_to_numpy(theirs.state.value).tolist() == [42, 3]
    assert ours.state.name == theirs.state.name == "seed_generator_state"
    assert ours.state.trainable is theirs.state.trainable is False
    assert ours.get_config().keys() == theirs.get_config().keys()
    assert ours.get_config()["seed"] == theirs.get_config()["seed"] == 42


def encoder_model(lib):
    _, Encoder, _ = guide_layers(lib)
    return lib.Sequential([lib.Input((6,)), Encoder(), lib.layers.Dense(3, activation="softmax")])


def _quiet_log_variance(model):
    """Weights whose log-variance is -60 everywhere, so the sampled noise is scaled by exp(-30): the outputs are
    the mean's, in both libraries, whatever noise each draws."""
    weights = model.get_weights()
    log_var_kernel, log_var_bias = 4, 5          # proj kernel, bias; mean kernel, bias; log-var kernel, bias; ...
    weights[log_var_kernel] = numpy.zeros_like(weights[log_var_kernel])
    weights[log_var_bias] = numpy.full_like(weights[log_var_bias], -60.0)
    model.set_weights(weights)


def test_an_encoder_with_sampling_has_keras_s_weights_variables_and_outputs(rng):
    backend.set_random_seed(0)
    ours, theirs = encoder_model(gpu_dl), encoder_model(keras)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert [v.name for v in ours.variables] == [v.name for v in theirs.variables]      # the seed state last
    assert [v.name for v in ours.weights] == [v.name for v in theirs.weights]
    assert len(ours.variables) == len(ours.weights) + 1
    _quiet_log_variance(ours)
    theirs.set_weights(ours.get_weights())
    x = rng.standard_normal((7, 6)).astype("float32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-6,
                                  atol=1e-6)


def test_an_encoder_with_sampling_trains_step_for_step_as_keras_s(rng):
    backend.set_random_seed(1)
    ours, theirs = encoder_model(gpu_dl), encoder_model(keras)
    _quiet_log_variance(ours)
    # SGD: the log-variance's gradient is the noise times exp(-30), ~1e-13, which Adam would scale up to steps of
    # the learning rate in directions each library's noise decides.
    assert_training_steps_match(keras, ours, theirs, rng, (6,), classes=3, batch=8, optimizer="SGD")


def test_weight_files_leave_the_seed_state_out_and_load_both_ways(tmp_path, rng):
    backend.set_random_seed(2)
    ours, theirs = encoder_model(gpu_dl), encoder_model(keras)
    ours.set_weights([rng.standard_normal(w.shape).astype("float32") for w in ours.get_weights()])
    ours.save_weights(tmp_path / "ours.weights.h5")
    theirs.load_weights(tmp_path / "ours.weights.h5")
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    theirs.save_weights(tmp_path / "theirs.weights.h5")
    back = encoder_model(gpu_dl)
    back.load_weights(tmp_path / "theirs.weights.h5")
    for a, b in zip(back.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)

    def datasets(path):
        found = []
        with h5py.File(path) as f:
            f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
        return sorted(found)
    assert datasets(tmp_path / "ours.weights.h5") == datasets(tmp_path / "theirs.weights.h5")
    assert len(datasets(tmp_path / "ours.weights.h5")) == len(ours.weights)


def test_custom_dropout_keeps_and_scales_as_keras_s(rng):
    x = rng.uniform(1.0, 2.0, (400, 50)).astype("float32")
    outputs = []
    for lib, given in ((gpu_dl, x), (keras, keras.ops.convert_to_tensor(x))):
        _, _, CustomDropout = guide_layers(lib)
        layer = CustomDropout(0.4)
        numpy.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(given, training=False)), x)
        outputs.append(keras.ops.convert_to_numpy(layer(given, training=True)))
    fractions = []
    for y in outputs:
        kept = y != 0
        numpy.testing.assert_allclose(y[kept], x[kept] / numpy.float32(0.6), rtol=1e-6)
        fractions.append(kept.mean())
    # Both keep 0.6 of 20,000 elements: each fraction within 6 standard errors (sqrt(0.24 / 20000) = 0.0035).
    assert abs(fractions[0] - 0.6) < 0.021 and abs(fractions[1] - 0.6) < 0.021
    assert not numpy.array_equal(outputs[0] != 0, outputs[1] != 0)        # the libraries draw their own masks


def test_custom_dropout_in_a_model_trains_and_predicts_as_keras_s_in_inference(rng):
    def build(lib):
        _, _, CustomDropout = guide_layers(lib)
        return lib.Sequential([lib.Input((6,)), lib.layers.Dense(8), CustomDropout(0.3),
                               lib.layers.Dense(3, activation="softmax")])
    backend.set_random_seed(3)
    ours, theirs = build(gpu_dl), build(keras)
    theirs.set_weights(ours.get_weights())
    x = rng.standard_normal((9, 6)).astype("float32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    ours.compile("adam", "sparse_categorical_crossentropy")
    history = ours.fit(x, rng.integers(0, 3, 9), epochs=3, verbose=0).history["loss"]
    assert len(history) == 3 and numpy.isfinite(history).all()


def registered_encoder_model(lib):
    """encoder_model with the encoder's classes registered, so a .keras file can name them."""
    Sampling, Encoder, _ = guide_layers(lib)
    register = lib.saving.register_keras_serializable(package="RandomOracle")
    register(Sampling)
    Encoder = register(Encoder)
    return lib.Sequential([lib.Input((6,)), Encoder(), lib.layers.Dense(3, activation="softmax")])


def test_keras_files_of_a_model_holding_a_seed_generator_load_both_ways(tmp_path, rng):
    backend.set_random_seed(5)
    x = rng.standard_normal((5, 6)).astype("float32")
    ours = registered_encoder_model(gpu_dl)
    _quiet_log_variance(ours)
    ours.save(tmp_path / "ours.keras")
    theirs = registered_encoder_model(keras)    # registers Keras's classes of the same names
    with pytest.warns(UserWarning):             # Keras warns about a layer without build() when it loads it
        loaded = keras.models.load_model(tmp_path / "ours.keras")
    numpy.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), ours.predict(x, verbose=0), rtol=1e-6,
                                  atol=1e-6)
    theirs.set_weights(ours.get_weights())
    theirs.save(tmp_path / "theirs.keras")
    back = gpu_dl.models.load_model(tmp_path / "theirs.keras")
    numpy.testing.assert_allclose(back.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    sampling = back.layers[0].sampling
    assert sampling._seed_generators == [sampling.seed_generator]
    assert sampling.seed_generator.state.numpy().tolist()[0] == 1337
