"""``model.export(path, format="onnx")``: each layer's conversion, run in ONNX Runtime at batch sizes other than
the one the model ran with (the batch axis is dynamic), against the model's own predict; the file passes
onnx.checker; names, opsets, several inputs and outputs, nested and subclassed models, and the refusals."""
import os

import numpy
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import gpu_dl  # noqa: E402
from gpu_dl import activations, layers  # noqa: E402

BATCHES = (1, 5)


@pytest.fixture(autouse=True)
def exact_convolutions():
    """The GPU's float32 convolutions multiply in float32 (not tf32) here, so that the file's convolutions, which
    ONNX Runtime computes in float32, can be held to float32 tolerances."""
    previous = gpu_dl.backend.conv_precision()
    gpu_dl.backend.set_conv_precision("float32")
    yield
    gpu_dl.backend.set_conv_precision(previous)


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _feeds(session, xs):
    return {i.name: x for i, x in zip(session.get_inputs(), xs)}


def exported(model, tmp_path, **kwargs):
    path = tmp_path / "model.onnx"
    model.export(path, format="onnx", verbose=False, **kwargs)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    for value in proto.graph.input:
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    return path


def assert_runs_as_predict(model, make_inputs, tmp_path, rtol=1e-5, atol=1e-5, **kwargs):
    """The exported file, run at each of BATCHES, gives what ``model.predict`` gives; ``make_inputs(n)`` is the
    list of the model's input arrays for a batch of ``n``."""
    model.predict(make_inputs(2) if len(make_inputs(2)) > 1 else make_inputs(2)[0], verbose=0)
    session = _session(exported(model, tmp_path, **kwargs))
    for n in BATCHES:
        assert_gives_predict(session, model, make_inputs(n), rtol, atol)
    return session


def assert_gives_predict(session, model, xs, rtol=1e-5, atol=1e-5):
    """The file's outputs on the input arrays ``xs`` are what ``model.predict`` gives."""
    got = session.run(None, _feeds(session, xs))
    want = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    want = want if isinstance(want, (list, tuple)) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == numpy.shape(w)
        numpy.testing.assert_allclose(g, numpy.asarray(w), rtol=rtol, atol=atol)


def normal(shape, seed=0):
    def make(n):
        return [numpy.random.default_rng(seed + n).normal(size=(n,) + tuple(shape)).astype("float32")]
    return make


def sequential(shape, *stack):
    return gpu_dl.Sequential([layers.Input(shape)] + list(stack))


ACTIVATIONS = ["relu", "leaky_relu", "relu6", "elu", "selu", "celu", "softplus", "softsign", "squareplus", "silu",
               "gelu", "mish", "tanh", "tanh_shrink", "hard_tanh", "sigmoid", "log_sigmoid", "hard_sigmoid",
               "hard_silu", "hard_shrink", "soft_shrink", "exponential", "linear", "softmax", "log_softmax",
               "swish", "hard_swish"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_with_each_activation(xp, activation, tmp_path):
    model = sequential((7,), layers.Dense(5, activation=activation))
    assert_runs_as_predict(model, normal((7,)), tmp_path)


@pytest.mark.parametrize("activation", [
    activations.make("gelu", approximate=True), activations.make("elu", alpha=0.4),
    activations.make("celu", alpha=0.7), activations.make("leaky_relu", negative_slope=0.05),
    activations.make("relu", negative_slope=0.1, max_value=1.5, threshold=0.3),
    activations.make("relu", negative_slope=0.2, threshold=-0.5),
    activations.make("threshold", threshold=0.3, default_value=-2.0), activations.make("squareplus", b=0.5),
    activations.make("hard_shrink", threshold=0.8), activations.make("soft_shrink", threshold=0.2),
    activations.make("softmax", axis=1), activations.make("log_softmax", axis=1), "glu",
], ids=repr)
def test_activation_layer_with_parameters(xp, activation, tmp_path):
    model = sequential((4, 6), layers.Activation(activation))
    assert_runs_as_predict(model, lambda n: [2 * normal((4, 6))(n)[0]], tmp_path)


@pytest.mark.parametrize("layer", [
    lambda: layers.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.2), lambda: layers.LeakyReLU(0.15),
    lambda: layers.ELU(0.5), lambda: layers.Softmax(axis=1), lambda: layers.Softmax(),
])
def test_activation_layers(xp, layer, tmp_path):
    assert_runs_as_predict(sequential((3, 5), layer()), lambda n: [3 * normal((3, 5))(n)[0]], tmp_path)


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(strides=2, padding="same"),
    dict(strides=(2, 3), padding="same", activation="relu"),
    dict(dilation_rate=2, padding="same"),
    dict(kernel_size=(2, 4), padding="valid", strides=(3, 1), use_bias=False),
    dict(groups=2, padding="same", kernel_size=(1, 3)),
    dict(data_format="channels_first", strides=2, padding="same"),
    dict(data_format="channels_first", dilation_rate=(1, 2)),
])
def test_conv2d(xp, kwargs, tmp_path):
    kwargs = {"filters": 6, "kernel_size": 3, **kwargs}
    shape = (4, 9, 7) if kwargs.get("data_format") == "channels_first" else (9, 7, 4)
    assert_runs_as_predict(sequential(shape, layers.Conv2D(**kwargs)), normal(shape), tmp_path)


@pytest.mark.parametrize("kwargs", [
    dict(), dict(padding="same", strides=2), dict(padding="causal", dilation_rate=2),
    dict(padding="same", dilation_rate=3, activation="tanh"), dict(data_format="channels_first", padding="same"),
])
def test_conv1d(xp, kwargs, tmp_path):
    shape = (3, 11) if kwargs.get("data_format") == "channels_first" else (11, 3)
    assert_runs_as_predict(sequential(shape, layers.Conv1D(5, 3, **kwargs)), normal(shape), tmp_path)


@pytest.mark.parametrize("padding", ["same", "valid", "causal"])
def test_conv1d_on_sequences_of_any_length(xp, padding, tmp_path):
    model = sequential((None, 3), layers.Conv1D(4, 4, strides=1 if padding == "causal" else 2, padding=padding))
    assert_runs_over_lengths(model, 3, (9, 8, 13), tmp_path)


def assert_runs_over_lengths(model, features, lengths, tmp_path):
    """The file of a model over (batch, steps, ``features``) with the steps unknown, exported after a predict of
    ``lengths[0]`` steps, gives at each of the other lengths what ``model.predict`` gives."""
    model.predict(normal((lengths[0], features))(2)[0], verbose=0)
    session = _session(exported(model, tmp_path))
    for length in lengths[1:]:
        x = normal((length, features))(3)[0]
        numpy.testing.assert_allclose(session.run(None, _feeds(session, [x]))[0], model.predict(x, verbose=0),
                                      rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pool", [layers.MaxPooling2D, layers.AveragePooling2D])
@pytest.mark.parametrize("kwargs", [
    dict(), dict(pool_size=3, strides=2, padding="same"), dict(pool_size=(2, 3), strides=1, padding="same"),
    dict(pool_size=3, strides=2), dict(data_format="channels_first", padding="same"),
])
def test_pooling2d(xp, pool, kwargs, tmp_path):
    shape = (3, 7, 9) if kwargs.get("data_format") == "channels_first" else (7, 9, 3)
    assert_runs_as_predict(sequential(shape, pool(**{"pool_size": 2, **kwargs})), normal(shape), tmp_path)


@pytest.mark.parametrize("pool", [layers.MaxPooling1D, layers.AveragePooling1D])
@pytest.mark.parametrize("kwargs", [dict(), dict(pool_size=3, strides=2, padding="same"),
                                    dict(data_format="channels_first", pool_size=3)])
def test_pooling1d(xp, pool, kwargs, tmp_path):
    shape = (3, 11) if kwargs.get("data_format") == "channels_first" else (11, 3)
    assert_runs_as_predict(sequential(shape, pool(**{"pool_size": 2, **kwargs})), normal(shape), tmp_path)


@pytest.mark.parametrize("pool", [layers.GlobalMaxPooling2D, layers.GlobalAveragePooling2D,
                                  layers.GlobalMaxPooling1D, layers.GlobalAveragePooling1D])
@pytest.mark.parametrize("kwargs", [dict(), dict(keepdims=True), dict(data_format="channels_first")])
def test_global_pooling(xp, pool, kwargs, tmp_path):
    shape = (5, 3) if pool.__name__.endswith("1D") else (5, 4, 3)
    assert_runs_as_predict(sequential(shape, pool(**kwargs)), normal(shape), tmp_path)


def _randomize(layer, seed=1):
    rng = numpy.random.default_rng(seed)
    layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if "variance" in v.name or
                       "gamma" in v.name else rng.normal(size=w.shape).astype("float32")
                       for v, w in zip(layer.weights, layer.get_weights())])


@pytest.mark.parametrize("kwargs", [dict(), dict(axis=1), dict(center=False, scale=False, epsilon=0.1)])
def test_batch_normalization_at_inference(xp, kwargs, tmp_path):
    layer = layers.BatchNormalization(**kwargs)
    model = sequential((3, 4, 5), layer)
    _randomize(layer)
    assert_runs_as_predict(model, normal((3, 4, 5)), tmp_path)


@pytest.mark.parametrize("kwargs", [dict(), dict(axis=[1, 3]), dict(axis=1, center=False, epsilon=0.2),
                                    dict(scale=False), dict(rms_scaling=True)])
def test_layer_normalization(xp, kwargs, tmp_path):
    if kwargs.get("rms_scaling"):
        with pytest.warns(UserWarning, match="rms_scaling"):
            layer = layers.LayerNormalization(**kwargs)
    else:
        layer = layers.LayerNormalization(**kwargs)
    model = sequential((3, 4, 5), layer)
    _randomize(layer)
    assert_runs_as_predict(model, lambda n: [1 + normal((3, 4, 5))(n)[0]], tmp_path, atol=2e-5)


@pytest.mark.parametrize("layer", [
    lambda: layers.Flatten(), lambda: layers.Flatten(data_format="channels_first"),
    lambda: layers.Reshape((6, -1)), lambda: layers.Permute((3, 1, 2)), lambda: layers.Dropout(0.5),
    lambda: layers.ZeroPadding2D(((1, 2), (0, 3))), lambda: layers.ZeroPadding2D(1, data_format="channels_first"),
    lambda: layers.Rescaling(1 / 255.0, offset=-0.5), lambda: layers.Rescaling([0.5, 2.0, -1.0, 3.0], offset=1.0),
    lambda: layers.SpatialDropout2D(0.3), lambda: layers.GaussianNoise(0.3),
])
def test_reshaping_and_identity_layers(xp, layer, tmp_path):
    assert_runs_as_predict(sequential((3, 2, 4), layer()), normal((3, 2, 4)), tmp_path)


def test_zero_padding1d(xp, tmp_path):
    assert_runs_as_predict(sequential((5, 2), layers.ZeroPadding1D((2, 1))), normal((5, 2)), tmp_path)


def test_embedding_of_integer_ids(xp, tmp_path):
    model = sequential((6,), layers.Embedding(11, 4), layers.GlobalAveragePooling1D())
    model.layers[0].input_spec  # built by the Input
    inputs = lambda n: [numpy.random.default_rng(n).integers(0, 11, size=(n, 6)).astype("float32")]  # noqa: E731
    assert_runs_as_predict(model, inputs, tmp_path)
    ids = gpu_dl.Input((6,), dtype="int32")
    model = gpu_dl.Model(ids, layers.Embedding(11, 4)(ids))
    assert_runs_as_predict(model, lambda n: [numpy.arange(6 * n, dtype="int32").reshape(n, 6) % 11], tmp_path)


def test_functional_model_of_several_inputs_and_outputs(xp, tmp_path):
    a = gpu_dl.Input((5,), name="left")
    c = gpu_dl.Input((5,), name="right")
    d = layers.Dense(5, name="shared")
    h1, h2 = d(a), d(c)
    merged = [layers.Add()([h1, h2, a]), layers.Subtract()([h1, h2]), layers.Multiply()([h1, h2, c]),
              layers.Average()([h1, h2]), layers.Maximum()([h1, c]), layers.Minimum()([h2, a])]
    joined = layers.Concatenate(name="joined")(merged)
    first = layers.Dense(3, activation="softmax", name="probs")(joined)
    second = layers.Concatenate(axis=1, name="stacked")([layers.Reshape((1, 5))(m) for m in merged[:2]])
    model = gpu_dl.Model([a, c], [first, second])
    make = lambda n: normal((5,))(n) + normal((5,), seed=7)(n)  # noqa: E731
    session = assert_runs_as_predict(model, make, tmp_path)
    assert [i.name for i in session.get_inputs()] == ["left", "right"]
    assert [o.name for o in session.get_outputs()] == ["probs", "stacked"]
    assert [o.shape for o in session.get_outputs()] == [["batch", 3], ["batch", 2, 5]]


def test_nested_models(xp, tmp_path):
    inner = sequential((6,), layers.Dense(4, activation="relu"), layers.Dense(4))
    x = gpu_dl.Input((6,))
    block = gpu_dl.Model(x, layers.Add()([inner(x), layers.Dense(4)(x)]))
    model = gpu_dl.Sequential([layers.Input((6,)), block, layers.Dense(2)])
    assert_runs_as_predict(model, normal((6,)), tmp_path)


class Residual(layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(units, activation="relu")
        self.dropout = layers.Dropout(0.5)
        self.norm = layers.LayerNormalization()

    def call(self, x, training=False):
        return self.norm(layers.Add()([x, self.dropout(self.dense(x), training=training)]))


class Classifier(gpu_dl.Model):
    def __init__(self):
        super().__init__()
        self.block = Residual(6)
        self.head = layers.Dense(3, activation="softmax")

    def call(self, x, training=False):
        return self.head(self.block(x, training=training))


def test_composite_layer_and_subclassed_model(xp, tmp_path):
    assert_runs_as_predict(sequential((6,), Residual(6), layers.Dense(2)), normal((6,)), tmp_path)
    model = Classifier()
    model(normal((6,))(2)[0])
    session = assert_runs_as_predict(model, normal((6,)), tmp_path)
    assert [i.name for i in session.get_inputs()] == ["input_0"]


def test_input_names_opset_and_signature(xp, tmp_path, capsys):
    model = sequential((4,), layers.Dense(2))
    model.export(tmp_path / "m.onnx", format="onnx")
    assert f"Saved artifact at '{tmp_path / 'm.onnx'}'." in capsys.readouterr().out
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert [i.name for i in proto.graph.input] == [model.inputs[0].name]
    assert proto.opset_import[0].version == 20
    assert_runs_as_predict(model, normal((4,)), tmp_path, opset_version=13)
    assert onnx.load(str(tmp_path / "model.onnx")).opset_import[0].version == 13
    spec = layers.InputSpec(shape=(None, 4), name="features")
    session = assert_runs_as_predict(model, normal((4,)), tmp_path, input_signature=[spec])
    assert session.get_inputs()[0].name == "features"
    # a fixed batch size, given as a shape; an array gives its sample shape and keeps the model's dtype
    model.export(tmp_path / "fixed.onnx", format="onnx", verbose=False, input_signature=[(3, 4)])
    assert _session(tmp_path / "fixed.onnx").get_inputs()[0].shape == [3, 4]
    model.export(tmp_path / "array.onnx", format="onnx", verbose=False, input_signature=[numpy.zeros((2, 4))])
    taken = _session(tmp_path / "array.onnx").get_inputs()[0]
    assert (taken.type, taken.shape) == ("tensor(float)", ["batch", 4])


def test_refusals_write_nothing(xp, tmp_path):
    model = sequential((3, 4, 2), layers.Equalization())
    path = tmp_path / "model.onnx"
    with pytest.raises(ValueError, match=r"Layer 'equalization\w*' cannot be exported to ONNX: its class Equalization "
                                         r".*Supported: .*BatchNormalization.*Conv2D.*Dense"):
        model.export(path, format="onnx")
    assert not os.listdir(tmp_path)
    ok = sequential((4,), layers.Dense(2))
    with pytest.raises(ValueError, match="opset_version must be an integer from 13"):
        ok.export(path, format="onnx", opset_version=7)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['dynamo'\]"):
        ok.export(path, format="onnx", dynamo=True)
    with pytest.raises(ValueError, match="input_signature: .* does not fit input"):
        ok.export(path, format="onnx", input_signature=[layers.InputSpec(shape=(None, 5))])
    for fmt in ("tf_saved_model", "openvino", "litert", "torch"):
        with pytest.raises(NotImplementedError, match=f"format='{fmt}'.*gpu_dl exports ONNX"):
            ok.export(path, format=fmt)
    with pytest.raises(ValueError, match="Unrecognized format=saved"):
        ok.export(path, format="saved")
    assert not os.listdir(tmp_path)
    custom = sequential((4,), layers.Dense(2, activation=lambda x: x * 2))
    with pytest.raises(ValueError, match="activation '<lambda>' has no ONNX conversion"):
        custom.export(path, format="onnx")


@pytest.mark.filterwarnings("ignore:.*might cause the trace to be incorrect")
@pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning")
def test_keras_exports_the_same_model_alike(on_cpu, tmp_path):
    """Keras 3.15 (torch backend) as the oracle: the same model with the same weights, exported by each library,
    has the same input names and dynamic batch axis, and gives the same outputs in ONNX Runtime."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")

    def make(lib):
        image = lib.Input((9, 8, 3), name="image")
        extra = lib.Input((4,), name="extra")
        h = lib.layers.Conv2D(5, 3, strides=2, padding="same", activation="gelu")(image)
        h = lib.layers.BatchNormalization()(h)
        h = lib.layers.AveragePooling2D(2, padding="same")(h)
        h = lib.layers.GlobalMaxPooling2D()(h)
        h = lib.layers.Concatenate()([h, lib.layers.Dense(3, activation="tanh")(extra)])
        return lib.Model([image, extra], lib.layers.Dense(2, activation="softmax")(h))

    ours, theirs = make(gpu_dl), make(keras)
    rng = numpy.random.default_rng(3)
    weights = [rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    xs = [rng.normal(size=(4, 9, 8, 3)).astype("float32"), rng.normal(size=(4, 4)).astype("float32")]
    theirs(xs)      # Keras exports only a model that has been called
    ours.export(tmp_path / "ours.onnx", format="onnx", verbose=False)
    theirs.export(str(tmp_path / "theirs.onnx"), format="onnx", verbose=False)
    mine, keras_file = _session(tmp_path / "ours.onnx"), _session(tmp_path / "theirs.onnx")
    assert [(i.name, i.shape) for i in mine.get_inputs()] == [(i.name, i.shape) for i in keras_file.get_inputs()]
    for n in (1, 3):
        feeds = [x[:n] for x in xs]
        numpy.testing.assert_allclose(mine.run(None, _feeds(mine, feeds))[0],
                                      keras_file.run(None, _feeds(keras_file, feeds))[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer, shape", [
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", strides=2), (7, 6, 3)),
    (lambda: layers.DepthwiseConv2D((2, 3), dilation_rate=2, activation="relu", data_format="channels_first"),
     (3, 8, 9)),
    (lambda: layers.DepthwiseConv1D(3, depth_multiplier=3, padding="same", use_bias=False), (9, 2)),
    (lambda: layers.SeparableConv2D(5, 3, depth_multiplier=2, padding="same", strides=(1, 2)), (7, 6, 3)),
    (lambda: layers.SeparableConv2D(4, (3, 2), activation="elu", data_format="channels_first"), (3, 7, 6)),
    (lambda: layers.SeparableConv1D(4, 3, padding="same", dilation_rate=2), (9, 3)),
    (lambda: layers.Conv2DTranspose(4, 3, strides=2, padding="same"), (5, 4, 3)),
    (lambda: layers.Conv2DTranspose(4, (2, 3), strides=(2, 3), activation="relu"), (5, 4, 3)),
    (lambda: layers.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1), (5, 4, 2)),
    (lambda: layers.Conv2DTranspose(3, 1, strides=3), (4, 3, 2)),
    (lambda: layers.Conv2DTranspose(3, 3, dilation_rate=2, padding="same", data_format="channels_first"),
     (2, 5, 4)),
    (lambda: layers.Conv1DTranspose(3, 4, strides=2, padding="valid", output_padding=1), (6, 2)),
    (lambda: layers.UpSampling2D((2, 3)), (4, 3, 2)),
    (lambda: layers.UpSampling2D(2, interpolation="bilinear"), (4, 3, 2)),
    (lambda: layers.UpSampling2D((3, 2), interpolation="bilinear", data_format="channels_first"), (2, 4, 3)),
    (lambda: layers.UpSampling1D(3), (4, 3)),
], ids=lambda v: "" if callable(v) else str(v))
def test_depthwise_transposed_and_upsampling_layers(xp, layer, shape, tmp_path):
    assert_runs_as_predict(sequential(shape, layer()), normal(shape), tmp_path)


@pytest.mark.parametrize("layer", [
    lambda: layers.LSTM(4), lambda: layers.LSTM(3, return_sequences=True, activation="relu", use_bias=False),
    lambda: layers.GRU(4), lambda: layers.GRU(3, return_sequences=True, reset_after=False),
    lambda: layers.GRU(5, recurrent_activation="tanh", activation="sigmoid"),
    lambda: layers.SimpleRNN(4), lambda: layers.SimpleRNN(3, return_sequences=True, activation="relu"),
])
def test_recurrent_layers(xp, layer, tmp_path):
    made = layer()
    model = sequential((6, 3), made)
    _randomize(made, seed=4)
    assert_runs_as_predict(model, normal((6, 3)), tmp_path, atol=2e-5)


@pytest.mark.parametrize("rnn", [layers.LSTM, layers.GRU, layers.SimpleRNN])
def test_recurrent_states_as_outputs(xp, rnn, tmp_path):
    x = gpu_dl.Input((5, 2))
    out = rnn(3, return_sequences=True, return_state=True)(x)
    model = gpu_dl.Model(x, [layers.Dense(2)(out[0])] + list(out[1:]))
    session = assert_runs_as_predict(model, normal((5, 2)), tmp_path)
    assert len(session.get_outputs()) == (3 if rnn is layers.LSTM else 2)


def test_what_the_recurrent_conversions_refuse(xp, tmp_path):
    for layer, what in ((layers.GRU(2, activation="gelu"), "activation 'gelu'"),):
        with pytest.raises(ValueError, match=f"cannot be exported to ONNX: {what}"):
            sequential((4, 3), layer).export(tmp_path / "model.onnx", format="onnx")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("kwargs, with_key", [
    (dict(num_heads=2, key_dim=3), False), (dict(num_heads=3, key_dim=2, value_dim=4, use_bias=False), True),
    (dict(num_heads=2, key_dim=4, output_shape=(2, 3)), False), (dict(num_heads=1, key_dim=5, output_shape=7), True),
])
def test_multi_head_attention(xp, kwargs, with_key, tmp_path):
    query, value, key = gpu_dl.Input((4, 6)), gpu_dl.Input((5, 3)), gpu_dl.Input((5, 2))
    mha = layers.MultiHeadAttention(**kwargs)
    out = mha(query, value, key) if with_key else mha(query, value)
    model = gpu_dl.Model([query, value, key] if with_key else [query, value], out)
    shapes = [(4, 6), (5, 3), (5, 2)][:3 if with_key else 2]
    make = lambda n: [normal(s, seed=10 * i)(n)[0] for i, s in enumerate(shapes)]  # noqa: E731
    assert_runs_as_predict(model, make, tmp_path)


def test_self_attention_with_its_scores(xp, tmp_path):
    x = gpu_dl.Input((5, 4))
    out, scores = layers.MultiHeadAttention(2, 3)(x, x, return_attention_scores=True)
    model = gpu_dl.Model(x, [layers.LayerNormalization()(layers.Add()([x, out])), scores])
    assert_runs_as_predict(model, normal((5, 4)), tmp_path)
    causal = gpu_dl.Model(x, layers.MultiHeadAttention(2, 3)(x, x, use_causal_mask=True, return_attention_scores=True))
    session = assert_runs_as_predict(causal, normal((5, 4)), tmp_path)
    scores = session.run(None, _feeds(session, normal((5, 4))(2)))[1]
    numpy.testing.assert_array_equal(scores[..., numpy.triu_indices(5, 1)[0], numpy.triu_indices(5, 1)[1]], 0.0)


def test_operators_between_tensors(xp, tmp_path):
    x, y = gpu_dl.Input((3,)), gpu_dl.Input((3,))
    out = 2.0 - (x * y) / 3 + abs(-x) ** 2 + y / (1.5 + abs(x))
    make = lambda n: normal((3,))(n) + normal((3,), seed=9)(n)  # noqa: E731
    assert_runs_as_predict(gpu_dl.Model([x, y], out), make, tmp_path)


class Gated(layers.Layer):
    """A composite call with operators between its sublayers' outputs."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.value = layers.Dense(units)
        self.gate = layers.Dense(units, activation="sigmoid")

    def call(self, x):
        return x + self.value(x) * self.gate(x) - 0.5


def test_subclassed_call_with_operators(xp, tmp_path):
    assert_runs_as_predict(sequential((4,), Gated(4), layers.Dense(2)), normal((4,)), tmp_path)


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_opsets(xp, opset, tmp_path):
    """The nodes whose inputs and attributes changed between opsets (reductions' axes, Split, Squeeze, Resize)."""
    model = sequential((6, 4), layers.LayerNormalization(), layers.Activation("glu"), layers.UpSampling1D(2),
                       layers.ZeroPadding1D(1), layers.LSTM(3, return_sequences=True), layers.GlobalMaxPooling1D(),
                       layers.Dense(2, activation="hard_silu"))
    assert_runs_as_predict(model, normal((6, 4)), tmp_path, opset_version=opset)
    assert onnx.load(str(tmp_path / "model.onnx")).opset_import[0].version == opset


@pytest.mark.parametrize("rnn", [layers.LSTM, layers.GRU, layers.SimpleRNN])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional(xp, rnn, merge_mode, return_sequences, tmp_path):
    made = layers.Bidirectional(rnn(3, return_sequences=return_sequences), merge_mode=merge_mode)
    model = sequential((5, 2), made)
    _randomize(made, seed=6)
    assert_runs_as_predict(model, normal((5, 2)), tmp_path, atol=2e-5)


def test_bidirectional_refusals(xp, tmp_path):
    for made, what in ((layers.Bidirectional(layers.LSTM(2, activation="gelu")), "activation 'gelu'"),
                       (layers.Bidirectional(layers.LSTM(2), backward_layer=layers.GRU(2, go_backwards=True,
                                                                                       activation="gelu")),
                        "activation 'gelu'")):
        with pytest.raises(ValueError, match=f"cannot be exported to ONNX: {what}"):
            sequential((4, 3), made).export(tmp_path / "model.onnx", format="onnx")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("layer, shape", [
    (lambda: layers.Cropping2D(((1, 0), (2, 1))), (5, 6, 2)),
    (lambda: layers.Cropping2D(1, data_format="channels_first"), (2, 5, 4)),
    (lambda: layers.Cropping1D((2, 1)), (7, 3)), (lambda: layers.Cropping1D((0, 2)), (7, 3)),
], ids=lambda v: "" if callable(v) else str(v))
def test_cropping(xp, layer, shape, tmp_path):
    assert_runs_as_predict(sequential(shape, layer()), normal(shape), tmp_path)


class WithOps(layers.Layer):
    """A composite call of ``gpu_dl.ops`` functions on its input and its own weight."""

    def build(self, input_shape):
        self.w = self.add_weight((input_shape[-1], 3), initializer="glorot_uniform")

    def call(self, x):
        ops = gpu_dl.ops
        h = ops.tanh(ops.matmul(x, self.w)) + ops.mean(x, axis=-1, keepdims=True) - ops.sum(ops.square(x), axis=1,
                                                                                                keepdims=True) / 9
        h = ops.maximum(h, -0.5) * ops.sigmoid(h) + ops.gelu(h) + ops.gelu(h, approximate=False) + ops.silu(h)
        h = ops.clip(ops.exp(h), 0.1, 3.0) + ops.sqrt(ops.softplus(h)) + ops.log(ops.relu(h) + 1) + ops.erf(h)
        h = ops.softmax(h, axis=-1) + ops.log_softmax(h) + ops.sin(h) * ops.cos(h) + ops.hard_sigmoid(h)
        h = ops.squeeze(ops.transpose(ops.expand_dims(h, 1), (0, 2, 1)), axis=-1)
        return h + ops.max(h, axis=1, keepdims=True) - ops.min(h, axis=-1, keepdims=True)


def test_ops_in_a_composite_call(xp, tmp_path):
    assert_runs_as_predict(sequential((5,), WithOps(), layers.Dense(2)), normal((5,)), tmp_path)
    with pytest.raises(ValueError, match="Layer 'max\\w*' cannot be exported to ONNX: initial="):
        x = gpu_dl.Input((3,))
        gpu_dl.Model(x, gpu_dl.ops.max(x, axis=-1, initial=0.0)).export(tmp_path / "no.onnx", format="onnx")


@pytest.mark.parametrize("make", [
    lambda: layers.Normalization(mean=[0.5, -1.0, 2.0], variance=[4.0, 0.25, 1e-20]),
    lambda: layers.Normalization(mean=1.5, variance=2.0, invert=True),
    lambda: layers.Normalization(axis=(1, 2)),
    lambda: layers.PReLU(), lambda: layers.PReLU(shared_axes=[1]),
])
def test_normalization_and_prelu(xp, make, tmp_path):
    layer = make()
    model = sequential((4, 3), layer)
    if isinstance(layer, layers.Normalization) and layer.axis == (1, 2):
        layer.adapt(3 * normal((4, 3))(20)[0] + 1)
    elif isinstance(layer, layers.PReLU):
        _randomize(layer)
    assert_runs_as_predict(model, normal((4, 3)), tmp_path)


class Windowed(layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = layers.Conv1D(2, 3)

    def call(self, x):
        return self.conv(x) * 2.0


def test_composite_over_sequences_of_any_length(xp, tmp_path):
    model = sequential((None, 2), Windowed())
    model.predict(normal((6, 2))(2)[0], verbose=0)
    with pytest.raises(ValueError, match=r"runs once on zeros .*\(1, 1, 2\).*Give input_signature"):
        model.export(tmp_path / "model.onnx", format="onnx")
    assert not os.listdir(tmp_path)
    model.export(tmp_path / "model.onnx", format="onnx", verbose=False, input_signature=[(None, 5, 2)])
    session = _session(tmp_path / "model.onnx")
    x = normal((5, 2))(3)[0]
    numpy.testing.assert_allclose(session.run(None, _feeds(session, [x]))[0], model.predict(x, verbose=0),
                                  rtol=1e-5, atol=1e-5)
