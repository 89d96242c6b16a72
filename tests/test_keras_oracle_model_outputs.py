"""Models' outputs and what compile binds to them, against Keras 3 itself (where Keras is installed): the same
program runs in both libraries and gives the same outputs, logs, weights and saved files' behaviour."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402


def close(ours, theirs, rtol=1e-5, atol=1e-6):
    """Logs or lists of numbers and arrays equal to float32 rounding, keyed alike."""
    if isinstance(theirs, dict):
        assert sorted(ours) == sorted(theirs)
        for key in theirs:
            close(ours[key], theirs[key], rtol, atol)
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            close(a, b, rtol, atol)
    else:
        numpy.testing.assert_allclose(numpy.asarray(ours, dtype="float64"), numpy.asarray(theirs, dtype="float64"),
                                      rtol=rtol, atol=atol)


def one_tensor_twice(lib, tmp_path):
    """Model(x, [y, y]): predict, compile with a loss and metrics per output, fit, evaluate, save and load."""
    x = lib.Input((3,))
    y = lib.layers.Dense(2, name="d", kernel_initializer="ones")(x)
    model = lib.Model(x, [y, y])
    data = numpy.arange(12, dtype="float32").reshape(4, 3) / 10
    targets = [numpy.zeros((4, 2), "float32"), numpy.ones((4, 2), "float32")]
    found = {"output_names": model.output_names, "predict": model.predict(data, verbose=0)}
    lines = []
    model.summary(print_fn=lambda line, *_, **__: lines.append(line))
    found["summary_layers"] = [name for name in ("input_layer (InputLayer)", "d (Dense)") if name in "\n".join(lines)]
    model.compile("sgd", loss=["mse", "mae"], metrics=[["mae"], ["mse"]])
    found["history"] = model.fit(data, targets, epochs=2, batch_size=2, shuffle=False, verbose=0).history
    found["evaluate"] = model.evaluate(data, targets, verbose=0, return_dict=True)
    found["evaluate_list"] = model.evaluate(data, targets, verbose=0)
    found["metrics_names"] = model.metrics_names
    found["weights"] = model.get_weights()
    path = str(tmp_path / f"twice_{lib.__name__}.keras")
    model.save(path)
    loaded = lib.models.load_model(path)
    found["loaded_output_names"] = loaded.output_names
    found["loaded_evaluate"] = loaded.evaluate(data, targets, verbose=0, return_dict=True)
    found["loaded_predict"] = loaded.predict(data, verbose=0)
    return found


def test_a_functional_model_may_list_one_tensor_twice_among_its_outputs(tmp_path):
    ours, theirs = one_tensor_twice(gpu_dl, tmp_path), one_tensor_twice(keras, tmp_path)
    for key in ("output_names", "metrics_names", "loaded_output_names", "summary_layers"):
        assert ours[key] == theirs[key], key
    assert theirs["summary_layers"] == ["input_layer (InputLayer)", "d (Dense)"]
    for key in ("predict", "history", "evaluate", "evaluate_list", "weights", "loaded_evaluate", "loaded_predict"):
        close(ours[key], theirs[key])
    assert list(ours["history"]) == list(theirs["history"])


def test_the_gradients_of_one_tensor_listed_twice_add_up(rng):
    x = gpu_dl.Input((3,))
    dense = gpu_dl.layers.Dense(2)
    y = dense(x)
    twice, once = gpu_dl.Model(x, [y, y]), gpu_dl.Model(x, y)
    data = rng.standard_normal((4, 3)).astype("float32")
    g1, g2 = rng.standard_normal((2, 4, 2)).astype("float32")
    twice(data, training=True)
    dx_twice = numpy.asarray(twice.backward([g1, g2]))
    kernel_grad = numpy.asarray(dense.kernel.grad).copy()
    once(data, training=True)
    dx_once = numpy.asarray(once.backward(g1 + g2))
    kernel = dense.get_weights()[0]
    numpy.testing.assert_allclose(dx_twice, (g1 + g2) @ kernel.T, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(dx_twice, dx_once, rtol=1e-6)
    numpy.testing.assert_allclose(kernel_grad, data.T @ (g1 + g2), rtol=1e-5, atol=1e-5)
