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
    x = lib.Input((3,), name="x")     # named: both libraries number unnamed inputs by a process-wide count
    y = lib.layers.Dense(2, name="d", kernel_initializer="ones")(x)
    model = lib.Model(x, [y, y])
    data = numpy.arange(12, dtype="float32").reshape(4, 3) / 10
    targets = [numpy.zeros((4, 2), "float32"), numpy.ones((4, 2), "float32")]
    found = {"output_names": model.output_names, "predict": model.predict(data, verbose=0)}
    lines = []
    model.summary(print_fn=lambda line, *_, **__: lines.append(line))
    found["summary_layers"] = [name for name in ("x (InputLayer)", "d (Dense)") if name in "\n".join(lines)]
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
    assert theirs["summary_layers"] == ["x (InputLayer)", "d (Dense)"]
    for key in ("predict", "history", "evaluate", "evaluate_list", "weights", "loaded_evaluate", "loaded_predict"):
        close(ours[key], theirs[key])
    assert list(ours["history"]) == list(theirs["history"])


def two_heads(lib, structure):
    """A subclassed model whose call returns its two outputs in ``structure`` (a dict, a tuple or a list)."""
    class TwoHeads(lib.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.first = lib.layers.Dense(2, kernel_initializer="ones", name="first_dense")
            self.second = lib.layers.Dense(3, kernel_initializer="ones", name="second_dense")

        def call(self, x):
            a, b = self.first(x), self.second(x)
            return {"second": b, "first": a} if structure == "dict" else (a, b) if structure == "tuple" else [a, b]
    return TwoHeads


def per_output(structure, values):
    """``values`` (first, second) keyed as ``structure`` gives them."""
    return dict(zip(("first", "second"), values)) if structure == "dict" else \
        tuple(values) if structure == "tuple" else list(values)


def subclassed_run(lib, structure, tmp_path):
    """compile with a loss, weight and metrics per output before the first call, then fit, evaluate, predict,
    get_compile_config, save and load."""
    cls = two_heads(lib, structure)
    model = cls()
    data = numpy.arange(12, dtype="float32").reshape(4, 3) / 10
    targets = per_output(structure, (numpy.zeros((4, 2), "float32"), numpy.ones((4, 3), "float32")))
    model.compile(lib.optimizers.SGD(0.01), loss=per_output(structure, ("mse", lib.losses.MeanAbsoluteError())),
                  loss_weights=per_output(structure, (1.0, 0.5)),
                  metrics=per_output(structure, (["mae"], [lib.metrics.MeanSquaredError(name="sq")])))
    found = {"names_before": model.metrics_names, "config_before": model.get_compile_config()}
    found["history"] = model.fit(data, targets, epochs=2, batch_size=2, shuffle=False, verbose=0).history
    found["names_after"] = model.metrics_names
    found["evaluate"] = model.evaluate(data, targets, verbose=0, return_dict=True)
    found["evaluate_list"] = model.evaluate(data, targets, verbose=0)
    found["train_on_batch"] = model.train_on_batch(data, targets, return_dict=True)
    found["predict"] = model.predict(data, verbose=0)
    found["config_after"] = model.get_compile_config()
    path = str(tmp_path / f"heads_{structure}_{lib.__name__}.keras")
    model.save(path)
    loaded = lib.models.load_model(path, custom_objects={"TwoHeads": cls})
    found["config_loaded"] = loaded.get_compile_config()
    found["loaded_evaluate"] = loaded.evaluate(data, targets, verbose=0, return_dict=True)
    found["loaded_predict"] = loaded.predict(data, verbose=0)
    for key in ("config_before", "config_after", "config_loaded"):
        found[key].pop("optimizer")     # Keras writes its backend's optimizer class (TorchSGD's module)
    return found


@pytest.mark.parametrize("structure", ["dict", "tuple", "list"])
def test_a_subclassed_model_takes_a_loss_per_output_as_keras_does(structure, tmp_path):
    ours, theirs = subclassed_run(gpu_dl, structure, tmp_path), subclassed_run(keras, structure, tmp_path)
    for key in ("names_before", "names_after", "config_before", "config_after", "config_loaded"):
        assert ours[key] == theirs[key], key
    assert theirs["names_after"] == ["loss", "compile_metrics"] + (
        ["first_loss", "second_loss"] if structure == "dict" else ["mse_loss", "mean_absolute_error_loss"])
    for key in ("history", "evaluate", "train_on_batch", "loaded_evaluate"):
        assert list(ours[key]) == list(theirs[key]), key
        close(ours[key], theirs[key])
    close(ours["evaluate_list"], theirs["evaluate_list"])
    for key in ("predict", "loaded_predict"):
        assert type(ours[key]) is type(theirs[key])
        if structure == "dict":
            assert list(ours[key]) == list(theirs[key])
        close(ours[key], theirs[key])


def one_output(lib):
    x = lib.Input((3,), name="x")
    return lib.Model(x, lib.layers.Dense(2, name="d")(x))


def two_outputs(lib):
    x = lib.Input((3,), name="x")
    return lib.Model(x, {"a": lib.layers.Dense(2, name="a")(x), "b": lib.layers.Dense(2, name="b")(x)})


COMPILES = {
    "strings": (one_output, lambda lib: dict(optimizer="adam", loss="mse", metrics=["mae", "accuracy"],
                                             loss_weights=0.5)),
    "objects": (one_output, lambda lib: dict(optimizer=lib.optimizers.SGD(0.1), loss=lib.losses.MeanSquaredError(),
                                             metrics=[lib.metrics.MeanAbsoluteError(name="m")])),
    "mixed": (one_output, lambda lib: dict(optimizer="sgd", loss=lib.losses.LogCosh(), weighted_metrics=["mse"],
                                           metrics=["mae", lib.metrics.RootMeanSquaredError()])),
    "dicts": (two_outputs, lambda lib: dict(optimizer="sgd", loss={"a": "mse", "b": lib.losses.MeanAbsoluteError()},
                                            metrics={"a": ["mae"], "b": [lib.metrics.MeanSquaredError()]},
                                            loss_weights={"a": 1.0, "b": 2.0})),
    "lists": (two_outputs, lambda lib: dict(optimizer="sgd", loss=["mae", "mse"], metrics=[["mae"], None])),
}


def compile_configs(lib, case, tmp_path):
    """A model's compile config after compile, after fit, and of the model saved and loaded (the optimizer left
    out: Keras writes its backend's optimizer class)."""
    make, arguments = COMPILES[case]
    model = make(lib)
    model.compile(**arguments(lib))
    data = numpy.ones((4, 3), "float32")
    targets = numpy.zeros((4, 2), "float32")
    configs = [model.get_compile_config()]
    model.fit(data, {"a": targets, "b": targets} if make is two_outputs else targets, verbose=0)
    configs.append(model.get_compile_config())
    path = str(tmp_path / f"compiled_{case}_{lib.__name__}.keras")
    model.save(path)
    configs.append(lib.models.load_model(path).get_compile_config())
    for config in configs:
        config.pop("optimizer")
    return configs


@pytest.mark.parametrize("case", sorted(COMPILES))
def test_a_loaded_model_gives_the_compile_config_keras_gives(case, tmp_path):
    ours, theirs = compile_configs(gpu_dl, case, tmp_path), compile_configs(keras, case, tmp_path)
    assert ours == theirs
    if case == "strings":
        assert theirs[2]["loss"] == "mse" and theirs[2]["metrics"] == ["mae", "accuracy"]


def bound_later(lib, case):
    """A tuple-output subclassed model compiled before its first call, then called, or built by build(shape)
    before compile, or given one loss for both outputs; the history of two epochs and the weights after."""
    model = two_heads(lib, "tuple")()
    data = numpy.arange(12, dtype="float32").reshape(4, 3) / 10
    targets = (numpy.zeros((4, 2), "float32"), numpy.ones((4, 3), "float32"))
    if case == "built_before_compile":
        with pytest.warns(UserWarning, match=r"does not have a `build\(\)` method"):     # both libraries warn
            model.build((None, 3))
    model.compile("sgd", loss="mse" if case == "one_loss" else ["mse", "mae"])
    if case == "called_after_compile":
        model(data)
    history = model.fit(data, targets, epochs=2, batch_size=2, shuffle=False, verbose=0).history
    return history, model.get_weights(), model.metrics_names


@pytest.mark.parametrize("case", ["one_loss", "called_after_compile", "built_before_compile"])
def test_losses_bind_to_the_outputs_of_the_first_call_as_in_keras(case):
    ours, theirs = bound_later(gpu_dl, case), bound_later(keras, case)
    assert list(ours[0]) == list(theirs[0])
    assert ours[2] == theirs[2]
    close(ours[0], theirs[0])
    close(ours[1], theirs[1])


def from_a_data_set(lib):
    """A dict-output subclassed model compiled per output, fit and evaluated on a PyDataset."""
    class Batches(lib.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            x = numpy.arange(6, dtype="float32").reshape(2, 3) / 10 + i
            return x, {"first": numpy.zeros((2, 2), "float32"), "second": numpy.ones((2, 3), "float32")}
    model = two_heads(lib, "dict")()
    model.compile("sgd", loss={"first": "mse", "second": "mae"}, metrics={"second": ["mse"]})
    history = model.fit(Batches(), epochs=2, shuffle=False, verbose=0).history
    return history, model.evaluate(Batches(), verbose=0, return_dict=True)


def test_a_data_set_binds_the_losses_at_its_first_batch_as_in_keras():
    ours, theirs = from_a_data_set(gpu_dl), from_a_data_set(keras)
    for got, expected in zip(ours, theirs):
        assert sorted(got) == sorted(expected) == ["first_loss", "loss", "second_loss", "second_mse"]
        close(got, expected)
