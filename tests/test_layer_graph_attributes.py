"""Layer.input and Layer.output (the tensors of a layer's first call on symbolic tensors), and a Sequential's
inputs and outputs (the graph Keras 3 makes of its layers once its input shape is known): the feature extractors
of Keras's guides, against plain NumPy expectations on both backends, and Keras's errors."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers
from gpu_dl.layers.symbolic import KerasTensor


def relu(x):
    return numpy.maximum(x, 0.0)


def dense_stack(rng):
    model = gpu_dl.Sequential([gpu_dl.Input((6,)), layers.Dense(5, activation="relu"),
                               layers.Dense(4, activation="tanh", name="middle"), layers.Dense(3)])
    weights = [rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()]
    model.set_weights(weights)
    return model, weights


def stack_features(weights, x):
    """Each Dense layer's output, in float64."""
    w1, b1, w2, b2, w3, b3 = (w.astype("float64") for w in weights)
    h1 = relu(x @ w1 + b1)
    h2 = numpy.tanh(h1 @ w2 + b2)
    return [h1, h2, h2 @ w3 + b3]


def test_sequential_feature_extractor(xp, rng):
    model, weights = dense_stack(rng)
    inputs = model.inputs
    assert len(inputs) == 1 and isinstance(inputs[0], KerasTensor) and inputs[0].shape == (None, 6)
    assert [t.shape for t in model.outputs] == [(None, 3)]
    # The layers' calls chain from the model's input to its output.
    assert model.layers[0].input is inputs[0]
    for before, after in zip(model.layers, model.layers[1:]):
        assert after.input is before.output
    assert model.layers[-1].output is model.outputs[0]
    assert model.input is inputs[0] and model.output is model.outputs[0]
    extractor = gpu_dl.Model(inputs=model.inputs, outputs=[layer.output for layer in model.layers])
    x = rng.standard_normal((7, 6)).astype("float32")
    features = extractor(xp.asarray(x))
    assert len(features) == 3 and all(type(f) is type(xp.zeros(1)) for f in features)
    for got, expected in zip(features, stack_features(weights, x.astype("float64"))):
        numpy.testing.assert_allclose(backend.to_numpy(got), expected, rtol=1e-4, atol=1e-5)
    middle = gpu_dl.Model(inputs=model.inputs, outputs=model.get_layer(name="middle").output)
    numpy.testing.assert_allclose(middle.predict(x, verbose=0), stack_features(weights, x.astype("float64"))[1],
                                  rtol=1e-4, atol=1e-5)
    # The extractor shares the model's layers: training the model moves its features too.
    model.layers[0].kernel.assign(numpy.zeros((6, 5), "float32"))
    numpy.testing.assert_allclose(backend.to_numpy(extractor(xp.asarray(x))[0]),
                                  numpy.broadcast_to(relu(weights[1]), (7, 5)), rtol=1e-6)


def test_conv_feature_extractor_of_the_guide(xp, rng):
    # Keras's Sequential guide, at a smaller size: each layer's features from one call.
    model = gpu_dl.Sequential([gpu_dl.Input(shape=(17, 17, 3)), layers.Conv2D(4, 5, strides=2, activation="relu"),
                               layers.Conv2D(4, 3, activation="relu"), layers.Conv2D(3, 3, activation="relu")])
    extractor = gpu_dl.Model(inputs=model.inputs, outputs=[layer.output for layer in model.layers])
    x = xp.asarray(rng.standard_normal((2, 17, 17, 3)).astype("float32"))
    features = extractor(x)
    assert [tuple(f.shape) for f in features] == [(2, 7, 7, 4), (2, 5, 5, 4), (2, 3, 3, 3)]
    h = x
    for layer, got in zip(model.layers, features):
        h = layer(h)        # the same layers, one call on arrays at a time
        numpy.testing.assert_allclose(backend.to_numpy(got), backend.to_numpy(h), rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(backend.to_numpy(features[-1]), backend.to_numpy(model(x)), rtol=1e-5, atol=1e-6)


def test_functional_feature_extractor_with_the_input_layer(xp, rng):
    inputs = gpu_dl.Input((6,), name="features_in")
    h = layers.Dense(5, activation="relu", name="d1")(inputs)
    h = layers.Dense(4, activation="tanh", name="d2")(h)
    model = gpu_dl.Model(inputs, layers.Dense(3, name="d3")(h))
    weights = [rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()]
    model.set_weights(weights)
    assert model.layers[0].input == [] and model.layers[0].output is inputs      # an InputLayer's, as Keras's
    extractor = gpu_dl.Model(inputs=model.input, outputs=[layer.output for layer in model.layers])
    assert extractor.output_names == ["features_in", "d1", "d2", "d3"]
    x = rng.standard_normal((5, 6)).astype("float32")
    features = extractor.predict(x, verbose=0)
    numpy.testing.assert_array_equal(features[0], x)
    for got, expected in zip(features[1:], stack_features(weights, x.astype("float64"))):
        numpy.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_sequential_without_input_has_a_graph_once_built(rng):
    declared = gpu_dl.Sequential([layers.Dense(3, input_shape=(5,)), layers.Dense(2)])
    assert declared.inputs[0].shape == (None, 5) and declared.outputs[0].shape == (None, 2)
    later = gpu_dl.Sequential([layers.Dense(3), layers.Dense(2)])
    for what in ("inputs", "outputs", "input", "output"):
        with pytest.raises(AttributeError, match=f"Sequential model '{later.name}' has no defined {what} yet.*"
                                                 r"keras.Input\(shape=...\)"):
            getattr(later, what)
    with pytest.raises(AttributeError, match="The layer .* has never been called and thus has no defined output"):
        later.layers[0].output
    later(rng.standard_normal((4, 5)).astype("float32"))      # built by a call on data
    assert later.inputs[0].shape == (None, 5) and later.layers[0].input is later.inputs[0]
    assert later.layers[1].output is later.outputs[0]
    built = gpu_dl.Sequential([layers.Dense(3), layers.Dense(2)])
    built.build((None, 7))
    assert built.inputs[0].shape == (None, 7) and built.outputs[0].shape == (None, 2)
    # The InputLayer made for the graph is no layer of the model: not among its layers, weights or config.
    assert [type(l).__name__ for l in built.layers] == ["Dense", "Dense"] and len(built.weights) == 4
    assert [entry["class_name"] for entry in built.get_config()["layers"]] == ["InputLayer", "Dense", "Dense"]


def test_add_and_pop_follow_the_graph():
    model = gpu_dl.Sequential([gpu_dl.Input((4,)), layers.Dense(3)])
    first = model.outputs[0]
    model.add(layers.Dense(2))
    assert model.outputs[0].shape == (None, 2) and model.layers[1].input is first
    popped = model.pop()
    assert model.outputs[0] is first
    assert popped.output.shape == (None, 2)     # a popped layer keeps its call, as in Keras
    model.add(layers.Dense(6))
    assert model.outputs[0].shape == (None, 6) and model.layers[-1].input is first
    extractor = gpu_dl.Model(model.inputs, [layer.output for layer in model.layers])
    assert [t.shape for t in extractor.outputs] == [(None, 3), (None, 6)]


def test_first_call_gives_input_and_output():
    dense = layers.Dense(2)
    with pytest.raises(AttributeError, match=r"^The layer dense.* has never been called and thus has no defined "
                                             "input"):
        dense.input
    dense(numpy.ones((3, 4), "float32"))     # a call on arrays records nothing, as in Keras
    with pytest.raises(AttributeError, match="has never been called and thus has no defined output.*arrays"):
        dense.output
    a, b = gpu_dl.Input((4,), name="a"), gpu_dl.Input((4,), name="b")
    ya = dense(a)
    dense(b)
    assert dense.input is a and dense.output is ya     # Keras 3 gives the first call's, however many there are
    merged = layers.Concatenate()
    merged([a, b])
    assert isinstance(merged.input, list) and len(merged.input) == 2
    assert merged.input[0] is a and merged.input[1] is b


def test_nested_sequential_in_the_outer_graph(xp, rng):
    inner = gpu_dl.Sequential([gpu_dl.Input((3,)), layers.Dense(4, activation="relu")])
    outer = gpu_dl.Sequential([gpu_dl.Input((3,)), inner, layers.Dense(2)])
    # Called on the outer model's symbolic tensors, the inner model's input and output are those of that call.
    assert inner.input is outer.inputs[0] and outer.layers[1].input is inner.output
    weights = [rng.standard_normal(w.shape).astype("float32") for w in outer.get_weights()]
    outer.set_weights(weights)
    extractor = gpu_dl.Model(outer.inputs, [layer.output for layer in outer.layers])
    x = rng.standard_normal((5, 3)).astype("float32")
    hidden, out = extractor(xp.asarray(x))
    expected_hidden = relu(x.astype("float64") @ weights[0] + weights[1])
    numpy.testing.assert_allclose(backend.to_numpy(hidden), expected_hidden, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(backend.to_numpy(out), expected_hidden @ weights[2] + weights[3], rtol=1e-5,
                                  atol=1e-5)


def test_a_layer_that_cannot_be_called_on_symbolic_tensors_leaves_no_graph():
    class ArraysOnly(layers.Dense):
        def symbolic_call(self, *args, **kwargs):
            raise NotImplementedError("only arrays")

    model = gpu_dl.Sequential([gpu_dl.Input((3,)), layers.Dense(2), ArraysOnly(2, name="arrays_only")])
    with pytest.raises(AttributeError, match="no defined inputs yet.*layer 'arrays_only' could not be called on "
                                             "symbolic tensors: only arrays"):
        model.inputs
    # The model itself runs as before.
    assert model.predict(numpy.ones((2, 3), "float32"), verbose=0).shape == (2, 2)
