"""Lion, Lamb, Ftrl and Adafactor against Keras 3 itself (where Keras is installed): the same variables and gradients
give the same variables and slots over several steps in float32; with Muon and ScheduleFreeAdamW too
(test_keras_oracle_muon_schedule_free.py checks their steps), a small Dense model takes the same training steps,
and a .keras file saved in the middle of training by either resumes in the other, slots included."""
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
from keras_steps import assert_training_steps_match  # noqa: E402

SHAPES = [(1,), (3, 17), (33,), (2, 3, 5)]
NEW = [("Lion", {}), ("Lion", {"beta_1": 0.5, "beta_2": 0.9, "weight_decay": 0.1}),
       ("Lamb", {}), ("Lamb", {"beta_1": 0.8, "epsilon": 1e-3, "clipnorm": 1.0}),
       ("Ftrl", {}), ("Ftrl", {"l1_regularization_strength": 0.01, "l2_regularization_strength": 0.1,
                               "l2_shrinkage_regularization_strength": 0.05, "beta": 0.3}),
       ("Adafactor", {}), ("Adafactor", {"relative_step": False, "clip_threshold": 0.1})]
NAMES = sorted({name for name, _ in NEW}) + ["Muon", "ScheduleFreeAdamW"]

# ScheduleFreeAdamW's rule as Keras has it on JAX (see the fixture in conftest.py)
pytestmark = pytest.mark.usefixtures("keras_schedule_free_as_on_jax")


@pytest.mark.parametrize("name,kwargs", NEW, ids=[f"{n}-{kw}" for n, kw in NEW])
def test_float32_variables_and_slots_match_keras_over_steps(rng, name, kwargs):
    starts = [rng.normal(size=s).astype("float32") for s in SHAPES]
    grad_steps = [[rng.normal(size=s).astype("float32") for s in SHAPES] for _ in range(5)]
    k_vars = [keras.Variable(w.copy(), dtype="float32") for w in starts]
    k_opt = getattr(keras.optimizers, name)(learning_rate=0.01, **kwargs)
    variables = [Variable(w.copy(), f"v{i}") for i, w in enumerate(starts)]
    opt = getattr(optimizers, name)(learning_rate=0.01, **kwargs)
    for grads in grad_steps:
        k_opt.apply_gradients([(keras.ops.convert_to_tensor(g), v) for g, v in zip(grads, k_vars)])
        opt.apply_gradients(zip(grads, variables))
    for k, v in zip(k_vars, variables):
        assert v.value.dtype == numpy.float32
        numpy.testing.assert_allclose(v.value, keras.ops.convert_to_numpy(k), rtol=2e-6, atol=2e-7)
    store = {}
    opt.save_own_variables(store)
    theirs = [keras.ops.convert_to_numpy(v) for v in k_opt.variables]
    assert len(store) == len(theirs)
    for i, k in enumerate(theirs):
        numpy.testing.assert_allclose(numpy.asarray(store[str(i)], dtype=float), numpy.asarray(k, dtype=float),
                                      rtol=2e-6, atol=2e-7, err_msg=f"{name} optimizer variable {i}")


def dense_pair(lib, input_layer):
    return lib.Sequential([input_layer((6,)), lib.layers.Dense(8, activation="tanh"),
                           lib.layers.Dense(3, activation="softmax")])


@pytest.mark.parametrize("name", NAMES)
def test_dense_model_takes_keras_training_steps(rng, name):
    gpu_dl.backend.set_random_seed(3)
    ours, theirs = dense_pair(gpu_dl, layers.Input), dense_pair(keras, keras.Input)
    assert_training_steps_match(keras, ours, theirs, rng, (6,), classes=3, batch=8, steps=5, optimizer=name)


def _batches(rng, n):
    return [(rng.standard_normal((8, 6)).astype("float32"), rng.integers(0, 3, 8)) for _ in range(n)]


def _train(model, batches):
    for x, y in batches:
        model.train_on_batch(x, y)


def _assert_same_weights(a, b):
    for u, w in zip(a.get_weights(), b.get_weights()):
        numpy.testing.assert_allclose(u, w, rtol=2e-4, atol=2e-5)


def _assert_same_slots(ours, theirs):
    assert len(ours.optimizer.variables) == len(theirs.optimizer.variables)
    for slot, k in zip(ours.optimizer.variables, theirs.optimizer.variables):
        numpy.testing.assert_allclose(slot.numpy(), keras.ops.convert_to_numpy(k), rtol=2e-4,
                                      atol=2e-5, err_msg=k.path)


@pytest.mark.parametrize("name", NAMES)
def test_keras_file_saved_by_keras_mid_training_resumes_in_gpu_dl(tmp_path, rng, name):
    theirs = dense_pair(keras, keras.Input)
    theirs.compile(optimizer=getattr(keras.optimizers, name)(), loss="sparse_categorical_crossentropy")
    first, later = _batches(rng, 3), _batches(rng, 3)
    _train(theirs, first)
    theirs.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    assert type(ours.optimizer).__name__ == name and ours.optimizer.iterations == 3
    assert len(ours.optimizer.variables) == len(theirs.optimizer.variables)
    for slot, k in zip(ours.optimizer.variables, theirs.optimizer.variables):
        numpy.testing.assert_array_equal(slot.numpy(), keras.ops.convert_to_numpy(k))
    _train(theirs, later)
    _train(ours, later)
    assert ours.optimizer.iterations == int(theirs.optimizer.iterations) == 6
    _assert_same_weights(ours, theirs)
    _assert_same_slots(ours, theirs)


@pytest.mark.parametrize("name", NAMES)
def test_keras_file_saved_by_gpu_dl_mid_training_resumes_in_keras(tmp_path, rng, name):
    gpu_dl.backend.set_random_seed(5)
    ours = dense_pair(gpu_dl, layers.Input)
    ours.compile(optimizer=name.lower(), loss="sparse_categorical_crossentropy")
    first, later = _batches(rng, 3), _batches(rng, 3)
    _train(ours, first)
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    assert type(theirs.optimizer).__name__ == name and int(theirs.optimizer.iterations) == 3
    _assert_same_slots(ours, theirs)
    _train(theirs, later)
    _train(ours, later)
    assert ours.optimizer.iterations == int(theirs.optimizer.iterations) == 6
    _assert_same_weights(ours, theirs)
    _assert_same_slots(ours, theirs)
