"""BatchNormalization and LayerNormalization against Keras 3 itself (where Keras is installed).

Same weights and inputs give the same outputs in training and inference and
the same moving statistics after several training calls (masked steps
included); files move both ways; small CNNs take the same training steps,
with a frozen batch norm too.
"""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend, layers  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


def random_weights(layer, rng):
    """Random values for a built layer's weights, positive moving variances."""
    return [numpy.abs(v) + 0.5 if "variance" in w.path else v
            for w, v in ((w, rng.standard_normal(tuple(w.shape)).astype("float32")) for w in layer.weights)]


@pytest.mark.parametrize("shape,kwargs", [
    ((5, 17), {}),
    ((1, 3), {"momentum": 0.5}),
    ((3, 17, 5), {"axis": 1, "epsilon": 0.01}),
    ((4, 6, 3), {"center": False}),
    ((3, 5, 1, 17), {"scale": False, "momentum": 0.8}),
    ((2, 5, 3, 7), {"axis": 1}),
    ((3, 4, 5, 2), {"axis": -2}),
])
def test_batch_norm_matches_keras_in_training_and_inference(rng, shape, kwargs):
    ours, theirs = layers.BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    ours.build(shape)
    theirs.build(shape)
    weights = random_weights(theirs, rng)
    ours.set_weights(weights)
    theirs.set_weights(weights)
    for step, training in enumerate([True, True, False, True, True, False]):
        x = (rng.standard_normal(shape) * 2 + 0.5).astype("float32")
        y_theirs = keras.ops.convert_to_numpy(theirs(x, training=training))
        numpy.testing.assert_allclose(ours(x, training=training), y_theirs, rtol=1e-5, atol=2e-5,
                                      err_msg=f"call {step}, training={training}")
    # The moving statistics after four training calls.
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert [w.name for w in ours.weights] == [w.name for w in theirs.weights]


@pytest.mark.parametrize("shape,kwargs", [
    ((5, 17), {}),
    ((3, 17, 5), {"epsilon": 0.1}),
    ((3, 5, 1, 17), {"axis": [1, 2, 3]}),
    ((2, 5, 3, 7), {"axis": [-2, -1], "center": False}),
    ((4, 6), {"scale": False}),
    ((3, 4, 5), {"rms_scaling": True}),
])
@pytest.mark.filterwarnings("ignore:.*rms_scaling")
def test_layer_norm_matches_keras(rng, shape, kwargs):
    # Keras's torch backend normalizes over the input's trailing axes (torch's layer_norm) whatever `axis`
    # says, so only trailing axes are compared here; other axes are checked against NumPy's formula.
    ours, theirs = layers.LayerNormalization(**kwargs), keras.layers.LayerNormalization(**kwargs)
    ours.build(shape)
    theirs.build(shape)
    weights = random_weights(theirs, rng)
    ours.set_weights(weights)
    theirs.set_weights(weights)
    x = (rng.standard_normal(shape) * 3 + 1).astype("float32")
    numpy.testing.assert_allclose(ours(x), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=2e-5)
    assert ours.get_config()["axis"] == theirs.get_config()["axis"]


def test_masked_steps_are_left_out_as_keras_leaves_them(rng):
    def stack(lib):
        return [lib.Input((6, 3)), lib.layers.Masking(0.0), lib.layers.BatchNormalization(momentum=0.7)]
    ours, theirs = gpu_dl.Sequential(stack(gpu_dl)), keras.Sequential(stack(keras))
    for step in range(3):
        x = rng.standard_normal((4, 6, 3)).astype("float32")
        x[1, 4:] = x[3, 1 + step:] = 0
        y_theirs = keras.ops.convert_to_numpy(theirs(x, training=True))
        numpy.testing.assert_allclose(backend.to_numpy(ours(x, training=True)), y_theirs, rtol=1e-5, atol=2e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _cnn(lib, frozen=False):
    L = lib.layers
    # No bias before a trained batch norm: its gradient is zero but for rounding, which Adam's first steps
    # (of about the learning rate whatever the gradient's size) would turn into differences of 1e-3.
    model = lib.Sequential([lib.Input((7, 6, 2)), L.Conv2D(4, 3, padding="same", use_bias=False),
                            L.BatchNormalization(beta_constraint="non_neg"),
                            L.ReLU(), L.MaxPooling2D(), L.Conv2D(3, 2, use_bias=False),
                            L.BatchNormalization(axis=-1, momentum=0.9, center=False, gamma_regularizer="l2"),
                            L.Flatten(),
                            L.Dense(6), L.LayerNormalization(), L.Dense(5, activation="softmax")])
    model.layers[1].trainable = not frozen
    return model


@pytest.mark.parametrize("frozen", [False, True], ids=["trained", "frozen"])
def test_cnn_with_batch_norm_takes_keras_s_training_steps(rng, frozen):
    """Losses, weights and moving statistics after Adam steps; a frozen batch norm (trainable=False) runs
    in inference mode in Keras 3's training, and its statistics stay."""
    backend.set_random_seed(4)
    ours, theirs = _cnn(gpu_dl, frozen), _cnn(keras, frozen)
    if frozen:
        weights = ours.get_weights()
        weights[1:5] = random_weights(theirs.layers[1], rng)
        ours.set_weights(weights)
    before = ours.layers[1].get_weights()
    assert_training_steps_match(keras, ours, theirs, rng, (7, 6, 2), classes=5, batch=6)
    after = ours.layers[1].get_weights()
    assert all(numpy.array_equal(a, b) for a, b in zip(before, after)) == frozen


def test_summary_counts_non_trainable_params_as_keras_does():
    ours, theirs = _cnn(gpu_dl), _cnn(keras)
    lines, their_lines = [], []
    ours.summary(print_fn=lambda text: lines.extend(text.splitlines()))
    theirs.summary(print_fn=lambda line, **kwargs: their_lines.extend(line.splitlines()))

    def totals(text):
        return [line.strip() for line in text if "params:" in line]
    assert totals(lines) == totals(their_lines)
    assert "Non-trainable params: 14 (56.00 B)" in totals(lines)


# ------------------------------------------------------------------------------------ files
def _trained_keras_cnn(rng):
    keras.utils.set_random_seed(0)
    theirs = _cnn(keras)
    theirs.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    for layer in theirs.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights(random_weights(layer, rng))
    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((12, 7, 6, 2)).astype("float32")
    theirs.fit(x, rng.integers(0, 5, 12), epochs=2, batch_size=4, verbose=0)
    return theirs, x


def test_a_keras_file_with_batch_norm_loads_and_predicts_the_same(rng, tmp_path):
    theirs, x = _trained_keras_cnn(rng)
    theirs.save(tmp_path / "k.keras")
    theirs.save_weights(tmp_path / "k.weights.h5")
    ours = gpu_dl.models.load_model(tmp_path / "k.keras")
    assert [type(l).__name__ for l in ours.layers] == [type(l).__name__ for l in theirs.layers]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    expected = theirs.predict(x, verbose=0)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    again = gpu_dl.models.load_model(tmp_path / "k.keras", compile=False)
    for v in again.weights:
        v.assign(numpy.zeros(v.shape))
    again.load_weights(tmp_path / "k.weights.h5")
    numpy.testing.assert_allclose(again.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


def test_keras_loads_a_gpu_dl_file_with_batch_norm(rng, tmp_path):
    backend.set_random_seed(2)
    ours = _cnn(gpu_dl)
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((12, 7, 6, 2)).astype("float32")
    ours.fit(x, rng.integers(0, 5, 12), epochs=3, batch_size=4, verbose=0)
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert int(theirs.optimizer.iterations) == ours.optimizer.iterations == 9
    ours.save_weights(tmp_path / "g.weights.h5")
    fresh = _cnn(keras)
    fresh.load_weights(tmp_path / "g.weights.h5")
    numpy.testing.assert_allclose(fresh.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
