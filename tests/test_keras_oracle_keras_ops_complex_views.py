"""gpu_dl.ops's ``polar``, ``view_as_complex`` and ``view_as_real`` against keras.ops (where Keras is installed):
values, dtypes and shapes on arrays; the operations functional models record, and their files loaded both ways;
and the namespaces ``gpu_dl.ops`` and ``gpu_dl.ops.numpy`` hold every name of Keras's."""
import inspect
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402


def _numpy(value):
    return keras.ops.convert_to_numpy(value)


def _calls(rng):
    r, theta = rng.uniform(0.5, 2.0, (3, 4)).astype("float32"), rng.uniform(-3, 3, (4,)).astype("float32")
    pairs = rng.standard_normal((2, 3, 2))
    return [
        lambda ops: ops.polar(r, theta),
        lambda ops: ops.polar(r.astype("float64"), theta.astype("float64")),
        lambda ops: ops.view_as_complex(pairs.astype("float32")),
        lambda ops: ops.view_as_complex(pairs),
        lambda ops: ops.view_as_real(ops.polar(r, theta)),
        lambda ops: ops.view_as_real(pairs[..., 0] + 1j * pairs[..., 1]),
        lambda ops: ops.view_as_real(ops.view_as_complex(pairs)),
    ]


def test_same_values_dtypes_and_shapes_as_keras_on_arrays(rng):
    for i, call in enumerate(_calls(rng)):
        ours, theirs = call(gpu_dl.ops), _numpy(call(keras.ops))
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, i
        numpy.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6, err_msg=str(i))


def _model(lib):
    r, theta = lib.Input((5,), name="r"), lib.Input((5,), name="theta")
    pairs = lib.Input((5, 2), name="pairs")
    outputs = [lib.ops.view_as_real(lib.ops.polar(r, theta)), lib.ops.view_as_real(lib.ops.view_as_complex(pairs))]
    return lib.Model([r, theta, pairs], outputs)


def _operations(model):
    return sorted((e["module"], e["class_name"]) for e in model.get_config()["layers"]
                  if e["module"].startswith("keras.src.ops"))


def test_functional_models_hold_keras_s_operations_and_files_load_both_ways(rng, tmp_path):
    ours, theirs = _model(gpu_dl), _model(keras)
    assert _operations(ours) == _operations(theirs) == [
        ("keras.src.ops.math", "ViewAsComplex"), ("keras.src.ops.math", "ViewAsReal"),
        ("keras.src.ops.math", "ViewAsReal"), ("keras.src.ops.nn", "Polar")]
    assert [tuple(t.shape) for t in ours.outputs] == [tuple(t.shape) for t in theirs.outputs]
    assert [t.dtype for t in ours.outputs] == [t.dtype for t in theirs.outputs] == ["float32", "float32"]
    arrays = [rng.uniform(0.5, 2, (2, 5)).astype("float32"), rng.uniform(-3, 3, (2, 5)).astype("float32"),
              rng.standard_normal((2, 5, 2)).astype("float32")]
    want = [_numpy(t) for t in theirs(arrays)]
    for a, b in zip(ours.forward(arrays), want):
        numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    theirs.save(tmp_path / "k.keras")
    for a, b in zip(load_model(tmp_path / "k.keras").forward(arrays), want):
        numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    ours.save(tmp_path / "g.keras")
    for a, b in zip(keras.models.load_model(tmp_path / "g.keras")(arrays), ours.forward(arrays)):
        numpy.testing.assert_allclose(_numpy(a), b, rtol=1e-6, atol=1e-6)


def test_gpu_dl_ops_holds_every_keras_ops_name_and_the_numpy_namespace_keras_s():
    theirs = sorted(n for n in dir(keras.ops) if not n.startswith("_"))
    assert [n for n in theirs if not hasattr(gpu_dl.ops, n)] == []
    numpy_names = sorted(n for n in dir(keras.ops.numpy) if not n.startswith("_"))
    assert sorted(dir(gpu_dl.ops.numpy)) == numpy_names
    assert all(getattr(gpu_dl.ops.numpy, n) is getattr(gpu_dl.ops, n) for n in numpy_names)
    nn_names = sorted(n for n in dir(keras.ops.nn) if not n.startswith("_"))
    assert sorted(dir(gpu_dl.ops.nn)) == nn_names

    def parameters(function):
        return [(p.name, p.default) for p in inspect.signature(function).parameters.values()]
    for name in ("conv", "conv_transpose", "polar", "view_as_complex", "view_as_real", "jvp"):
        assert parameters(getattr(gpu_dl.ops, name)) == parameters(getattr(keras.ops, name)), name
