"""use_ema and gradient_accumulation_steps against Keras 3 itself (where Keras is installed): the same variables
and gradients give the same variables, averages, accumulators, slots and iterations over several steps; a small
Dense model fitted with either ends with Keras's weights (finalize_variable_values included); .keras files saved
in the middle of training (in the middle of an accumulation group, too) resume identically in the other."""
import os
import warnings

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers, optimizers  # noqa: E402
from gpu_dl.layers.base import Variable  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402

# ScheduleFreeAdamW's rule as Keras has it on JAX (see the fixture in conftest.py)
pytestmark = pytest.mark.usefixtures("keras_schedule_free_as_on_jax")

SHAPES = [(1,), (3, 17), (33,), (2, 3, 5)]
RULES = [("SGD", {"momentum": 0.9}), ("Adam", {}), ("AdamW", {"weight_decay": 0.1}), ("Muon", {}),
         ("ScheduleFreeAdamW", {"weight_decay": 0.1})]
SETTINGS = [{"use_ema": True, "ema_momentum": 0.9},
            {"use_ema": True, "ema_overwrite_frequency": 3},
            {"gradient_accumulation_steps": 2},
            {"gradient_accumulation_steps": 3, "use_ema": True, "ema_overwrite_frequency": 2, "clipnorm": 1.0}]
CASES = [(name, {**rule, **setting}) for name, rule in RULES for setting in SETTINGS]


def _numpy(x):
    return numpy.asarray(keras.ops.convert_to_numpy(x), dtype=numpy.float64)


def _assert_optimizer_variables_match(ours, theirs, what):
    store = {}
    ours.save_own_variables(store)
    assert len(store) == len(theirs.variables), what
    for i, k in enumerate(theirs.variables):
        numpy.testing.assert_allclose(numpy.asarray(store[str(i)], dtype=float), _numpy(k), rtol=2e-5, atol=2e-6,
                                      err_msg=f"{what}: optimizer variable {i} ({k.path})")
    assert ours.iterations == int(theirs.iterations), what


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{kw}" for n, kw in CASES])
def test_float32_variables_averages_and_accumulators_match_keras(rng, name, kwargs):
    starts = [rng.normal(size=s).astype("float32") for s in SHAPES]
    k_vars = [keras.Variable(w.copy(), dtype="float32") for w in starts]
    variables = [Variable(w.copy(), f"v{i}") for i, w in enumerate(starts)]
    k_opt = getattr(keras.optimizers, name)(learning_rate=0.05, **kwargs)
    opt = getattr(optimizers, name)(learning_rate=0.05, **kwargs)
    for step in range(7):
        grads = [rng.normal(size=s).astype("float32") for s in SHAPES]
        k_opt.apply_gradients([(keras.ops.convert_to_tensor(g), v) for g, v in zip(grads, k_vars)])
        opt.apply_gradients(zip(grads, variables))
        for k, v in zip(k_vars, variables):
            numpy.testing.assert_allclose(v.value, _numpy(k), rtol=2e-5, atol=2e-6, err_msg=f"step {step}")
        _assert_optimizer_variables_match(opt, k_opt, f"step {step}")


def test_a_schedule_with_accumulation_matches_keras(rng):
    def schedule(lib):
        return lib.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)

    k_var = keras.Variable(numpy.ones(5, "float32"))
    var = Variable(numpy.ones(5, "float32"), "v")
    k_opt = keras.optimizers.SGD(schedule(keras), gradient_accumulation_steps=2, weight_decay=0.1)
    opt = optimizers.SGD(schedule(gpu_dl), gradient_accumulation_steps=2, weight_decay=0.1)
    for _ in range(6):
        g = rng.normal(size=5).astype("float32")
        k_opt.apply_gradients([(keras.ops.convert_to_tensor(g), k_var)])
        opt.apply_gradients([(g, var)])
    numpy.testing.assert_allclose(var.value, _numpy(k_var), rtol=1e-6)
    assert opt.iterations == int(k_opt.iterations) == 3


# ------------------------------------------------------------------------------------------------ models
def dense_pair(lib, input_layer):
    return lib.Sequential([input_layer((6,)), lib.layers.Dense(8, activation="tanh"),
                           lib.layers.Dense(3, activation="softmax")])


MODEL_SETTINGS = [("SGD", {"momentum": 0.9, "use_ema": True, "ema_momentum": 0.8}),
                  ("Adam", {"use_ema": True, "ema_overwrite_frequency": 3}),
                  ("AdamW", {"gradient_accumulation_steps": 2}),
                  ("Adam", {"gradient_accumulation_steps": 2, "use_ema": True, "ema_momentum": 0.7}),
                  ("Muon", {"use_ema": True, "ema_momentum": 0.8}),
                  ("ScheduleFreeAdamW", {"gradient_accumulation_steps": 2, "use_ema": True})]


def _pair(seed, name, kwargs):
    gpu_dl.backend.set_random_seed(seed)
    ours, theirs = dense_pair(gpu_dl, layers.Input), dense_pair(keras, keras.Input)
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer=getattr(optimizers, name)(learning_rate=0.05, **kwargs),
                 loss="sparse_categorical_crossentropy")
    theirs.compile(optimizer=getattr(keras.optimizers, name)(learning_rate=0.05, **kwargs),
                   loss="sparse_categorical_crossentropy")
    return ours, theirs


def _assert_same_weights(a, b, what=""):
    for u, w in zip(a.get_weights(), b.get_weights()):
        numpy.testing.assert_allclose(u, w, rtol=2e-4, atol=2e-5, err_msg=what)


@pytest.mark.parametrize("name,kwargs", MODEL_SETTINGS, ids=[f"{n}-{kw}" for n, kw in MODEL_SETTINGS])
def test_dense_model_fit_ends_with_keras_weights(rng, name, kwargs):
    ours, theirs = _pair(7, name, kwargs)
    x = rng.standard_normal((40, 6)).astype("float32")
    y = rng.integers(0, 3, 40)
    ours_history = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    theirs_history = theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    numpy.testing.assert_allclose(ours_history.history["loss"], theirs_history.history["loss"], rtol=2e-5)
    _assert_same_weights(ours, theirs)
    _assert_optimizer_variables_match(ours.optimizer, theirs.optimizer, "after fit")


def _batches(rng, n):
    return [(rng.standard_normal((8, 6)).astype("float32"), rng.integers(0, 3, 8)) for _ in range(n)]


def _train(model, batches):
    for x, y in batches:
        model.train_on_batch(x, y)


SAVE_SETTINGS = [("Adam", {"use_ema": True, "gradient_accumulation_steps": 2}),
                 ("SGD", {"momentum": 0.9, "use_ema": True, "ema_overwrite_frequency": 2}),
                 ("Muon", {"use_ema": True, "gradient_accumulation_steps": 2}),
                 ("ScheduleFreeAdamW", {"use_ema": True, "gradient_accumulation_steps": 2, "warmup_steps": 2})]


@pytest.mark.parametrize("name,kwargs", SAVE_SETTINGS, ids=[f"{n}-{kw}" for n, kw in SAVE_SETTINGS])
def test_keras_file_saved_by_keras_mid_training_resumes_in_gpu_dl(tmp_path, rng, name, kwargs):
    ours, theirs = _pair(11, name, kwargs)
    first, later = _batches(rng, 3), _batches(rng, 3)
    _train(theirs, first)
    theirs.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    assert type(ours.optimizer).__name__ == name
    _assert_optimizer_variables_match(ours.optimizer, theirs.optimizer, "loaded")
    _train(theirs, later)
    _train(ours, later)
    _assert_same_weights(ours, theirs)
    _assert_optimizer_variables_match(ours.optimizer, theirs.optimizer, "resumed")


@pytest.mark.parametrize("name,kwargs", SAVE_SETTINGS, ids=[f"{n}-{kw}" for n, kw in SAVE_SETTINGS])
def test_keras_file_saved_by_gpu_dl_mid_training_resumes_in_keras(tmp_path, rng, name, kwargs):
    ours, _ = _pair(13, name, kwargs)
    first, later = _batches(rng, 3), _batches(rng, 3)
    _train(ours, first)
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    assert type(theirs.optimizer).__name__ == name
    assert theirs.optimizer.use_ema and theirs.optimizer.gradient_accumulation_steps == \
        kwargs.get("gradient_accumulation_steps")
    _assert_optimizer_variables_match(ours.optimizer, theirs.optimizer, "loaded")
    _train(theirs, later)
    _train(ours, later)
    _assert_same_weights(ours, theirs)
    _assert_optimizer_variables_match(ours.optimizer, theirs.optimizer, "resumed")
