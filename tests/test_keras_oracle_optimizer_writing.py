"""An optimizer written Keras's way (``build`` with ``add_optimizer_variables``/``add_variable_from_reference``,
``update_step`` with the ops and ``assign``/``assign_add``/``assign_sub``), the same code in gpu_dl and in Keras 3
itself (where Keras is installed): the same variables after several steps in float64 with the base class's
clipping, loss scaling, weight decay and averages, the same optimizer variables and paths, and files of a model
compiled with it (.keras and .weights.h5) written by one read by the other, with the same contents."""
import os
import warnings

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

import gpu_dl  # noqa: E402
from gpu_dl.layers.base import Variable  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
import optimizer_writing_classes  # noqa: E402

SHAPES = [(1,), (3, 17), (33,), (2, 3, 5)]


OURS, THEIRS = optimizer_writing_classes.OURS, optimizer_writing_classes.optimizer_classes(keras)

# Keras's torch backend rounds some Python floats to float32 before it computes with float64 variables: the
# weight decay's (1 - wd * lr), clipnorm's maximum(norm, 0.7) and the averages' momentum (ops.multiply(flag,
# 0.9)); those cases match to that rounding, the others to float64 rounding
CASES = [("MomentumSGD", {"learning_rate": 0.1, "momentum": 0.5}, 1e-10),
         ("MomentumSGD", {"learning_rate": 0.1, "clipnorm": 0.7, "loss_scale_factor": 8.0, "use_ema": True,
                          "ema_momentum": 0.9}, 1e-6),
         ("MomentumSGD", {"learning_rate": 0.1, "loss_scale_factor": 8.0}, 1e-10),
         ("MomentumSGD", {"learning_rate": 0.1, "use_ema": True, "ema_momentum": 0.9}, 1e-6),
         ("MomentumSGD", {"learning_rate": 0.05, "weight_decay": 0.2, "global_clipnorm": 1.5}, 1e-6),
         ("MomentumSGD", {"learning_rate": 0.05, "gradient_accumulation_steps": 2, "clipvalue": 0.5}, 1e-10),
         ("ScaledRms", {"learning_rate": 0.01}, 1e-10),
         ("ScaledRms", {"learning_rate": 0.01, "use_ema": True, "ema_overwrite_frequency": 3}, 1e-6)]


def _assert_same_store(opt, k_opt, rtol, atol):
    """What the two optimizers' save_own_variables write: the same keys and values."""
    store, k_store = {}, {}
    opt.save_own_variables(store)
    k_opt.save_own_variables(k_store)
    assert sorted(store) == sorted(k_store)
    for key in k_store:
        numpy.testing.assert_allclose(numpy.asarray(store[key], dtype=float), numpy.asarray(k_store[key], dtype=float),
                                      rtol=rtol, atol=atol, err_msg=key)


@pytest.mark.parametrize("name,kwargs,rtol", CASES, ids=[f"{n}-{kw}" for n, kw, _ in CASES])
def test_float64_steps_variables_and_paths_match_keras(rng, name, kwargs, rtol):
    starts = [rng.normal(size=s) for s in SHAPES]
    grad_steps = [[rng.normal(size=s) for s in SHAPES] for _ in range(6)]
    k_vars = [keras.Variable(w.copy(), dtype="float64", name=f"v{i}") for i, w in enumerate(starts)]
    variables = [Variable(w.copy(), f"v{i}") for i, w in enumerate(starts)]
    k_opt, opt = THEIRS[name](**kwargs), OURS[name](**kwargs)
    for step, grads in enumerate(grad_steps):
        if step % 2:
            k_opt.apply_gradients([(keras.ops.convert_to_tensor(g), v) for g, v in zip(grads, k_vars)])
            opt.apply_gradients(zip(grads, variables))
        else:
            k_opt.apply([keras.ops.convert_to_tensor(g) for g in grads], k_vars)
            opt.apply(grads, variables)
    for k, v in zip(k_vars, variables):
        assert v.value.dtype == numpy.float64
        numpy.testing.assert_allclose(v.value, keras.ops.convert_to_numpy(k), rtol=rtol, atol=rtol)
    assert int(opt.iterations) == int(keras.ops.convert_to_numpy(k_opt.iterations))
    theirs = k_opt.variables      # Keras's iteration and learning_rate, then what build made
    assert [v.path for v in opt.variables] == [v.path for v in theirs]
    assert [v.name for v in opt.variables] == [v.name for v in theirs]
    for ours_v, k in zip(opt.variables, theirs):
        assert ours_v.dtype == keras.ops.convert_to_numpy(k).dtype, k.path
        numpy.testing.assert_allclose(ours_v.numpy(), keras.ops.convert_to_numpy(k), rtol=rtol, atol=rtol,
                                      err_msg=k.path)
    _assert_same_store(opt, k_opt, rtol, rtol)


def test_stateless_apply_matches_keras(rng):
    starts = [rng.normal(size=s).astype("float32") for s in SHAPES]
    grads = [rng.normal(size=s).astype("float32") for s in SHAPES]
    k_vars = [keras.Variable(w.copy(), name=f"v{i}") for i, w in enumerate(starts)]
    variables = [Variable(w.copy(), f"v{i}") for i, w in enumerate(starts)]
    k_opt, opt = keras.optimizers.Adam(0.01), gpu_dl.optimizers.Adam(0.01)
    k_opt.apply_gradients([(keras.ops.convert_to_tensor(g), v) for g, v in zip(grads, k_vars)])
    opt.apply_gradients(zip(grads, variables))
    def copies(values):     # Keras's torch optimizers update the tensors given in place
        return [keras.ops.convert_to_tensor(keras.ops.convert_to_numpy(v)) for v in values]

    k_new_vars, k_new_opt = k_opt.stateless_apply(copies(k_opt.variables), copies(grads), copies(k_vars))
    store = {}
    opt.save_own_variables(store)
    new_vars, new_opt = opt.stateless_apply([store[str(i)] for i in range(len(store))], grads,
                                            [v.value for v in variables])
    for a, k in zip(new_vars + new_opt, list(k_new_vars) + list(k_new_opt)):
        numpy.testing.assert_allclose(numpy.asarray(a, dtype=float), keras.ops.convert_to_numpy(k).astype(float),
                                      rtol=2e-6, atol=2e-7)
    for v, k in zip(variables, k_vars):    # the variables are as they were
        numpy.testing.assert_allclose(v.numpy(), keras.ops.convert_to_numpy(k), rtol=2e-6, atol=2e-7)
    assert int(opt.iterations) == int(keras.ops.convert_to_numpy(k_opt.iterations)) == 1
    assert [numpy.asarray(a).dtype for a in new_opt] == [keras.ops.convert_to_numpy(k).dtype for k in k_new_opt]


def dense_pair(lib):
    return lib.Sequential([lib.Input((6,)), lib.layers.Dense(8, activation="tanh", name="d1"),
                           lib.layers.Dense(3, name="d2")], name="writing_oracle")


def _batches(rng, n):
    return [(rng.standard_normal((8, 6)).astype("float32"), rng.standard_normal((8, 3)).astype("float32"))
            for _ in range(n)]


def _train(model, batches):
    for x, y in batches:
        model.train_on_batch(x, y)


def _assert_same_state(ours, theirs, rtol=2e-5, atol=2e-6, same_paths=True):
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    assert int(ours.optimizer.iterations) == int(keras.ops.convert_to_numpy(theirs.optimizer.iterations))
    k_slots = theirs.optimizer.variables
    if same_paths:
        assert [v.path for v in ours.optimizer.variables] == [v.path for v in k_slots]
    else:
        # a model made from a file has its layers' paths without the model's name (in either library)
        for model, slots in ((ours, ours.optimizer.variables[2:]), (theirs, k_slots[2:])):     # after the count, rate
            kinds = [v.name.rsplit("_", 1)[-1] for v in slots]
            assert [v.path for v in slots] == [f"{model.optimizer.name}/{w.path.replace('/', '_')}_{kind}"
                                               for w, kind in zip(model.trainable_weights, kinds)] + \
                [v.path for v in slots[len(model.trainable_weights):]]
    for v, k in zip(ours.optimizer.variables, k_slots):
        numpy.testing.assert_allclose(v.numpy(), keras.ops.convert_to_numpy(k), rtol=rtol, atol=atol, err_msg=k.path)


@pytest.mark.parametrize("name", ["MomentumSGD", "ScaledRms"])
def test_training_steps_of_a_model_match_keras(rng, name):
    gpu_dl.backend.set_random_seed(4)
    ours, theirs = dense_pair(gpu_dl), dense_pair(keras)
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer=OURS[name](learning_rate=0.05, use_ema=True), loss="mse")
    theirs.compile(optimizer=THEIRS[name](learning_rate=0.05, use_ema=True), loss="mse")
    for x, y in _batches(rng, 4):
        assert ours.train_on_batch(x, y) == pytest.approx(float(theirs.train_on_batch(x, y)), rel=2e-5, abs=1e-6)
    _assert_same_state(ours, theirs)


@pytest.mark.parametrize("name", ["MomentumSGD", "ScaledRms"])
def test_keras_file_saved_by_keras_resumes_in_gpu_dl(tmp_path, rng, name):
    theirs = dense_pair(keras)
    theirs.compile(optimizer=THEIRS[name](learning_rate=0.05), loss="mse")
    first, later = _batches(rng, 3), _batches(rng, 3)
    _train(theirs, first)
    theirs.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    assert type(ours.optimizer) is OURS[name] and int(ours.optimizer.iterations) == 3
    _assert_same_state(ours, theirs, rtol=0, atol=0, same_paths=False)
    _train(theirs, later)
    _train(ours, later)
    _assert_same_state(ours, theirs, same_paths=False)


@pytest.mark.parametrize("name", ["MomentumSGD", "ScaledRms"])
def test_keras_file_saved_by_gpu_dl_resumes_in_keras(tmp_path, rng, name):
    gpu_dl.backend.set_random_seed(5)
    ours = dense_pair(gpu_dl)
    ours.compile(optimizer=OURS[name](learning_rate=0.05), loss="mse")
    first, later = _batches(rng, 3), _batches(rng, 3)
    _train(ours, first)
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    assert type(theirs.optimizer) is THEIRS[name]
    _assert_same_state(ours, theirs, rtol=0, atol=0, same_paths=False)
    _train(theirs, later)
    _train(ours, later)
    _assert_same_state(ours, theirs, same_paths=False)


def _datasets(path):
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda key, item: found.__setitem__(key, item[()]) if isinstance(item, h5py.Dataset) else None)
    return found


@pytest.mark.parametrize("name", ["MomentumSGD", "ScaledRms"])
def test_weights_files_have_keras_contents_and_load_both_ways(tmp_path, rng, name):
    gpu_dl.backend.set_random_seed(6)
    ours, theirs = dense_pair(gpu_dl), dense_pair(keras)
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer=OURS[name](learning_rate=0.05, use_ema=True), loss="mse")
    theirs.compile(optimizer=THEIRS[name](learning_rate=0.05, use_ema=True), loss="mse")
    batches = _batches(rng, 3)
    _train(ours, batches)
    _train(theirs, batches)
    ours.save_weights(tmp_path / "g.weights.h5")
    theirs.save_weights(tmp_path / "k.weights.h5")
    written, expected = _datasets(tmp_path / "g.weights.h5"), _datasets(tmp_path / "k.weights.h5")
    assert sorted(written) == sorted(expected)
    assert any(key.startswith("optimizer/vars/") for key in expected)
    for key, value in expected.items():
        assert written[key].dtype == value.dtype and written[key].shape == value.shape, key
        numpy.testing.assert_allclose(written[key], value, rtol=2e-5, atol=2e-6, err_msg=key)
    # each reads the other's file into a model that has trained with a fresh optimizer of the same kind
    ours_again, theirs_again = dense_pair(gpu_dl), dense_pair(keras)
    ours_again.compile(optimizer=OURS[name](learning_rate=0.05, use_ema=True), loss="mse")
    theirs_again.compile(optimizer=THEIRS[name](learning_rate=0.05, use_ema=True), loss="mse")
    _train(ours_again, batches[:1])
    _train(theirs_again, batches[:1])
    ours_again.load_weights(tmp_path / "k.weights.h5")
    theirs_again.load_weights(tmp_path / "g.weights.h5")
    _assert_same_state(ours_again, theirs, rtol=0, atol=0)
    _assert_same_state(ours, theirs_again, rtol=0, atol=0)


def counting(lib, name):
    class Counting(getattr(lib.optimizers, name)):
        def update_step(self, gradient, variable, learning_rate):
            self.calls = getattr(self, "calls", 0) + 1
            super().update_step(gradient, variable, learning_rate)
    return Counting


@pytest.mark.parametrize("name,kwargs", [("Adam", {"amsgrad": True, "gradient_accumulation_steps": 2}),
                                         ("Nadam", {"use_ema": True})], ids=["Adam", "Nadam"])
def test_builtin_rule_under_an_update_step_of_its_own_matches_keras(rng, name, kwargs):
    starts = [rng.normal(size=s).astype("float32") for s in SHAPES]
    k_vars = [keras.Variable(w.copy(), name=f"v{i}") for i, w in enumerate(starts)]
    variables = [Variable(w.copy(), f"v{i}") for i, w in enumerate(starts)]
    k_opt = counting(keras, name)(learning_rate=0.01, name="counting", **kwargs)
    opt = counting(gpu_dl, name)(learning_rate=0.01, name="counting", **kwargs)
    for _ in range(4):
        grads = [rng.normal(size=s).astype("float32") for s in SHAPES]
        k_opt.apply_gradients([(keras.ops.convert_to_tensor(g), v) for g, v in zip(grads, k_vars)])
        opt.apply_gradients(zip(grads, variables))
    assert opt.calls == k_opt.calls == (8 if kwargs.get("gradient_accumulation_steps") else 16)
    for k, v in zip(k_vars, variables):
        numpy.testing.assert_allclose(v.numpy(), keras.ops.convert_to_numpy(k), rtol=2e-6, atol=2e-7)
    # Keras's Nadam lists its momentum product after the slots; gpu_dl keeps it as a scalar, stored last alike
    assert [v.path for v in opt.variables] == [v.path for v in k_opt.variables[:len(opt.variables)]]
    _assert_same_store(opt, k_opt, 2e-6, 2e-7)


@pytest.mark.parametrize("name", ["SGD", "Adam", "Nadam", "Adafactor", "Lion"])
def test_builtin_optimizers_have_keras_public_attributes(name):
    theirs = {n for n in dir(getattr(keras.optimizers, name)()) if not n.startswith("_")}
    ours = set(dir(getattr(gpu_dl.optimizers, name)()))
    assert sorted(theirs - ours) == []
