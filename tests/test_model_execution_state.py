"""Keras 3's Model attributes around compile and state: ``run_eagerly``, ``jit_compile`` and
``steps_per_execution`` (the batch callbacks once per execution), ``get_state_tree``/``set_state_tree`` and
``stateless_compute_loss``: plain expectations, then Keras 3 (torch backend) as the oracle on the same models."""
import os
import warnings

import numpy
import pytest

import gpu_dl
from gpu_dl import layers


@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _model(lib):
    L = lib.layers
    model = lib.Sequential([lib.Input((4,)), L.BatchNormalization(name="bn"),
                            L.Dense(3, activation="tanh", kernel_regularizer="l2", name="d1"),
                            L.Dense(2, name="d2")], name="seq")
    # named: the optimizers' automatic names count separately in each library
    model.compile(optimizer=lib.optimizers.Adam(name="adam"), loss="mse", metrics=["mae"])
    return model


def _flat(tree, prefix="", convert=numpy.asarray):
    """``{path: value}`` of a nested state tree, each value through ``convert``."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/", convert))
        else:
            out[f"{prefix}{key}"] = convert(value)
    return out


def _data(seed=0, n=8):
    rng = numpy.random.default_rng(seed)
    return rng.standard_normal((n, 4)).astype("float32"), rng.standard_normal((n, 2)).astype("float32")


# ---------------------------------------------------------------- compile's execution flags

def test_execution_flags_defaults_and_compile():
    model = gpu_dl.Sequential([gpu_dl.Input((3,)), layers.Dense(1)])
    assert (model.run_eagerly, model.jit_compile, model.steps_per_execution) == (False, False, 1)
    model.compile("sgd", "mse", run_eagerly=True, steps_per_execution=3)
    assert (model.run_eagerly, model.jit_compile, model.steps_per_execution) == (True, False, 3)
    config = model.get_compile_config()
    assert (config["run_eagerly"], config["steps_per_execution"], config["jit_compile"]) == (True, 3, False)
    model.compile("sgd", "mse", jit_compile=True)
    assert model.jit_compile is True and model.run_eagerly is False
    with pytest.warns(UserWarning, match="run_eagerly"):
        model.compile("sgd", "mse", jit_compile=True, run_eagerly=True)
    assert model.jit_compile is False
    model.run_eagerly = True            # settable, as Keras's
    assert model.run_eagerly


def test_jit_compile_refused_by_a_layer_that_does_not_support_it():
    model = gpu_dl.Sequential([gpu_dl.Input((3,)), layers.Dense(1)])
    model.layers[0].supports_jit = False
    with pytest.warns(UserWarning, match="doesn't support `jit_compile=True`"):
        model.compile("sgd", "mse", jit_compile=True)
    assert model.jit_compile is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.jit_compile = False


@pytest.mark.parametrize("arguments, error", [({"steps_per_execution": 0}, ValueError),
                                              ({"steps_per_execution": 1.5}, ValueError),
                                              ({"jit_compile": "yes"}, ValueError),
                                              ({"run_eagerly": "no"}, TypeError)])
def test_bad_execution_flags(arguments, error):
    model = gpu_dl.Sequential([gpu_dl.Input((3,)), layers.Dense(1)])
    with pytest.raises(error, match=next(iter(arguments))):
        model.compile("sgd", "mse", **arguments)
    assert not model.compiled           # nothing changed


def _recorded_hooks(steps_per_execution, n=10, batch_size=2, method="fit"):
    model = gpu_dl.Sequential([gpu_dl.Input((3,)), layers.Dense(1)])
    model.set_weights([numpy.full((3, 1), 0.1, "float32"), numpy.zeros(1, "float32")])
    model.compile("sgd", "mse", steps_per_execution=steps_per_execution)
    seen = []
    kinds = ("train", "test", "predict")
    hooks = {f"on_{kind}_batch_{end}": (lambda kind, end: lambda batch, logs: seen.append((kind, end, batch)))(
        kind, end) for kind in kinds for end in ("begin", "end")}
    callback = gpu_dl.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(("epoch_end", epoch)),
                                               **hooks)
    x, y = numpy.ones((n, 3), dtype="float32"), numpy.ones((n, 1), dtype="float32")
    if method == "fit":
        history = model.fit(x, y, batch_size=batch_size, epochs=2, verbose=0, callbacks=[callback],
                            validation_data=(x[:4], y[:4]), shuffle=False)
        return seen, history
    getattr(model, method)(x, *(() if method == "predict" else (y,)), batch_size=batch_size, verbose=0,
                           callbacks=[callback])
    return seen, None


def test_steps_per_execution_batches_the_callbacks_as_keras():
    seen, history = _recorded_hooks(2)
    epoch = [("train", "begin", 0), ("train", "end", 1), ("train", "begin", 2), ("train", "end", 3),
             ("train", "begin", 4), ("train", "end", 5),        # 5 batches: the last execution ends at 4 + 2 - 1
             ("test", "begin", 0), ("test", "end", 1)]
    assert seen == epoch + [("epoch_end", 0)] + epoch + [("epoch_end", 1)]
    # every batch still trains: the same weights as one step per execution
    _, plain = _recorded_hooks(1)
    numpy.testing.assert_allclose(history.history["loss"], plain.history["loss"], rtol=1e-6)
    seen, _ = _recorded_hooks(3, method="evaluate")
    assert seen == [("test", "begin", 0), ("test", "end", 2), ("test", "begin", 3), ("test", "end", 5)]
    seen, _ = _recorded_hooks(4, n=8, method="predict")
    assert seen == [("predict", "begin", 0), ("predict", "end", 3)]


def test_steps_per_execution_end_hook_logs_are_the_last_batch():
    x = numpy.arange(30, dtype="float32").reshape(10, 3) / 10
    y = numpy.ones((10, 1), dtype="float32")
    ends = {}
    start = None
    for n in (1, 2):
        model = gpu_dl.Sequential([gpu_dl.Input((3,)), layers.Dense(1)])
        if start is None:
            start = model.get_weights()
        model.set_weights(start)
        model.compile("sgd", "mse", steps_per_execution=n)
        ends[n] = []
        model.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False,
                  callbacks=[gpu_dl.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs, n=n: ends[n].append(
                      (b, logs["loss"])))])
    # each execution's end hook gets the logs after its last batch; the last execution (one batch) those of batch 4
    one = dict(ends[1])
    assert [b for b, _ in ends[2]] == [1, 3, 5]
    numpy.testing.assert_allclose([loss for _, loss in ends[2]], [one[1], one[3], one[4]], rtol=1e-6)


def test_make_functions_run_the_steps_on_each_batch():
    model = _model(gpu_dl)
    x, y = _data(7, n=12)
    assert model.train_function is None
    train = model.make_train_function()
    assert model.train_function is train and model.make_train_function() is train
    assert model.make_train_function(force=True) is not train
    reference = _model(gpu_dl)
    reference.set_weights(model.get_weights())
    logs = model.train_function([(x[:4], y[:4]), (x[4:8], y[4:8])])
    for i in (0, 4):
        expected = reference.train_step((x[i:i + 4], y[i:i + 4]))
    assert sorted(logs) == sorted(expected)
    numpy.testing.assert_allclose([float(logs[k]) for k in sorted(logs)],
                                  [float(expected[k]) for k in sorted(expected)], rtol=1e-6)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-6)
    model.make_predict_function()
    outputs = model.predict_function([(x[:5],), (x[5:],)])
    numpy.testing.assert_allclose(numpy.asarray(outputs), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    model.make_test_function()
    assert sorted(model.test_function([(x, y)])) == ["loss", "mae"]
    with pytest.raises(TypeError, match="list of batches"):
        model.test_function((x, y)[0])
    model.compile("sgd", "mse")
    assert model.train_function is model.test_function is model.predict_function is None


# ---------------------------------------------------------------- the state tree

def test_state_tree_values_on_the_backend(xp):
    model = _model(gpu_dl)
    x, y = _data(2)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    tree = model.get_state_tree()
    leaves = [leaf for key in ("trainable_variables", "optimizer_variables")
              for leaf in _flat(tree[key], convert=lambda value: value).values()]
    assert all(isinstance(leaf, xp.ndarray) for leaf in leaves)
    kernel = model.get_layer("d2").kernel
    numpy.testing.assert_array_equal(gpu_dl.backend.to_numpy(tree["trainable_variables"]["seq"]["d2"]["kernel"]),
                                     kernel.numpy())
    new = {"trainable_variables": {"seq": {"d2": {"kernel": xp.full(kernel.shape, 0.5, dtype=xp.float32)}}}}
    model.set_state_tree(new)
    numpy.testing.assert_array_equal(kernel.numpy(), numpy.full(kernel.shape, 0.5, "float32"))
    assert isinstance(kernel.value, xp.ndarray)


def test_state_tree_structure_and_round_trip():
    model = _model(gpu_dl)
    x, y = _data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    tree = model.get_state_tree("numpy_array")
    assert sorted(tree) == ["metrics_variables", "non_trainable_variables", "optimizer_variables",
                            "trainable_variables"]
    flat = _flat(tree["trainable_variables"])
    assert sorted(flat) == ["seq/bn/beta", "seq/bn/gamma", "seq/d1/bias", "seq/d1/kernel", "seq/d2/bias",
                            "seq/d2/kernel"]
    numpy.testing.assert_array_equal(flat["seq/d1/kernel"], model.get_layer("d1").kernel.numpy())
    optimizer = _flat(tree["optimizer_variables"])
    assert int(optimizer["adam/iteration"]) == 2
    assert optimizer["adam/iteration"].dtype == numpy.int32
    numpy.testing.assert_array_equal(optimizer["adam/seq_d1_kernel_momentum"],
                                     model.optimizer.get_slot(model.get_layer("d1").kernel, "momentum"))
    # backend_tensor: the arrays themselves
    assert model.get_state_tree()["trainable_variables"]["seq"]["d1"]["kernel"] is model.get_layer("d1").kernel.value

    other = _model(gpu_dl)
    other.fit(x, y, batch_size=8, epochs=1, verbose=0)      # built optimizer, other values
    other.set_state_tree(tree)
    for a, b in zip(other.get_weights(), model.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    again = _flat(other.get_state_tree("numpy_array")["optimizer_variables"])
    for path, value in optimizer.items():
        numpy.testing.assert_array_equal(again[path], value)
    # the next steps agree: the optimizer's state was set, not only the weights
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    other.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(other.get_weights(), model.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_state_tree_bad_input():
    model = _model(gpu_dl)
    with pytest.raises(ValueError, match="value_format"):
        model.get_state_tree("lists")
    with pytest.raises(ValueError, match="Unknown variable name: weights"):
        model.set_state_tree({"weights": {}})
    with pytest.raises(TypeError, match="set_state_tree"):
        model.set_state_tree([1, 2])
    with pytest.raises(ValueError, match="shape"):
        model.set_state_tree({"trainable_variables": {"seq": {"d2": {"bias": numpy.zeros(5, "float32")}}}})
    before = model.get_weights()
    model.set_state_tree({"trainable_variables": {"seq": {"nowhere": {"kernel": numpy.zeros(3)}}}})
    for a, b in zip(model.get_weights(), before):        # an unknown path is passed over, as in Keras
        numpy.testing.assert_array_equal(a, b)
    class Twice(layers.Layer):
        def build(self, input_shape):
            self.a = self.add_weight(shape=(), initializer="ones", name="same")
            self.b = self.add_weight(shape=(), initializer="ones", name="same")

        def call(self, x):
            return x * self.a * self.b

    twice = gpu_dl.Sequential([gpu_dl.Input((2,)), Twice(name="holder")], name="twice")
    assert [v.path for v in twice.trainable_variables] == ["twice/holder/same", "twice/holder/same"]
    with pytest.raises(ValueError, match="found twice"):
        twice.get_state_tree()


def test_state_tree_of_own_metric_variables():
    class Total(gpu_dl.metrics.Metric):
        def __init__(self, name="total_of"):
            super().__init__(name=name)
            self.total = self.add_variable((), "zeros", name="total")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.total.assign_add(gpu_dl.ops.sum(y_pred))

        def result(self):
            return self.total

    model = gpu_dl.Sequential([gpu_dl.Input((4,)), layers.Dense(2)])
    model.compile("sgd", "mse", metrics=[Total()])
    x, y = _data()
    model.evaluate(x, y, verbose=0)
    metrics = _flat(model.get_state_tree("numpy_array")["metrics_variables"])
    assert list(metrics) == ["loss/total", "loss/count", "total_of/total"]
    numpy.testing.assert_allclose(metrics["total_of/total"], model.predict(x, verbose=0).sum(), rtol=1e-5)
    model.set_state_tree({"metrics_variables": {"total_of": {"total": numpy.float32(7.0)}}})
    assert float(model.metrics_variables[2].numpy()) == 7.0


# ---------------------------------------------------------------- stateless_compute_loss

def test_stateless_compute_loss_changes_no_variable():
    model = _model(gpu_dl)
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    before = model.get_weights()
    y_pred = model.predict(x, verbose=0)
    trainable = [v.numpy() * 2 for v in model.trainable_variables]
    non_trainable = [v.numpy() for v in model.non_trainable_variables]
    metrics = [v.numpy() for v in model.metrics_variables]
    loss, (t, nt, mv) = model.stateless_compute_loss(trainable, non_trainable, metrics, x=x, y=y, y_pred=y_pred)
    kernel = trainable[[v.path for v in model.trainable_variables].index("seq/d1/kernel")]
    expected = numpy.mean((y - y_pred) ** 2) + 0.01 * numpy.sum(kernel.astype("float64") ** 2)
    numpy.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert t is trainable and len(nt) == len(non_trainable) and len(mv) == len(metrics)
    for a, b in zip(model.get_weights(), before):
        numpy.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="trainable_variables"):
        model.stateless_compute_loss(trainable[:1], non_trainable, metrics, x=x, y=y, y_pred=y_pred)


# ---------------------------------------------------------------- Keras 3 as the oracle

def test_execution_flags_as_keras(keras):
    for arguments in ({}, {"run_eagerly": True}, {"jit_compile": False}, {"steps_per_execution": 4},
                      {"jit_compile": True, "run_eagerly": True}):
        found = []
        for lib in (gpu_dl, keras):
            model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(1)])
            before = (model.run_eagerly, model.jit_compile, model.steps_per_execution)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.compile("sgd", "mse", **arguments)
            config = model.get_compile_config()
            found.append((before, model.run_eagerly, model.jit_compile, model.steps_per_execution,
                          config["run_eagerly"], config["jit_compile"], config["steps_per_execution"]))
        assert found[0] == found[1], arguments


def test_state_tree_as_keras(keras):
    ours, theirs = _model(gpu_dl), _model(keras)
    ours.set_weights(theirs.get_weights())
    x, y = _data(3, n=12)
    for model in (ours, theirs):
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
    mine, reference = ours.get_state_tree("numpy_array"), theirs.get_state_tree("numpy_array")
    for key in ("trainable_variables", "non_trainable_variables", "optimizer_variables"):
        a, b = _flat(mine[key]), _flat(reference[key])
        assert sorted(a) == sorted(b), key
        for path in b:
            assert a[path].shape == b[path].shape and a[path].dtype == b[path].dtype, path
            numpy.testing.assert_allclose(a[path], b[path], rtol=2e-4, atol=2e-5, err_msg=path)
    # the loss tracker's and the compiled metrics' state, as Keras nests and names it
    a, b = _flat(mine["metrics_variables"]), _flat(reference["metrics_variables"])
    assert list(a) == list(b) and b
    for path in b:
        assert a[path].shape == b[path].shape and a[path].dtype == b[path].dtype, path
        numpy.testing.assert_allclose(a[path], b[path], rtol=2e-5, err_msg=path)


def test_set_state_tree_from_keras(keras):
    ours, theirs = _model(gpu_dl), _model(keras)
    x, y = _data(4, n=12)
    ours.fit(x, y, batch_size=4, epochs=1, verbose=0)          # built, with other values
    theirs.fit(x, y, batch_size=4, epochs=1, verbose=0)
    tree = theirs.get_state_tree("numpy_array")
    tree.pop("metrics_variables")
    ours.set_state_tree(tree)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    for model in (ours, theirs):
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    assert int(_flat(ours.get_state_tree("numpy_array")["optimizer_variables"])["adam/iteration"]) == 6


def test_train_and_test_functions_as_keras(keras):
    ours, theirs = _model(gpu_dl), _model(keras)
    ours.set_weights(theirs.get_weights())
    x, y = _data(8, n=8)
    results = []
    for model in (ours, theirs):
        model.make_train_function()
        model.make_test_function()
        trained = model.train_function([(x, y)])
        tested = model.test_function([(x, y)])
        results.append([{k: float(keras.ops.convert_to_numpy(v)) for k, v in logs.items()}
                        for logs in (trained, tested)])
    for mine, reference in zip(*results):
        assert sorted(mine) == sorted(reference)
        numpy.testing.assert_allclose([mine[k] for k in sorted(mine)], [reference[k] for k in sorted(reference)],
                                      rtol=1e-4)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_stateless_compute_loss_as_keras(keras):
    ours, theirs = _model(gpu_dl), _model(keras)
    ours.set_weights(theirs.get_weights())
    x, y = _data(5)
    y_pred = theirs.predict(x, verbose=0)
    rng = numpy.random.default_rng(6)
    trainable = [rng.standard_normal(v.shape).astype("float32") for v in theirs.trainable_variables]
    non_trainable = [v.numpy() for v in theirs.non_trainable_variables]
    metrics = [v.numpy() for v in theirs.metrics_variables]
    mine, (_, our_nt, _) = ours.stateless_compute_loss(trainable, non_trainable, metrics, x=x, y=y,
                                                       y_pred=y_pred)
    reference, (_, their_nt, _) = theirs.stateless_compute_loss(trainable, non_trainable, metrics, x=x, y=y,
                                                                y_pred=y_pred)
    numpy.testing.assert_allclose(float(mine), float(keras.ops.convert_to_numpy(reference)), rtol=1e-5)
    for a, b in zip(our_nt, their_nt):
        numpy.testing.assert_allclose(numpy.asarray(a), keras.ops.convert_to_numpy(b), rtol=1e-6)


def _flags(model):
    return model.run_eagerly, model.jit_compile, model.steps_per_execution


def test_execution_flags_saved_and_loaded(tmp_path):
    model = gpu_dl.Sequential([gpu_dl.Input((3,)), layers.Dense(1)])
    model.compile("sgd", "mse", run_eagerly=True, steps_per_execution=3)
    model.save(tmp_path / "m.keras")
    assert _flags(gpu_dl.models.load_model(tmp_path / "m.keras")) == (True, False, 3)


def test_execution_flags_files_both_ways(keras, tmp_path):
    for writer, reader in ((gpu_dl, keras), (keras, gpu_dl)):
        model = writer.Sequential([writer.Input((3,)), writer.layers.Dense(1)])
        model.compile("sgd", "mse", run_eagerly=True, steps_per_execution=3)
        path = tmp_path / f"{writer.__name__}.keras"
        model.save(path)
        assert _flags(reader.models.load_model(path)) == _flags(model) == (True, False, 3)


# Keras's public Layer and Model names gpu_dl has no counterpart for: quantization and LoRA (written apart), the torch
# backend's own (torch_params, training) and Keras's internal hook of its rematerialisation (gpu_dl's RematScope and
# remat() work without it, layers/remat.py).
NOT_IN_GPU_DL = {"quantize", "quantized_build", "quantized_call", "quantization_mode", "quantization_config",
                 "get_quantization_layer_structure", "variable_serialization_spec", "enable_lora", "lora_alpha",
                 "lora_enabled", "lora_rank", "torch_params", "training", "rematerialized_call"}


def test_keras_layer_and_model_names_exist(keras):
    import torch

    torch_names = set(dir(torch.nn.Module))
    theirs = keras.layers.Dense(2)
    theirs.build((None, 3))
    ours = layers.Dense(2)
    ours.build((None, 3))
    their_model, our_model = _model(keras), _model(gpu_dl)
    for mine, reference in ((ours, theirs), (our_model, their_model)):
        public = {n for n in dir(reference) if not n.startswith("_")} - torch_names
        # on the class or the instance: a property may raise where it has nothing to give (a layer's input)
        missing = {n for n in public if not hasattr(type(mine), n) and n not in vars(mine)}
        assert missing <= NOT_IN_GPU_DL, sorted(missing - NOT_IN_GPU_DL)
