"""Keras's top-level scopes: gpu_dl.name_scope (variable paths, against Keras 3), gpu_dl.device (where arrays are
made)."""
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import backend
from gpu_dl.backend import device as device_module
from gpu_dl.layers import scopes as from_scopes

os.environ.setdefault("KERAS_BACKEND", "torch")


def _scoped_paths(lib):
    """The paths of variables made in and out of name scopes, by the same script in ``lib``."""
    with lib.name_scope("foo"):
        built_inside = lib.layers.Dense(2)
        built_inside.build((None, 3))
        named = lib.Variable(numpy.zeros(2, "float32"), name="w")
        with lib.name_scope("bar"):
            unnamed = lib.Variable(numpy.zeros(2, "float32"))
        made_inside = lib.layers.Dense(2)
    made_inside.build((None, 3))            # built outside: the scope it was made in does not count
    made_outside = lib.layers.Dense(2)
    with lib.name_scope("foo"):
        made_outside.build((None, 3))
    with lib.name_scope("outer"):
        sequential = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
        x = lib.Input((3,))
        functional = lib.Model(x, lib.layers.Dense(2)(x))
    paths = [built_inside.kernel.path, named.path, unnamed.path.split("/")[:-1], made_inside.kernel.path,
             made_outside.kernel.path, [w.path for w in sequential.weights], [w.path for w in functional.weights]]
    # the automatic layer names count on from what ran before: compare them without their numbers
    return [_without_numbers(p) for p in paths]


def _without_numbers(path):
    if isinstance(path, list):
        return [_without_numbers(p) for p in path]
    return "/".join(part.rsplit("_", 1)[0] if part.rsplit("_", 1)[-1].isdigit() else part for part in path.split("/"))


def test_name_scope_puts_the_variables_made_inside_under_it():
    paths = _scoped_paths(gpu_dl)
    assert paths == ["foo/dense/kernel", "foo/w", ["foo", "bar"], "dense/kernel", "foo/dense/kernel",
                     ["outer/sequential/dense/kernel", "outer/sequential/dense/bias"],
                     ["outer/dense/kernel", "outer/dense/bias"]]


def test_name_scope_matches_keras():
    keras = pytest.importorskip("keras")
    assert _scoped_paths(gpu_dl) == _scoped_paths(keras)


def test_name_scope_arguments_deduplication_and_errors():
    scope = gpu_dl.name_scope("a")
    assert (scope.name, scope.caller, scope.deduplicate, scope.override_parent) == ("a", None, True, None)
    owner = object()
    with gpu_dl.name_scope("a", caller=owner) as entered:
        assert entered.name == "a"
        with gpu_dl.name_scope("a", caller=owner):           # the same scope again: not opened twice
            assert gpu_dl.Variable(numpy.zeros(1), name="v").path == "a/v"
        with gpu_dl.name_scope("a", caller=owner, deduplicate=False):
            assert gpu_dl.Variable(numpy.zeros(1), name="v").path == "a/a/v"
        with gpu_dl.name_scope("inner", override_parent="top/level"):
            assert gpu_dl.Variable(numpy.zeros(1), name="v").path == "top/level/inner/v"
    assert gpu_dl.Variable(numpy.zeros(1), name="v").path == "v"
    for bad in ("a/b", 3, None):
        with pytest.raises(ValueError, match="must be a string and cannot contain character `/`"):
            gpu_dl.name_scope(bad)
    with pytest.raises(TypeError, match="override_parent"):
        gpu_dl.name_scope("a", override_parent=3)


def test_device_chooses_where_arrays_are_made(xp):
    before = backend.get_device()
    with gpu_dl.device("cpu") as name:
        assert name == "cpu" and backend.xp() is numpy
        layer = gpu_dl.layers.Dense(2)
        layer.build((None, 3))
    assert isinstance(layer.kernel.value, numpy.ndarray) and backend.get_device() == before
    if xp is not numpy:
        for word in ("gpu", "gpu:0", "cuda:0", "CUDA"):
            with gpu_dl.device("cpu"), gpu_dl.device(word) as name:
                assert name == "gpu:0" and backend.xp() is xp
                assert isinstance(backend.to_device(numpy.ones(2)), xp.ndarray)
            assert backend.get_device() == before
        with pytest.raises(ValueError, match="names GPU 99"):
            with gpu_dl.device("gpu:99"):
                pass
        assert backend.get_device() == before


def test_device_refuses_unknown_names_and_a_gpu_without_one(monkeypatch, on_cpu):
    for bad in ("tpu", "gpu:x", "cpu0", ""):
        with pytest.raises(ValueError, match="unknown device name"):
            with gpu_dl.device(bad):
                pass
    with pytest.raises(ValueError, match="Expected a string like 'gpu:0' or 'cpu'"):
        with gpu_dl.device(0):
            pass
    monkeypatch.setattr(device_module, "_probe_cupy", lambda: (None, "CuPy found no CUDA device"))
    with pytest.raises(backend.DeviceUnavailableError, match="device 'gpu' was requested but CuPy found no CUDA"):
        with gpu_dl.device("cuda:0"):
            pass
    assert backend.get_device() == "cpu"
    with pytest.raises(RuntimeError, match="inside"):
        with gpu_dl.device("cpu"):
            raise RuntimeError("inside")
    assert backend.get_device() == "cpu"


def _stateless_run(lib, x):
    """A Dense layer and a BatchNormalization run inside a StatelessScope: what is read and recorded inside, and
    what the variables hold after."""
    dense = lib.layers.Dense(2, kernel_initializer="ones", activity_regularizer="l2")
    dense.build((None, 3))
    norm = lib.layers.BatchNormalization()
    norm.build((None, 2))
    mapping = [(dense.kernel, numpy.full((3, 2), 2.0)), (dense.bias, numpy.zeros(2))]
    numpy_of = lib.ops.convert_to_numpy
    with lib.StatelessScope(mapping, collect_losses=True) as scope:
        y = numpy_of(dense(x))
        dense.kernel.assign_add(numpy.ones((3, 2)))
        inside = (numpy_of(dense.kernel.value), dense.kernel.numpy())
        norm(x[:, :2] * 3, training=True)
        losses = [float(numpy_of(loss)) for loss in scope.losses]
    recorded = [numpy_of(scope.get_current_value(v)) for v in (dense.kernel, norm.moving_mean, norm.moving_variance)]
    after = [v.numpy() for v in (dense.kernel, norm.moving_mean, norm.moving_variance)]
    return y, inside, losses, recorded, after, scope.get_current_value(norm.gamma)


def test_stateless_scope_reads_mapped_values_and_records_updates(xp):
    x = numpy.linspace(-1, 1, 12, dtype="float32").reshape(4, 3)
    y, inside, losses, recorded, after, untouched = _stateless_run(gpu_dl, xp.asarray(x))
    numpy.testing.assert_allclose(y, x @ numpy.full((3, 2), 2.0), rtol=1e-6)
    numpy.testing.assert_array_equal(inside[0], numpy.full((3, 2), 3.0))
    numpy.testing.assert_array_equal(inside[1], numpy.full((3, 2), 3.0))
    numpy.testing.assert_allclose(losses, [0.01 * numpy.sum(y ** 2) / 4], rtol=1e-5)
    numpy.testing.assert_array_equal(recorded[0], numpy.full((3, 2), 3.0))
    numpy.testing.assert_allclose(recorded[1], 0.01 * (x[:, :2] * 3).mean(axis=0), rtol=1e-5)
    numpy.testing.assert_allclose(recorded[2], 0.99 + 0.01 * (x[:, :2] * 3).var(axis=0), rtol=1e-5)
    # nothing was written to the variables themselves
    numpy.testing.assert_array_equal(after[0], numpy.ones((3, 2)))
    numpy.testing.assert_array_equal(after[1], numpy.zeros(2))
    numpy.testing.assert_array_equal(after[2], numpy.ones(2))
    assert untouched is None


def test_stateless_scope_matches_keras():
    keras = pytest.importorskip("keras")
    x = numpy.linspace(-1, 1, 12, dtype="float32").reshape(4, 3)
    ours, theirs = _stateless_run(gpu_dl, x), _stateless_run(keras, x)
    flat = lambda run: [numpy.asarray(a, "float64") for part in run[:5]       # noqa: E731
                        for a in (part if isinstance(part, (list, tuple)) else [part])]
    for got, want in zip(flat(ours), flat(theirs), strict=True):
        numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert ours[5] is None and theirs[5] is None


def test_stateless_scope_keeps_the_callers_arrays_and_nests():
    variable = gpu_dl.Variable(numpy.zeros(3, "float32"), name="v")
    given = numpy.ones(3, "float32")
    generator = gpu_dl.random.SeedGenerator(7)
    state = generator.state.numpy()
    with gpu_dl.StatelessScope([(variable, given)]) as outer:
        variable.assign_add(numpy.ones(3))
        generator.next()
        with gpu_dl.StatelessScope() as inner:
            assert from_scopes.get_stateless_scope() is inner
            numpy.testing.assert_array_equal(variable.numpy(), numpy.zeros(3))     # no mapping in the inner one
        assert from_scopes.get_stateless_scope() is outer
    assert not from_scopes.in_stateless_scope()
    numpy.testing.assert_array_equal(given, numpy.ones(3))              # the mapping was copied
    numpy.testing.assert_array_equal(outer.get_current_value(variable), numpy.full(3, 2.0))
    numpy.testing.assert_array_equal(variable.numpy(), numpy.zeros(3))
    numpy.testing.assert_array_equal(generator.state.numpy(), state)    # the draw moved the scope's state only
    assert outer.get_current_value(generator.state)[1] == state[1] + 1


def test_stateless_scope_refuses_bad_mappings():
    variable = gpu_dl.Variable(numpy.zeros(2, "float32"), name="v")
    with pytest.raises(ValueError, match="all keys in argument `mapping` must be Variable instances"):
        gpu_dl.StatelessScope([(3, numpy.ones(2))])
    with pytest.raises(ValueError, match=r"must be tensors with a shape that matches.*shape \(3,\)"):
        gpu_dl.StatelessScope([(variable, numpy.ones(3))])
    with pytest.raises(ValueError, match=r"list of \(variable, value\) pairs"):
        gpu_dl.StatelessScope([variable])


def test_symbolic_scope_marks_the_symbolic_stage():
    assert not from_scopes.in_symbolic_scope()
    with gpu_dl.SymbolicScope() as scope:
        assert from_scopes.in_symbolic_scope() and from_scopes.get_symbolic_scope() is scope
    assert from_scopes.get_symbolic_scope() is None


def _stateless_call(lib, x):
    lib.utils.set_random_seed(1)
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(4, kernel_regularizer="l2"),
                            lib.layers.BatchNormalization(), lib.layers.Dense(2)])
    trainable = [numpy.full(w.shape, 0.5, "float32") for w in model.trainable_weights]
    non_trainable = [numpy.full(w.shape, 0.25, "float32") for w in model.non_trainable_weights]
    before = [w.numpy() for w in model.weights]
    out, values, losses = model.stateless_call(trainable, non_trainable, x, training=True, return_losses=True)
    numpy_of = lib.ops.convert_to_numpy
    for w, b in zip(model.weights, before, strict=True):
        numpy.testing.assert_array_equal(w.numpy(), b)         # nothing written
    with pytest.raises(ValueError, match="must be a list of tensors corresponding 1:1 to Sequential"):
        model.stateless_call(trainable[:1], non_trainable, x)
    return numpy_of(out), [numpy_of(v) for v in values], [float(numpy_of(loss)) for loss in losses]


def test_stateless_call_runs_the_layer_on_the_given_values(xp):
    x = numpy.linspace(-1, 1, 15, dtype="float32").reshape(5, 3)
    out, values, losses = _stateless_call(gpu_dl, xp.asarray(x))
    h = x @ numpy.full((3, 4), 0.5) + 0.5
    mean, variance = h.mean(axis=0), h.var(axis=0)
    normalized = (h - mean) / numpy.sqrt(variance + 1e-3) * 0.5 + 0.5
    numpy.testing.assert_allclose(out, normalized @ numpy.full((4, 2), 0.5) + 0.5, rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(values[0], 0.25 * 0.99 + 0.01 * mean, rtol=1e-6)
    numpy.testing.assert_allclose(values[1], 0.25 * 0.99 + 0.01 * variance, rtol=1e-6)
    numpy.testing.assert_allclose(losses, [0.01 * 12 * 0.25], rtol=1e-6)
    unbuilt = gpu_dl.layers.Dense(2)
    with pytest.raises(ValueError, match="To call stateless_call, Dense must be built"):
        unbuilt.stateless_call([], [], x)


def test_stateless_call_matches_keras():
    keras = pytest.importorskip("keras")
    x = numpy.linspace(-1, 1, 15, dtype="float32").reshape(5, 3)
    ours, theirs = _stateless_call(gpu_dl, x), _stateless_call(keras, x)
    numpy.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(ours[1], theirs[1], strict=True):
        numpy.testing.assert_allclose(a, b, rtol=1e-6)
    numpy.testing.assert_allclose(ours[2], theirs[2], rtol=1e-6)
