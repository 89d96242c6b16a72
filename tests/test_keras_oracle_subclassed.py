"""Subclassed models against Keras 3 itself: the same program (a Model subclass making its layers in __init__ and
composing them in call) run with gpu_dl and with Keras, and what each prints or gives compared: the summary of a
model not yet built, ``build(input_shape)``, variable paths, the logs of the batch hooks, and the optimizer's
learning rate as user code reads and sets it."""
import numpy
import pytest

import gpu_dl

keras = pytest.importorskip("keras")

from keras_steps import assert_same_summary, summary_rows  # noqa: E402


def _fresh():
    gpu_dl.backend.clear_session()
    keras.utils.clear_session()         # the same layer names on both sides


def _classes(lib):
    L = lib.layers

    class Inner(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = L.Dense(2)

        def call(self, x):
            return self.dense(x)

    class Net(lib.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.stem = L.Dense(4)
            self.drop = L.Dropout(0.1)
            self.norm = L.BatchNormalization()
            self.blocks = [L.Dense(3), L.Dense(3)]
            self.heads = {"out": L.Dense(2)}
            self.inner = Inner()
            self.scale = self.add_weight(shape=(2,), initializer="ones", name="scale")

        def call(self, x):
            h = self.norm(self.drop(self.stem(x)))
            for block in self.blocks:
                h = block(h)
            return self.inner(self.heads["out"](h)) * self.scale
    return Net


# ------------------------------------------------------------------ summary before the model is built
@pytest.mark.parametrize("show_trainable", [False, True])
def test_summary_of_an_unbuilt_model_as_keras(monkeypatch, show_trainable):
    _fresh()
    ours, theirs = _classes(gpu_dl)(name="net"), _classes(keras)(name="net")
    assert not ours.built
    rows, total, _ = summary_rows(ours, monkeypatch)
    # each layer is listed, unknown shapes and no parameters but the model's own; Dropout (built when it is made,
    # in Keras) counts its 0 parameters
    assert [r[1:3] for r in rows] == [("?", "0 (unbuilt)"), ("?", "0"), ("?", "0 (unbuilt)")] + \
        [("?", "0 (unbuilt)")] * 4
    assert total == "Total params: 2 (8.00 B)"
    assert_same_summary(ours, theirs, monkeypatch)
    lines = {}
    for name, model in (("ours", ours), ("theirs", theirs)):
        printed = []
        model.summary(print_fn=lambda line, **kwargs: printed.append(line), show_trainable=show_trainable)
        text = "\n".join(printed).splitlines()
        cells = [[c.strip() for c in line.split("│")[1:-1]] for line in text if line.startswith("│")]
        lines[name] = [line.strip() for line in text if "params" in line or line.startswith("Model")] + \
            [c[-1] for c in cells if c[-1]]
    assert lines["ours"] == lines["theirs"]


def test_summary_after_a_call_as_keras(monkeypatch):
    _fresh()
    ours, theirs = _classes(gpu_dl)(), _classes(keras)()
    x = numpy.linspace(-1, 1, 10, dtype="float32").reshape(2, 5)
    ours(x)
    theirs(x)
    rows, _, _ = summary_rows(ours, monkeypatch)
    # a composite layer without compute_output_shape has no output shape Keras can print
    assert rows[-1][:2] == ("inner (Inner)", "?") and rows[0][1] == "(2, 4)"
    assert_same_summary(ours, theirs, monkeypatch)


# ------------------------------------------------------------------ build(input_shape)
def _state(model):
    # (Keras marks Dropout built when it is made, gpu_dl at its first call: the layers' weights tell the builds)
    return (model.built, [v.name for v in model.weights], [len(layer.weights) for layer in model.layers],
            model.get_build_config())


def test_build_marks_the_model_built_and_leaves_its_layers_as_keras(monkeypatch):
    _fresh()
    ours, theirs = _classes(gpu_dl)(), _classes(keras)()
    for model in (ours, theirs):
        with pytest.warns(UserWarning, match="does not have a `build\\(\\)` method implemented"):
            model.build((None, 5))
    assert _state(ours) == _state(theirs)
    assert _state(ours)[:2] == (True, ["scale"]) and _state(ours)[3] == {"input_shape": (None, 5)}
    assert_same_summary(ours, theirs, monkeypatch)
    # the first fit builds the layers, by running the call
    x = numpy.linspace(-1, 1, 40, dtype="float32").reshape(8, 5)
    y = numpy.zeros((8, 2), "float32")
    for model in (ours, theirs):
        model.compile("sgd", "mse")
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert _state(ours) == _state(theirs) and len(ours.weights) == 15
    assert ours.get_build_config() == {"input_shape": (None, 5)}
    rows, _, _ = summary_rows(ours, monkeypatch)
    assert rows[0][1:] == ("(4, 4)", "24")      # built by the first batch's call
    assert_same_summary(ours, theirs, monkeypatch)


def test_build_of_a_model_with_its_own_build_runs_it_alone_as_keras(recwarn):
    _fresh()
    states = []
    for lib in (gpu_dl, keras):
        L = lib.layers

        class Own(lib.Model):
            def __init__(self):
                super().__init__()
                self.first = L.Dense(3)
                self.second = L.Dense(2)

            def build(self, input_shape):
                self.first.build(input_shape)

            def call(self, x):
                return self.second(self.first(x))
        model = Own()
        model.build((None, 4))
        states.append(_state(model))
        model(numpy.ones((2, 4), "float32"))
        states.append(_state(model))
    assert states[0] == states[2] and states[1] == states[3]
    assert states[0][2] == [2, 0] and states[1][2] == [2, 2]
    assert not [w for w in recwarn if "build()" in str(w.message)]


def test_build_warns_only_where_a_layer_is_unbuilt_as_keras():
    import warnings
    for lib in (gpu_dl, keras):
        L = lib.layers

        class Light(lib.Model):
            def __init__(self):
                super().__init__()
                self.drop = L.Dropout(0.5)      # built when it is made, in Keras

            def call(self, x):
                return self.drop(x)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model = Light()
            model.build((None, 4))
        assert model.built and model.get_build_config() == {"input_shape": (None, 4)}


def test_load_weights_after_build_builds_the_layers_for_that_shape(tmp_path):
    # Keras would load nothing into the unbuilt layers; gpu_dl builds them for the shape build() was given first
    Net = _classes(gpu_dl)
    source = Net()
    x = numpy.linspace(-1, 1, 10, dtype="float32").reshape(2, 5)
    expected = gpu_dl.backend.to_numpy(source(x))
    source.save_weights(tmp_path / "n.weights.h5")
    target = Net()
    with pytest.warns(UserWarning):
        target.build((None, 5))
    target.load_weights(tmp_path / "n.weights.h5")
    assert len(target.weights) == len(source.weights) == 15
    numpy.testing.assert_allclose(gpu_dl.backend.to_numpy(target(x)), expected, rtol=1e-6)


# ------------------------------------------------------------------ the logs of the batch hooks
def _described(value):
    """What a log holds, backend-neutral: a float, a NumPy array's shape, a list or tuple of them; an array of the
    backend (Keras's torch tensors, which its logs leave in lists) reads as its shape."""
    if isinstance(value, dict):
        return {key: _described(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return ("sequence", [_described(v) for v in value])
    if isinstance(value, float):
        return "float"
    if isinstance(value, numpy.ndarray):
        return ("numpy", value.shape)
    return ("tensor", tuple(value.shape))


def _hook_logs(lib, outputs):
    L = lib.layers
    seen = []

    class Recorder(lib.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(("train", _described(logs)))

        def on_test_batch_end(self, batch, logs=None):
            seen.append(("test", _described(logs)))

        def on_predict_batch_end(self, batch, logs=None):
            seen.append(("predict", _described(logs)))

    inputs = lib.Input((3,))
    out = {"b": L.Dense(1, name="b")(inputs), "a": L.Dense(2, name="a")(inputs)}
    out = {"one": out["a"], "list": [out["a"], out["b"]], "dict": out}[outputs]
    model = lib.Model(inputs, out)
    x = numpy.linspace(-1, 1, 15, dtype="float32").reshape(5, 3)
    a, b = numpy.zeros((5, 2), "float32"), numpy.zeros((5, 1), "float32")
    y = {"one": a, "list": [a, b], "dict": {"a": a, "b": b}}[outputs]
    model.compile("sgd", "mse")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[Recorder()])
    model.evaluate(x, y, batch_size=4, verbose=0, callbacks=[Recorder()])
    model.predict(x, batch_size=4, verbose=0, callbacks=[Recorder()])
    return seen


@pytest.mark.parametrize("outputs", ["one", "list", "dict"])
def test_batch_hook_logs_as_keras(outputs):
    _fresh()
    ours, theirs = _hook_logs(gpu_dl, outputs), _hook_logs(keras, outputs)
    # Keras leaves a list of outputs as its backend's tensors; gpu_dl gives NumPy arrays (what its CPU backend's
    # tensors are): the same shapes either way
    theirs = [(hook, {k: (v if hook != "predict" or v[0] != "sequence" else
                          ("sequence", [("numpy", s[1]) for s in v[1]])) for k, v in logs.items()})
              for hook, logs in theirs]
    assert ours == theirs and [hook for hook, _ in ours] == ["train"] * 2 + ["test"] * 2 + ["predict"] * 2
    assert ours[0][1] == ({"loss": "float"} if outputs == "one" else {"a_loss": "float", "b_loss": "float",
                                                                     "loss": "float"})
    predicted = next(logs for hook, logs in ours if hook == "predict")      # the first batch's
    expected = {"one": {"outputs": ("numpy", (4, 2))},
                "list": {"outputs": ("sequence", [("numpy", (4, 2)), ("numpy", (4, 1))])},
                "dict": {"a": ("numpy", (4, 2)), "b": ("numpy", (4, 1))}}[outputs]
    assert predicted == expected


# ------------------------------------------------------------------ the optimizer's learning rate
def _rate_program(lib):
    """What user code does with ``optimizer.learning_rate``; each step's reading, backend-neutral."""
    seen = []
    opt = lib.optimizers.Adam(0.01)
    rate = opt.learning_rate
    seen.append(("read", float(rate), tuple(rate.shape), str(numpy.dtype(rate.dtype)),
                 rate.path == f"{opt.name}/learning_rate", rate.name, rate.trainable))
    seen.append(("named after a fresh session", opt.name))
    seen.append(("numpy", float(rate.numpy()), float(lib.ops.convert_to_numpy(rate)), float(numpy.asarray(rate))))
    rate.assign(0.5)
    seen.append(("assign", float(opt.learning_rate), opt.learning_rate is rate))
    opt.learning_rate = 0.1
    seen.append(("set", float(opt.learning_rate), opt.learning_rate is rate))
    opt.learning_rate = rate * 0.5              # a scheduling callback's arithmetic on the variable
    seen.append(("set from arithmetic", float(opt.learning_rate)))
    opt.learning_rate = opt.learning_rate       # a schedule giving the rate back unchanged
    seen.append(("set to itself", float(opt.learning_rate)))
    scheduled = lib.optimizers.SGD(lib.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5))
    seen.append(("schedule", float(scheduled.learning_rate), float(lib.ops.convert_to_numpy(scheduled.learning_rate))))
    with pytest.raises(TypeError):
        scheduled.learning_rate = 0.3

    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(1, kernel_initializer="ones")])
    model.compile(lib.optimizers.SGD(0.1), "mse")

    class Halve(lib.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.optimizer.learning_rate.assign(float(self.model.optimizer.learning_rate) * 0.5)
            seen.append(("epoch", epoch, float(self.model.optimizer.learning_rate)))
    x = numpy.linspace(-1, 1, 24, dtype="float32").reshape(8, 3)
    history = model.fit(x, numpy.zeros((8, 1), "float32"), epochs=3, batch_size=8, verbose=0,
                        callbacks=[Halve(), lib.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5)])
    seen.append(("history", history.history["learning_rate"]))
    seen.append(("weights", [w.tolist() for w in model.get_weights()]))
    return seen


def test_learning_rate_is_a_variable_as_keras():
    _fresh()
    ours = _rate_program(gpu_dl)
    _fresh()
    theirs = _rate_program(keras)
    weights_ours, weights_theirs = ours.pop(), theirs.pop()
    assert ours == theirs
    numpy.testing.assert_allclose(numpy.concatenate([numpy.ravel(w) for w in weights_ours[1]]),
                                  numpy.concatenate([numpy.ravel(w) for w in weights_theirs[1]]), rtol=1e-6, atol=1e-7)
    assert ours[0] == ("read", float(numpy.float32(0.01)), (), "float32", True, "learning_rate", False)
    assert ours[1] == ("named after a fresh session", "adam")
    assert ours[3] == ("assign", 0.5, True) and ours[4] == ("set", float(numpy.float32(0.1)), True)


def _iterations_program(lib):
    opt = lib.optimizers.Adam(0.01)
    count = opt.iterations
    seen = [(count.path == f"{opt.name}/iteration", count.name, str(numpy.dtype(count.dtype)), int(count),
             int(count.numpy()),
             int(lib.ops.convert_to_numpy(count)), count is opt.variables[0], isinstance(count, lib.Variable))]
    opt.iterations.assign(5)
    seen.append(int(opt.iterations))
    opt.iterations.assign_add(2)
    seen.append((int(opt.iterations), int(count), opt.iterations is count))
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(1)])
    model.compile(lib.optimizers.SGD(0.1), "mse")
    model.fit(numpy.ones((8, 3), "float32"), numpy.zeros((8, 1), "float32"), batch_size=4, epochs=2, verbose=0)
    seen.append(int(lib.ops.convert_to_numpy(model.optimizer.iterations)))
    return seen


def test_iterations_read_and_set_as_keras():
    _fresh()
    ours, theirs = _iterations_program(gpu_dl), _iterations_program(keras)
    assert ours == theirs == [(True, "iteration", "int32", 0, 0, 0, True, True), 5, (7, 7, True), 4]


# ------------------------------------------------------------------ variable paths
def _path_program(lib):
    L = lib.layers

    class Inner(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = L.Dense(2)
            self.own = self.add_weight(shape=(2,), initializer="ones", name="own")

        def call(self, x):
            return self.dense(x) * self.own

    class Net(lib.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.early = L.Dense(5)
            self.early.build((None, 5))         # built before the model's call: its own path
            self.seq = lib.Sequential([L.Dense(4)])
            self.blocks = [L.Dense(3), L.Dense(3)]
            self.heads = {"out": L.Dense(2)}
            self.inner = Inner()
            self.scale = self.add_weight(shape=(2,), initializer="ones", name="scale")

        def call(self, x):
            h = self.seq(self.early(x))
            for block in self.blocks:
                h = block(h)
            return self.inner(self.heads["out"](h)) * self.scale

    class Outer(lib.Model):
        def __init__(self):
            super().__init__()
            self.net = Net(name="net")

        def call(self, x):
            return self.net(x)
    x = numpy.ones((2, 5), "float32")
    paths = {}
    model = Net(name="top")
    model(x)
    paths["called"] = [v.path for v in model.weights]
    model = Net()
    model.compile("adamw", "mse")
    model.fit(x, numpy.zeros((2, 2), "float32"), verbose=0)
    paths["fitted"] = [v.path for v in model.weights]
    outer = Outer()
    outer(x)
    paths["nested"] = [v.path for v in outer.weights]
    inputs = lib.Input((5,))
    functional = lib.Model(inputs, Net(name="in_functional")(inputs))
    paths["in a functional model"] = [v.path for v in functional.weights]
    sequential = lib.Sequential([lib.Input((5,)), L.Dense(3)])
    paths["sequential"] = [v.path for v in sequential.weights]
    return paths


def test_variable_paths_as_keras(tmp_path):
    _fresh()
    ours = _path_program(gpu_dl)
    _fresh()
    theirs = _path_program(keras)
    assert ours == theirs
    assert ours["called"] == ["top/scale", "dense/kernel", "dense/bias", "top/sequential/dense_1/kernel",
                              "top/sequential/dense_1/bias", "top/dense_2/kernel", "top/dense_2/bias",
                              "top/dense_3/kernel", "top/dense_3/bias", "top/dense_4/kernel", "top/dense_4/bias",
                              "inner/own", "top/inner/dense_5/kernel", "top/inner/dense_5/bias"]
    # the weights files keep their layout (by layer names, not paths): a file of gpu_dl's loads in Keras
    Net = _classes(gpu_dl)
    ours_model, theirs_model = Net(), _classes(keras)()
    x = numpy.linspace(-1, 1, 10, dtype="float32").reshape(2, 5)
    ours_model(x)
    theirs_model(x)
    ours_model.save_weights(tmp_path / "o.weights.h5")
    theirs_model.load_weights(tmp_path / "o.weights.h5")
    numpy.testing.assert_allclose(keras.ops.convert_to_numpy(theirs_model(x)), gpu_dl.backend.to_numpy(ours_model(x)),
                                  rtol=1e-5, atol=1e-6)


def _model_paths(lib):
    L = lib.layers
    x = numpy.ones((4, 2), "float32")
    found = []
    model = lib.Sequential([lib.Input((2,)), L.Dense(8), L.Dense(3)])
    found.append([v.path for v in model.weights])
    model = lib.Sequential()
    model.add(lib.Input((2,)))
    model.add(L.Dense(8))
    found.append([v.path for v in model.weights])
    model = lib.Sequential([L.Dense(8), L.Dense(3)])
    model.compile("sgd", "mse")
    model.fit(x, numpy.ones((4, 3), "float32"), verbose=0)
    found.append([v.path for v in model.weights])
    inputs = lib.Input((4, 2))
    found.append([v.path for v in lib.Model(inputs, L.MultiHeadAttention(2, 3)(inputs, inputs)).weights])
    found.append([v.path for v in lib.Model(inputs, L.TimeDistributed(L.Dense(3))(inputs)).weights])
    inner = lib.Sequential([lib.Input((2,)), L.Dense(3)], name="inner")
    found.append([v.path for v in lib.Sequential([lib.Input((2,)), inner, L.Dense(1)]).weights])
    sequences = lib.Input((4, 2))
    found.append([v.path for v in lib.Model(sequences, L.Bidirectional(L.LSTM(3))(sequences)).weights])
    found.append([v.path for v in lib.Model(sequences, L.GRU(3)(L.SimpleRNN(2, return_sequences=True)(sequences)))
                  .weights])
    found.append([v.path for v in lib.Model(sequences, L.RNN(L.LSTMCell(3))(sequences)).weights])
    frames = lib.Input((4, 5, 5, 2))
    found.append([v.path for v in lib.Model(frames, L.ConvLSTM2D(2, 3)(frames)).weights])
    dense = L.Dense(2)
    dense.build((None, 3))
    found.append([v.path for v in dense.weights])
    return found


def test_sequential_and_functional_paths_as_keras():
    _fresh()
    ours = _model_paths(gpu_dl)
    _fresh()
    theirs = _model_paths(keras)
    assert ours == theirs
    # a Sequential model builds its layers in its name scope; a functional model's are built before it exists
    assert ours[0] == ["sequential/dense/kernel", "sequential/dense/bias", "sequential/dense_1/kernel",
                       "sequential/dense_1/bias"]
    assert ours[4] == ["time_distributed/dense_5/kernel", "time_distributed/dense_5/bias"] and \
        ours[-1] == ["dense_8/kernel", "dense_8/bias"]
    # a recurrent layer's weights are made by its cell sublayer, in its scope
    assert ours[-2][0] == "conv_lstm2d/conv_lstm_cell/kernel" and ours[-3][0] == "rnn/lstm_cell/kernel"
    assert ours[6][0] == "bidirectional/forward_lstm/lstm_cell/kernel"


def _tuple_outputs(lib):
    L = lib.layers

    class Pair(lib.Model):
        def __init__(self):
            super().__init__()
            self.a = L.Dense(2)
            self.b = L.Dense(1)

        def call(self, x):
            return self.a(x), self.b(x)
    seen = []

    class Recorder(lib.callbacks.Callback):
        def on_predict_batch_end(self, batch, logs=None):
            seen.append(_described(logs))
    model = Pair()
    x = numpy.ones((3, 4), "float32")
    called, predicted = model(x), model.predict(x, verbose=0, callbacks=[Recorder()])
    return type(called).__name__, type(predicted).__name__, [numpy.shape(p) for p in predicted], seen[0]["outputs"][0]


def test_a_call_returning_a_tuple_gives_a_tuple_as_keras():
    ours, theirs = _tuple_outputs(gpu_dl), _tuple_outputs(keras)
    assert ours == theirs == ("tuple", "tuple", [(3, 2), (3, 1)], "sequence")
