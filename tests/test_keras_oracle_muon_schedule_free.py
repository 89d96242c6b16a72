"""Muon and ScheduleFreeAdamW against Keras 3 itself (where Keras is installed): the same variables and gradients
give the same variables and optimizer variables (names, shapes, order, values) over several steps in float32 and
float64; embedding and convolution models take the same training steps (Muon gives their tables and kernels the
AdamW step); configs equal Keras's. The Dense model steps and the .keras files that resume in the other library
are test_keras_oracle_optimizers.py's, for every optimizer there."""
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
from keras_steps import assert_training_steps_match  # noqa: E402

pytestmark = pytest.mark.usefixtures("keras_schedule_free_as_on_jax")

# Keras names a free variable's path after its name; the gpu_dl twins take the same path.
SHAPES = [(1,), (3, 17), (17, 3), (33,), (2, 3, 5), (5, 5), (3, 3, 2, 4), (), (4, 6)]
NAMES = ["bias", "kernel", "tall_kernel", "vector", "rank3", "token_embedding", "conv_kernel", "scalar", "head"]
CASES = [("Muon", {}),
         ("Muon", {"nesterov": False, "rms_rate": None, "ns_steps": 3, "adam_lr_ratio": 0.1, "weight_decay": 0.1,
                   "adam_weight_decay": 0.01, "exclude_layers": ["^head$", "tall"], "exclude_embeddings": False}),
         ("Muon", {"clipnorm": 1.0, "momentum": 0.8, "muon_a": 2.0, "muon_b": -1.5, "muon_c": 0.5}),
         ("Muon", {"global_clipnorm": 2.0, "adam_beta_1": 0.8, "adam_beta_2": 0.99, "epsilon": 1e-3}),
         ("ScheduleFreeAdamW", {}),
         ("ScheduleFreeAdamW", {"warmup_steps": 3, "weight_decay": 0.1, "beta_1": 0.5, "beta_2": 0.99}),
         ("ScheduleFreeAdamW", {"clipvalue": 0.5, "epsilon": 1e-3, "warmup_steps": 10})]
IDS = [f"{n}-{kw}" for n, kw in CASES]


def _numpy(x):
    return numpy.asarray(keras.ops.convert_to_numpy(x), dtype=numpy.float64)


def _run_both(rng, name, kwargs, dtype, steps=5):
    starts = [numpy.asarray(rng.normal(size=s)).astype(dtype) for s in SHAPES]
    k_vars = [keras.Variable(w.copy(), dtype=dtype, name=n) for w, n in zip(starts, NAMES)]
    variables = [Variable(w.copy(), n, path=k.path) for w, n, k in zip(starts, NAMES, k_vars)]
    k_opt = getattr(keras.optimizers, name)(learning_rate=0.05, **kwargs)
    opt = getattr(optimizers, name)(learning_rate=0.05, **kwargs)
    for _ in range(steps):
        grads = [numpy.asarray(rng.normal(size=s)).astype(dtype) for s in SHAPES]
        k_opt.apply_gradients([(keras.ops.convert_to_tensor(g), v) for g, v in zip(grads, k_vars)])
        opt.apply_gradients(zip(grads, variables))
    return k_vars, variables, k_opt, opt


def _assert_optimizer_variables_match(opt, k_opt, variables, rtol, atol):
    """Same count, and each Keras variable ``{optimizer}/{variable}_{slot}`` is gpu_dl's slot at that index."""
    store = {}
    opt.save_own_variables(store)
    assert len(store) == len(k_opt.variables)
    assert [v.path.split("/")[-1] for v in k_opt.variables[:2]] == ["iteration", "learning_rate"]
    by_name = {v.name: v for v in variables}
    for i, k in enumerate(k_opt.variables[2:]):
        var_name, slot = k.path.split("/")[-1].rsplit("_", 1)
        assert opt.variables[i + 2].value is opt.get_slot(by_name[var_name], slot), k.path
        assert opt.variables[i + 2].name == k.name
        assert tuple(store[str(i + 2)].shape) == tuple(k.shape), k.path
        numpy.testing.assert_allclose(numpy.asarray(store[str(i + 2)], dtype=float), _numpy(k), rtol=rtol, atol=atol,
                                      err_msg=k.path)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_float32_variables_and_optimizer_variables_match_keras_over_steps(rng, name, kwargs):
    k_vars, variables, k_opt, opt = _run_both(rng, name, kwargs, "float32")
    for k, v in zip(k_vars, variables):
        assert v.value.dtype == numpy.float32
        numpy.testing.assert_allclose(v.value, _numpy(k), rtol=2e-6, atol=2e-7, err_msg=v.path)
    _assert_optimizer_variables_match(opt, k_opt, variables, rtol=2e-6, atol=2e-7)
    assert opt.iterations == int(k_opt.iterations) == 5


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_float64_variables_match_keras_over_steps(rng, name, kwargs):
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        k_vars, variables, k_opt, opt = _run_both(rng, name, kwargs, "float64")
    finally:
        keras.config.set_floatx(previous)
    # Muon normalises each matrix by its norm in float32 (as Keras does), summed in torch's order there and
    # NumPy's here; Keras's torch backend computes the clipping factor in float32.
    clipped = any(k in kwargs for k in ("clipnorm", "global_clipnorm"))
    rtol, atol = (1e-5, 1e-8) if clipped else (1e-6, 1e-9) if name == "Muon" else (1e-12, 1e-13)
    for k, v in zip(k_vars, variables):
        assert v.value.dtype == numpy.float64
        numpy.testing.assert_allclose(v.value, _numpy(k), rtol=rtol, atol=atol, err_msg=v.path)
    _assert_optimizer_variables_match(opt, k_opt, variables, rtol=max(rtol, 1e-7), atol=atol)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_config_equals_keras(name, kwargs):
    ours = getattr(optimizers, name)(learning_rate=0.5, name="opt", **kwargs).get_config()
    theirs = getattr(keras.optimizers, name)(learning_rate=0.5, name="opt", **kwargs).get_config()
    assert ours == theirs
    again = getattr(optimizers, name).from_config(theirs)
    assert again.get_config() == ours
    assert type(keras.optimizers.deserialize(optimizers.serialize(again))).__name__ == name


# --------------------------------------------------------------------------- models
def embedding_pair(lib, input_layer):
    return lib.Sequential([input_layer((5,)), lib.layers.Embedding(11, 4), lib.layers.GlobalAveragePooling1D(),
                           lib.layers.Dense(6, activation="relu"), lib.layers.Dense(3, activation="softmax")])


def conv_pair(lib, input_layer):
    return lib.Sequential([input_layer((7, 6, 2)), lib.layers.Conv2D(3, 3, activation="relu"),
                           lib.layers.Flatten(), lib.layers.Dense(3, activation="softmax")])


@pytest.mark.parametrize("name", ["Muon", "ScheduleFreeAdamW"])
def test_embedding_and_conv_models_take_keras_training_steps(rng, name):
    """Muon's embedding table (a matrix) and conv kernel (rank 4) take the AdamW step, as in Keras."""
    gpu_dl.backend.set_random_seed(4)
    ours, theirs = embedding_pair(gpu_dl, layers.Input), embedding_pair(keras, keras.Input)
    assert_training_steps_match(keras, ours, theirs, rng, (5,), classes=3, batch=8, steps=4, optimizer=name,
                                inputs=lambda r, b: r.integers(0, 11, (b, 5)))
    if name == "Muon":
        assert [ours.optimizer.uses_adamw(v) for v in ours.trainable_weights] == [True, False, True, False, True]
        assert len(ours.optimizer.variables) == len(theirs.optimizer.variables) == 10
    ours, theirs = conv_pair(gpu_dl, layers.Input), conv_pair(keras, keras.Input)
    assert_training_steps_match(keras, ours, theirs, rng, (7, 6, 2), classes=3, batch=4, steps=4, optimizer=name)
