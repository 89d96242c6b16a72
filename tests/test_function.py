"""gpu_dl.Function: a graph of symbolic tensors run on arrays, against plain NumPy and Keras 3's keras.Function."""
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, ops

os.environ.setdefault("KERAS_BACKEND", "torch")


def _graph(lib, lib_ops):
    a, b = lib.Input((3,), name="a"), lib.Input((3,), name="b")
    dense = lib.layers.Dense(4)
    y = dense(a) + b[:, :1]
    z = lib_ops.sigmoid(y)
    return a, b, dense, y, z


def test_function_runs_the_graph_on_arrays_in_the_given_structures(xp, rng):
    a, b, dense, y, z = _graph(gpu_dl, ops)
    fn = gpu_dl.Function({"a": a, "b": b}, {"y": y, "z": [z, y]})
    assert fn.name.startswith("function") and fn.inputs == [a, b] and fn.outputs == [y, z, y]
    assert [type(o).__name__ for o in fn.operations] == ["InputLayer", "InputLayer", "Dense", "GetItem", "Add",
                                                         "Sigmoid"]
    va, vb = rng.standard_normal((5, 3)).astype("float32"), rng.standard_normal((5, 3)).astype("float32")
    out = fn({"a": xp.asarray(va), "b": xp.asarray(vb)})
    kernel, bias = dense.get_weights()
    expected_y = va @ kernel + bias + vb[:, :1]
    assert sorted(out) == ["y", "z"] and isinstance(out["z"], list) and len(out["z"]) == 2
    assert isinstance(out["y"], xp.ndarray)
    numpy.testing.assert_allclose(backend.to_numpy(out["y"]), expected_y, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(backend.to_numpy(out["z"][0]), 1 / (1 + numpy.exp(-expected_y)), rtol=1e-5)
    numpy.testing.assert_allclose(backend.to_numpy(out["z"][1]), expected_y, rtol=1e-5, atol=1e-6)


def test_function_takes_unused_inputs_and_intermediate_tensors(xp, rng):
    a, b, dense, y, z = _graph(gpu_dl, ops)
    c = gpu_dl.Input((2,), name="c")
    fn = gpu_dl.Function([a, b, c], y)         # c is not used, as Keras allows
    va, vb = rng.standard_normal((2, 3)).astype("float32"), rng.standard_normal((2, 3)).astype("float32")
    kernel, bias = dense.get_weights()
    got = fn([xp.asarray(va), xp.asarray(vb), xp.zeros((2, 2), dtype="float32")])
    numpy.testing.assert_allclose(backend.to_numpy(got), va @ kernel + bias + vb[:, :1], rtol=1e-5, atol=1e-6)
    tail = gpu_dl.Function(y, z)               # starts at a tensor a layer made
    vy = rng.standard_normal((2, 4)).astype("float32")
    numpy.testing.assert_allclose(backend.to_numpy(tail(xp.asarray(vy))), 1 / (1 + numpy.exp(-vy)), rtol=1e-5)


def test_function_output_specs_and_shapes():
    a, b, _, y, z = _graph(gpu_dl, ops)
    fn = gpu_dl.Function({"a": a, "b": b}, {"y": y, "z": [z, y]})
    spec = fn.compute_output_spec({"a": gpu_dl.KerasTensor((5, 3)), "b": gpu_dl.KerasTensor((5, 3))})
    assert spec["y"].shape == (5, 4) and [t.shape for t in spec["z"]] == [(5, 4), (5, 4)]
    assert spec["y"].dtype == "float32"
    assert fn.compute_output_shape({"a": (None, 3), "b": (None, 3)}) == {"y": (None, 4), "z": [(None, 4), (None, 4)]}


def test_function_called_on_symbolic_tensors_is_one_call_of_a_model(rng):
    a, b, dense, y, z = _graph(gpu_dl, ops)
    fn = gpu_dl.Function([a, b], z)
    p, q = gpu_dl.Input((3,)), gpu_dl.Input((3,))
    out = fn([p, q])
    assert isinstance(out, gpu_dl.KerasTensor) and out.shape == (None, 4)
    model = gpu_dl.Model([p, q], gpu_dl.layers.Dense(1)(out))
    va, vb = rng.standard_normal((3, 3)).astype("float32"), rng.standard_normal((3, 3)).astype("float32")
    kernel, bias = dense.get_weights()
    head = model.layers[-1].get_weights()
    expected = (1 / (1 + numpy.exp(-(va @ kernel + bias + vb[:, :1])))) @ head[0] + head[1]
    numpy.testing.assert_allclose(model.predict([va, vb], verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_function_refuses_bad_graphs_and_inputs():
    a, b, _, y, _ = _graph(gpu_dl, ops)
    with pytest.raises(ValueError, match=r"Output with path `` is not connected to `inputs`.*'b'"):
        gpu_dl.Function([a], y)
    with pytest.raises(ValueError, match=r"Output with path `z.1` is not connected"):
        gpu_dl.Function([a], {"z": [a, y]})
    with pytest.raises(ValueError, match="`inputs` argument cannot be empty"):
        gpu_dl.Function([], y)
    with pytest.raises(ValueError, match="`outputs` argument cannot be empty"):
        gpu_dl.Function(a, [])
    with pytest.raises(ValueError, match="must be KerasTensors"):
        gpu_dl.Function(a, 3)
    fn = gpu_dl.Function({"a": a, "b": b}, y)
    with pytest.raises(ValueError, match="invalid input structure"):
        fn({"a": numpy.ones((2, 3))})
    with pytest.raises(ValueError, match=r"For input 'a', expected shape \(None, 3\).*\(2, 3, 1\)"):
        fn({"a": numpy.ones((2, 3, 1)), "b": numpy.ones((2, 3))})
    with pytest.raises(ValueError, match=r"For input 'a', expected shape \(None, 3\).*\(2, 4\)"):
        fn({"a": numpy.ones((2, 4)), "b": numpy.ones((2, 3))})
    with pytest.raises(TypeError, match="input 'b' must be an array"):
        fn({"a": numpy.ones((2, 3)), "b": "text"})


def test_function_matches_keras_function(rng):
    keras = pytest.importorskip("keras")
    ours, theirs = _graph(gpu_dl, ops), _graph(keras, keras.ops)
    theirs[2].set_weights(ours[2].get_weights())
    structure = lambda t: ({"a": t[0], "b": t[1]}, {"y": t[3], "z": [t[4], t[3]]})   # noqa: E731
    fn, kfn = gpu_dl.Function(*structure(ours)), keras.Function(*structure(theirs))
    assert [type(o).__name__ for o in fn.operations] == [type(o).__name__ for o in kfn.operations]
    assert len(fn.outputs) == len(kfn.outputs) and len(fn.inputs) == len(kfn.inputs)
    x = {"a": rng.standard_normal((6, 3)).astype("float32"), "b": rng.standard_normal((6, 3)).astype("float32")}
    got, want = fn(x), kfn(x)
    numpy.testing.assert_allclose(got["y"], keras.ops.convert_to_numpy(want["y"]), rtol=1e-5, atol=1e-6)
    for g, w in zip(got["z"], want["z"]):
        numpy.testing.assert_allclose(g, keras.ops.convert_to_numpy(w), rtol=1e-5, atol=1e-6)
    shapes = {"a": (None, 3), "b": (None, 3)}
    assert fn.compute_output_shape(shapes) == kfn.compute_output_shape(shapes)
    with pytest.raises(ValueError) as keras_error:
        keras.Function([theirs[0]], theirs[3])
    with pytest.raises(ValueError) as our_error:
        gpu_dl.Function([ours[0]], ours[3])
    assert str(keras_error.value) in str(our_error.value)
