"""Layer.input, Layer.output and a Sequential's inputs and outputs against Keras 3 itself (where Keras is installed):
the feature extractors of Keras's guides predict the same from the same weights, the graphs have Keras's shapes,
and a layer never called on symbolic tensors raises Keras's message."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402


def to_numpy(value):
    return value.detach().cpu().numpy() if hasattr(value, "detach") else gpu_dl.backend.to_numpy(value)


def same_weights(ours, theirs, rng, scale=0.3):
    weights = [rng.standard_normal(w.shape).astype("float32") * scale for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)


def test_sequential_feature_extraction_of_the_guide():
    # Keras's "The Sequential model" guide, at a smaller input size.
    def model(lib):
        layers = lib.layers
        return lib.Sequential([lib.Input(shape=(40, 40, 3)), layers.Conv2D(8, 5, strides=2, activation="relu"),
                               layers.Conv2D(8, 3, activation="relu"),
                               layers.Conv2D(8, 3, activation="relu", name="my_intermediate_layer"),
                               layers.Conv2D(4, 3)])

    ours, theirs = model(gpu_dl), model(keras)
    rng = numpy.random.default_rng(0)
    same_weights(ours, theirs, rng)
    assert [t.shape for t in ours.inputs] == [tuple(t.shape) for t in theirs.inputs]
    assert [t.shape for t in ours.outputs] == [tuple(t.shape) for t in theirs.outputs]
    assert [l.output.shape for l in ours.layers] == [tuple(l.output.shape) for l in theirs.layers]
    x = rng.standard_normal((2, 40, 40, 3)).astype("float32")
    extractors = [lib.Model(inputs=m.inputs, outputs=[layer.output for layer in m.layers])
                  for lib, m in ((gpu_dl, ours), (keras, theirs))]
    for got, expected in zip(extractors[0](x), extractors[1](x)):
        numpy.testing.assert_allclose(to_numpy(got), to_numpy(expected), rtol=1e-4, atol=1e-4)
    intermediate = [lib.Model(inputs=m.inputs, outputs=m.get_layer(name="my_intermediate_layer").output)
                    for lib, m in ((gpu_dl, ours), (keras, theirs))]
    numpy.testing.assert_allclose(intermediate[0].predict(x, verbose=0), intermediate[1].predict(x, verbose=0),
                                  rtol=1e-4, atol=1e-4)


def test_vgg19_feature_extraction():
    # Keras's guide: keras.Model(inputs=vgg19.input, outputs=[layer.output for layer in vgg19.layers]).
    ours = gpu_dl.applications.VGG19(weights=None, include_top=False, input_shape=(32, 32, 3))
    theirs = keras.applications.VGG19(weights=None, include_top=False, input_shape=(32, 32, 3))
    rng = numpy.random.default_rng(1)
    same_weights(ours, theirs, rng, scale=0.05)
    extractors = [lib.Model(inputs=m.input, outputs=[layer.output for layer in m.layers])
                  for lib, m in ((gpu_dl, ours), (keras, theirs))]
    # The input layer's name carries each library's count of auto-named inputs so far, which other tests move.
    names = [e.output_names for e in extractors]
    assert names[0][1:] == names[1][1:]
    assert names[0][0].startswith("input_layer") and names[1][0].startswith("input_layer")
    x = rng.random((2, 32, 32, 3)).astype("float32")
    features = [e.predict(x, verbose=0) for e in extractors]
    assert len(features[0]) == len(features[1]) == len(theirs.layers)
    for got, expected in zip(*features):
        numpy.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3 * max(1.0, numpy.abs(expected).max()))


@pytest.mark.parametrize("how", ["input_shape", "build", "call"])
def test_sequential_inputs_once_the_input_shape_is_known(how):
    shapes = []
    for lib in (gpu_dl, keras):
        layers = lib.layers
        if how == "input_shape":
            model = lib.Sequential([layers.Dense(3, input_shape=(5,)), layers.Dense(2)])
        else:
            model = lib.Sequential([layers.Dense(3), layers.Dense(2)])
            with pytest.raises(AttributeError):
                model.inputs
            if how == "build":
                model.build((None, 5))
            else:
                model(numpy.ones((4, 5), "float32"))
        shapes.append(([tuple(t.shape[1:]) for t in model.inputs], [tuple(t.shape[1:]) for t in model.outputs],
                       [tuple(l.output.shape[1:]) for l in model.layers], model.layers[0].input is model.inputs[0],
                       model.layers[1].input is model.layers[0].output))
    assert shapes[0] == shapes[1] == ([(5,)], [(2,)], [(3,), (2,)], True, True)


def test_first_call_and_never_called_as_keras():
    from keras.src.ops.operation import Operation
    for lib in (keras, gpu_dl):       # Keras's message first
        dense = lib.layers.Dense(2, name="probe")
        if lib is keras:
            # On the torch backend, Keras's message is hidden behind torch.nn.Module's __getattr__; Keras's own
            # property raises it.
            with pytest.raises(AttributeError) as caught:
                Operation._get_node_attribute_at_index(dense, 0, "output_tensors", "output")
            message = str(caught.value)
        else:
            with pytest.raises(AttributeError) as caught:
                dense.output
            assert str(caught.value).startswith(message)
        a, b = lib.Input((3,)), lib.Input((3,))
        first = dense(a)
        dense(b)
        assert dense.output is first and dense.input is a
    assert message == "The layer probe has never been called and thus has no defined output."
