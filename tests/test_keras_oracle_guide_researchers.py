"""The Keras parts of the guide "Introduction to Keras for researchers" (tests/guide_researcher_programs.py) against
Keras itself: the same weights tracked, the same outputs, losses and training steps from the same weights."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

import guide_researcher_programs as guide  # noqa: E402
from keras_steps import summary_rows  # noqa: E402


@pytest.fixture(autouse=True)
def cpu(on_cpu):
    """gpu_dl on NumPy, as Keras runs here on the CPU."""


def as_array(x):
    return keras.ops.convert_to_numpy(x) if "torch" in type(x).__module__ else numpy.asarray(x)


@pytest.mark.parametrize("lib", [gpu_dl, keras], ids=["gpu_dl", "keras"])
def test_variables_made_in_init_are_the_layers_weights(lib):
    variable_linear, linear = guide.linear_classes(lib)
    layer = variable_linear(units=4, input_dim=2)
    assert tuple(layer(lib.ops.ones((2, 2))).shape) == (2, 4)
    assert layer.weights == [layer.w, layer.b] and layer.trainable_weights == [layer.w, layer.b]
    # named as Keras names a variable without a name, outside any layer's scope
    assert all(w.name.startswith("variable") and w.path == w.name for w in layer.weights)
    assert as_array(layer.b).tolist() == [0.0] * 4 and layer.w.dtype == "float32"

    built = linear(4)
    built(lib.ops.ones((2, 2)))
    assert [tuple(w.shape) for w in built.weights] == [(2, 4), (4,)]

    total = guide.compute_sum_class(lib)(2)
    x = lib.ops.ones((2, 2))
    assert as_array(total(x)).tolist() == [2.0, 2.0]
    assert as_array(total(x)).tolist() == [4.0, 4.0]
    assert total.weights == [total.total] and total.non_trainable_weights == [total.total]
    assert total.trainable_weights == []

    class MLP(lib.layers.Layer):
        def __init__(self):
            super().__init__()
            self.linear_1, self.linear_2, self.linear_3 = linear(32), linear(32), linear(10)

        def call(self, inputs):
            x = lib.activations.relu(self.linear_1(inputs))
            return self.linear_3(lib.activations.relu(self.linear_2(x)))
    mlp = MLP()
    assert tuple(mlp(lib.ops.ones((3, 64))).shape) == (3, 10) and len(mlp.weights) == 6


def test_variable_arguments_as_keras_takes_them():
    for lib in (gpu_dl, keras):
        v = lib.Variable("ones", shape=(2, 3), dtype="float64", trainable=False, name="w")
        assert (tuple(v.shape), str(v.dtype).split(".")[-1], v.trainable, v.name) == ((2, 3), "float64", False, "w")
        assert lib.Variable(numpy.zeros((2,), "float64")).dtype == "float64"
        assert lib.Variable(numpy.zeros((2,), "float64"), dtype="float32").dtype == "float32"
        assert lib.Variable(2.5).dtype == "float32" and lib.Variable(3, trainable=False).dtype == "int32"
        with pytest.raises(ValueError, match="the `shape` argument should be specified"):
            lib.Variable(lib.initializers.Zeros())
        with pytest.raises(ValueError, match="cannot contain|without '/'"):
            lib.Variable(1.0, name="a/b")
    # gpu_dl's own order still works: the array, then the name
    assert gpu_dl.Variable(numpy.zeros(3), "v").name == "v"


def test_the_sparse_mlp_trains_on_its_added_loss_as_keras():
    ours, theirs = guide.sparse_mlp_class(gpu_dl)(), guide.sparse_mlp_class(keras)()
    for model in (ours, theirs):
        model(numpy.ones((10, 10), "float32"))
        model(numpy.ones((10, 10), "float32"))
        assert len(model.losses) == 1         # the losses of the last forward pass only
    numpy.testing.assert_allclose(float(ours.losses[0]), 0.01 * float(
        numpy.maximum(ours.linear_1(numpy.ones((10, 10), "float32")), 0).sum()), rtol=1e-5)
    rng = numpy.random.default_rng(0)
    weights = [rng.standard_normal(w.shape).astype("float32") * 0.1 for w in theirs.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    batches = [(rng.random((8, 10)).astype("float32"), rng.integers(0, 10, 8)) for _ in range(4)]
    ours_losses = guide.train_with_layer_losses(gpu_dl, ours, batches)
    theirs_losses = guide.train_with_layer_losses(keras, theirs, batches)
    numpy.testing.assert_allclose(ours_losses, theirs_losses, rtol=2e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_loss_must_include_the_added_losses_once():
    mlp = guide.sparse_mlp_class(gpu_dl)()
    x, y = numpy.ones((4, 10), "float32"), numpy.arange(4)
    loss_fn = gpu_dl.losses.SparseCategoricalCrossentropy(from_logits=True)
    loss = loss_fn(y, mlp(x, training=True))
    with pytest.raises(ValueError, match="the loss must include them once, as it weighs them by 2"):
        (loss + 2 * sum(mlp.losses)).backward()
    loss = loss_fn(y, mlp(x, training=True))
    with pytest.raises(ValueError, match="the loss must include them once, as it does not"):
        loss.backward()


def test_the_f1_score_metric():
    for lib in (gpu_dl, keras):
        m = guide.f1_score_class(lib)()
        m.update_state(lib.ops.convert_to_tensor([0, 1, 0, 0]), lib.ops.convert_to_tensor([0.3, 0.5, 0.8, 0.9]))
        assert float(m.result()) == pytest.approx(0.5)
        m.update_state(lib.ops.convert_to_tensor([1, 1, 1, 1]), lib.ops.convert_to_tensor([0.1, 0.7, 0.6, 0.0]))
        assert float(m.result()) == pytest.approx(0.6)
        m.reset_state()
        assert float(as_array(m.true_positives)) == 0.0


def test_training_and_inference_mode_and_the_functional_api(monkeypatch):
    (_, ours_mlp), (_, theirs_mlp) = guide.dropout_classes(gpu_dl), guide.dropout_classes(keras)
    ours, theirs = ours_mlp(), theirs_mlp()
    x = numpy.random.default_rng(1).random((2, 2)).astype("float32")
    theirs(x)
    ours(x)
    ours.set_weights(theirs.get_weights())
    numpy.testing.assert_allclose(ours(x, training=False), as_array(theirs(x, training=False)), rtol=1e-6,
                                  atol=1e-7)
    dropped = numpy.asarray(ours(x, training=True))
    assert dropped.shape == (2, 10) and not numpy.allclose(dropped, ours(x, training=False))

    models = []
    for lib in (gpu_dl, keras):
        lib.backend.clear_session()
        dropout, _ = guide.dropout_classes(lib)
        linear = guide.linear_classes(lib)[1]
        inputs = lib.Input(shape=(16,), dtype="float32")
        outputs = linear(10)(dropout(0.5)(linear(32)(inputs)))
        model = lib.Model(inputs, outputs)
        assert len(model.weights) == 4
        assert tuple(model(lib.ops.ones((2, 16))).shape) == (2, 10)
        assert tuple(model(lib.ops.ones((2, 16)), training=True).shape) == (2, 10)
        models.append(model)
    assert summary_rows(models[0], monkeypatch) == summary_rows(models[1], monkeypatch)


def test_weight_penalties_among_the_layer_losses_train_their_weights_as_keras():
    """``layer.losses`` lists the penalties of the weights' regularizers too: added to the loss, they train them."""
    def make(lib):
        sparse = guide.sparse_mlp_class(lib)

        class Penalized(sparse):
            def __init__(self):
                super().__init__()
                self.head = lib.layers.Dense(10, kernel_regularizer=lib.regularizers.L2(0.1))

            def call(self, inputs):
                return self.head(super().call(inputs))
        return Penalized()
    ours, theirs = make(gpu_dl), make(keras)
    rng = numpy.random.default_rng(2)
    batches = [(rng.random((8, 10)).astype("float32"), rng.integers(0, 10, 8)) for _ in range(3)]
    for model in (ours, theirs):
        model(batches[0][0])
    weights = [rng.standard_normal(w.shape).astype("float32") * 0.1 for w in theirs.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    ours(batches[0][0], training=True)
    assert len(ours.losses) == 2
    numpy.testing.assert_allclose(ours_losses := guide.train_with_layer_losses(gpu_dl, ours, batches),
                                  guide.train_with_layer_losses(keras, theirs, batches), rtol=2e-5)
    assert len(ours_losses) == 3
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_the_custom_model_with_its_optimizer_made_in_init_trains_as_keras():
    ours, theirs = guide.custom_model_class(gpu_dl), guide.custom_model_class(keras)
    rng = numpy.random.default_rng(4)
    weights = [rng.standard_normal(w.shape).astype("float32") * 0.1 for w in theirs.get_weights()]
    x, y = rng.random((64, 784)).astype("float32"), rng.integers(0, 10, 64)
    histories = []
    for model in (ours, theirs):
        model.set_weights(weights)
        model.compile()
        histories.append(model.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0).history)
    assert list(histories[0]) == list(histories[1]) == ["accuracy", "loss"]
    for key in histories[1]:
        numpy.testing.assert_allclose(histories[0][key], histories[1][key], rtol=2e-5, err_msg=key)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
