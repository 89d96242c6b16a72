"""Sequential: construction, shapes, summary table, weights in Keras order, freezing."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.models import Sequential


def mlp(**kwargs):
    return Sequential([
        layers.Input(shape=(64,)),
        layers.Dense(32, activation="relu", name="hidden"),
        layers.Dropout(0.5, name="drop"),
        layers.Dense(10, activation="softmax", name="out"),
    ], **kwargs)


def test_list_and_add_build_the_same_model():
    a = mlp()
    b = Sequential(name="added")
    b.add(layers.Dense(32, activation="relu", input_shape=(64,)))
    b.add(layers.Dropout(0.5))
    b.add(layers.Dense(10, activation="softmax"))
    assert a.built and b.built
    assert ([w.shape for w in a.get_weights()] == [w.shape for w in b.get_weights()]
            == [(64, 32), (32,), (32, 10), (10,)])
    assert a.output_shape == b.output_shape == (None, 10)
    assert a.count_params() == 64 * 32 + 32 + 32 * 10 + 10


def test_keras_style_import():
    import gpu_dl as keras
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert model.input_shape == (None, 3)


def test_unbuilt_model_builds_on_first_data():
    model = Sequential([layers.Dense(4), layers.Dense(2)])
    assert not model.built
    y = model(numpy.ones((5, 3), dtype="float32"))
    assert model.built and y.shape == (5, 2)
    assert model.input_shape == (None, 3)


def test_summary_table_lists_shapes_and_counts():
    lines = []
    model = mlp(name="digits")
    model.summary(print_fn=lambda text: lines.extend(text.splitlines()))
    text = "\n".join(lines)
    assert lines[0] == 'Model: "digits"'
    assert "Layer (type)" in text and "Output Shape" in text and "Param #" in text
    row = next(line for line in lines if "hidden (Dense)" in line)
    assert "(None, 32)" in row and "2,080" in row
    assert "(None, 10)" in next(line for line in lines if "out (Dense)" in line)
    assert " Total params: 2,410 (9.41 KB)" in lines
    assert " Trainable params: 2,410 (9.41 KB)" in lines
    assert " Non-trainable params: 0 (0.00 B)" in lines


def test_summary_counts_frozen_layers_as_non_trainable():
    model = mlp()
    model.get_layer("hidden").trainable = False
    lines = []
    model.summary(print_fn=lambda text: lines.extend(text.splitlines()))
    assert " Trainable params: 330 (1.29 KB)" in lines
    assert " Non-trainable params: 2,080 (8.12 KB)" in lines
    assert len(model.trainable_weights) == 2


def test_summary_of_unbuilt_model_marks_layers_unbuilt():
    lines = []
    Sequential([layers.Dense(3, name="d")]).summary(print_fn=lambda text: lines.extend(text.splitlines()))
    assert "0 (unbuilt)" in next(line for line in lines if "d (Dense)" in line)


def test_set_weights_checks_count_and_shapes_before_changing_anything():
    model = mlp()
    before = model.get_weights()
    wrong = [numpy.zeros_like(w) for w in before]
    wrong[3] = numpy.zeros(11)
    with pytest.raises(ValueError, match=r"array 3, for '\w+/out/bias', has shape \(10,\)"):
        model.set_weights(wrong)
    with pytest.raises(ValueError, match="has 4 weight arrays; got 3"):
        model.set_weights(before[:3])
    for b, a in zip(before, model.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    model.set_weights([numpy.ones_like(w) for w in before])
    assert all((w == 1).all() for w in model.get_weights())


def test_add_rejects_non_layers_duplicates_and_late_inputs():
    model = mlp()
    with pytest.raises(TypeError, match="expects a gpu_dl layer"):
        model.add("dense")
    with pytest.raises(ValueError, match="unique names"):
        model.add(layers.Dense(3, name="hidden"))
    with pytest.raises(ValueError, match="must come first"):
        model.add(layers.Input((3,)))
    with pytest.raises(TypeError, match="list of layers"):
        Sequential(layers.Dense(3))


def test_adding_a_layer_that_cannot_build_leaves_model_unchanged():
    model = Sequential([layers.Input((4,)), layers.Dense(3), layers.Flatten()])
    n = len(model.layers)
    with pytest.raises(ValueError):
        model.add(layers.Dense(0))
    assert len(model.layers) == n


def test_config_round_trip_rebuilds_same_architecture():
    model = mlp()
    clone = Sequential.from_config(model.get_config())
    assert [type(l).__name__ for l in clone.layers] == ["Dense", "Dropout", "Dense"]
    assert clone.output_shape == (None, 10)
    assert clone.get_layer("out").activation.name == "softmax"


# ------------------------------------------- sizes the weights do not fix
def _same_weights(model, other):
    other.set_weights(model.get_weights())
    return other


def test_built_model_takes_other_sequence_lengths_and_image_sizes_as_keras_does(xp, rng):
    # the weights fix the features per step and the channels, nothing else: a model built on one
    # length or size predicts on another exactly as a model declared for that one would
    gpu_dl.utils.set_random_seed(3)
    recurrent = Sequential([layers.LSTM(3, return_sequences=True), layers.Dense(2), layers.Flatten()])
    recurrent.predict(rng.standard_normal((4, 5, 2)).astype("float32"), verbose=0)
    x = rng.standard_normal((3, 7, 2)).astype("float32")
    declared = _same_weights(recurrent, Sequential([layers.Input((7, 2)), layers.LSTM(3, return_sequences=True),
                                                    layers.Dense(2), layers.Flatten()]))
    numpy.testing.assert_allclose(recurrent.predict(x, verbose=0), declared.predict(x, verbose=0), rtol=1e-6)
    assert recurrent.predict(x, verbose=0).shape == (3, 14)

    conv = Sequential([layers.Input((9, 9, 2)), layers.Conv2D(3, 3, activation="relu"), layers.MaxPooling2D(),
                       layers.Dropout(0.2), layers.GlobalAveragePooling2D(), layers.Dense(2)])
    x = rng.standard_normal((2, 12, 10, 2)).astype("float32")
    other = _same_weights(conv, Sequential([layers.Input((12, 10, 2)), layers.Conv2D(3, 3, activation="relu"),
                                            layers.MaxPooling2D(), layers.Dropout(0.2),
                                            layers.GlobalAveragePooling2D(), layers.Dense(2)]))
    numpy.testing.assert_allclose(conv.predict(x, verbose=0), other.predict(x, verbose=0), rtol=1e-6)
    conv.compile(optimizer="sgd", loss="mse")
    assert numpy.isfinite(conv.train_on_batch(x, numpy.zeros((2, 2), "float32")))


def test_a_size_no_layer_takes_is_refused_before_any_layer_runs(xp, rng):
    model = Sequential([layers.Input((9, 9, 1)), layers.Conv2D(3, 3), layers.Flatten(), layers.Dense(2, name="head")])
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"expects `x` of shape \(None, 9, 9, 1\).*got \(2, 12, 10, 1\).*"
                                         r"layer 'head' \(Dense\).*expected shape \(None, 147\), got \(None, 240\)"):
        model.fit(numpy.ones((2, 12, 10, 1), "float32"), numpy.ones((2, 2), "float32"), verbose=0)
    with pytest.raises(ValueError, match=r"height window 3 is larger than the padded input"):
        model.predict(numpy.ones((2, 2, 9, 1), "float32"), verbose=0)
    with pytest.raises(ValueError, match=r"built for 1 input channels"):
        model.predict(numpy.ones((2, 9, 9, 2), "float32"), verbose=0)
    for a, b in zip(before, model.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0
