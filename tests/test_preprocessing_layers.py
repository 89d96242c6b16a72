"""Rescaling and the random image layers: exact transforms, fill modes, seeds, gradients, Keras 3 itself."""
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.layers.preprocessing import affine_resample, affine_resample_backward
from gradcheck import assert_gradient
from keras_affine import affine_tolerance, rounded_positions

RANDOM_LAYERS = [
    lambda **kw: layers.RandomFlip(**kw),
    lambda **kw: layers.RandomTranslation(0.3, 0.2, **kw),
    lambda **kw: layers.RandomRotation(0.2, **kw),
    lambda **kw: layers.RandomZoom(0.3, **kw),
]


def images(rng, shape=(4, 6, 7, 3)):
    return rng.standard_normal(shape).astype(numpy.float32)


@pytest.mark.parametrize("make", RANDOM_LAYERS)
def test_identity_at_inference_and_augments_in_training(xp, rng, make):
    x = xp.asarray(images(rng))
    layer = make(seed=1)
    numpy.testing.assert_array_equal(to_numpy(layer(x, training=False)), to_numpy(x))
    changed = [not numpy.array_equal(to_numpy(layer(x, training=True)), to_numpy(x)) for _ in range(4)]
    assert any(changed)
    # As in Keras, a direct call that leaves ``training`` out augments.
    assert any(not numpy.array_equal(to_numpy(layer(x)), to_numpy(x)) for _ in range(4))


@pytest.mark.parametrize("make", RANDOM_LAYERS)
def test_same_seed_same_sequence(xp, rng, make):
    x = xp.asarray(images(rng, (8, 6, 7, 2)))
    a, b, c = make(seed=42), make(seed=42), make(seed=43)
    outs_a = [to_numpy(a(x, training=True)) for _ in range(3)]
    outs_b = [to_numpy(b(x, training=True)) for _ in range(3)]
    outs_c = [to_numpy(c(x, training=True)) for _ in range(3)]
    for ya, yb in zip(outs_a, outs_b):
        numpy.testing.assert_array_equal(ya, yb)
    assert not all(numpy.array_equal(ya, yc) for ya, yc in zip(outs_a, outs_c))
    assert not numpy.array_equal(outs_a[0], outs_a[1])


@pytest.mark.parametrize("mode,flip", [
    ("horizontal", lambda a: a[:, ::-1, :]),
    ("vertical", lambda a: a[::-1, :, :]),
    ("horizontal_and_vertical", lambda a: a[::-1, ::-1, :]),
])
def test_flip_is_exact_and_its_backward_flips_back(xp, rng, mode, flip):
    x_host = images(rng, (16, 5, 4, 2))
    layer = layers.RandomFlip(mode, seed=3)
    y = to_numpy(layer(xp.asarray(x_host), training=True))
    flipped = [not numpy.array_equal(y[i], x_host[i]) for i in range(16)]
    assert 0 < sum(flipped) < 16
    for i in range(16):
        numpy.testing.assert_array_equal(y[i], flip(x_host[i]) if flipped[i] else x_host[i])
    dy = images(rng, (16, 5, 4, 2))
    dx = to_numpy(layer.backward(xp.asarray(dy)))
    for i in range(16):
        numpy.testing.assert_array_equal(dx[i], flip(dy[i]) if flipped[i] else dy[i])
    layer.input_gradient_wanted = False
    assert layer.backward(xp.asarray(dy)) is None


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_integer_translation_with_constant_fill_is_a_shift(xp, rng, interpolation):
    x_host = images(rng, (3, 8, 8, 2))
    # height 0.25 * 8 = 2 pixels down, width -0.125 * 8 = 1 pixel left
    layer = layers.RandomTranslation((0.25, 0.25), (-0.125, -0.125), fill_mode="constant",
                                     interpolation=interpolation, fill_value=-7.0)
    y = to_numpy(layer(xp.asarray(x_host), training=True))
    expected = numpy.full_like(x_host, -7.0)
    expected[:, 2:, :7] = x_host[:, :6, 1:]
    numpy.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_half_turn_of_a_square_image_is_a_double_flip(xp, rng, interpolation):
    x_host = images(rng, (2, 7, 7, 3))
    for factor in ((0.5, 0.5), (-0.5, -0.5)):
        y = to_numpy(layers.RandomRotation(factor, interpolation=interpolation)(xp.asarray(x_host), training=True))
        numpy.testing.assert_allclose(y, x_host[:, ::-1, ::-1, :], rtol=0, atol=1e-5)


@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
def test_zero_zoom_and_zero_rotation_are_the_identity(xp, rng, fill_mode):
    x_host = images(rng, (2, 5, 9, 3))
    x = xp.asarray(x_host)
    for layer in (layers.RandomZoom(0.0, fill_mode=fill_mode), layers.RandomZoom((0, 0), (0, 0), fill_mode=fill_mode),
                  layers.RandomRotation(0.0, fill_mode=fill_mode),
                  layers.RandomTranslation(0.0, 0.0, fill_mode=fill_mode)):
        numpy.testing.assert_array_equal(to_numpy(layer(x, training=True)), x_host)


def shift_right(n, pixels):
    """Matrices that read input column x - pixels for output column x."""
    m = numpy.zeros((n, 2, 3))
    m[:, 0, 0] = m[:, 1, 1] = 1.0
    m[:, 0, 2] = -pixels
    return m


@pytest.mark.parametrize("pixels,fill_mode,expected", [
    # a b c d = 1 2 3 4; k = 9
    (3, "reflect", [3, 2, 1, 1]),     # (d c b a | a b c d | d c b a)
    (6, "reflect", [3, 4, 4, 3]),
    (-2, "reflect", [3, 4, 4, 3]),
    (3, "wrap", [2, 3, 4, 1]),        # (a b c d | a b c d | a b c d)
    (-5, "wrap", [2, 3, 4, 1]),
    (3, "nearest", [1, 1, 1, 1]),     # (a a a a | a b c d | d d d d)
    (-2, "nearest", [3, 4, 4, 4]),
    (3, "constant", [9, 9, 9, 1]),    # (k k k k | a b c d | k k k k)
    (-0.5, "constant", [1.5, 2.5, 3.5, 6.5]),   # bilinear halfway, the last pixel blends with k
    (0.5, "reflect", [1, 1.5, 2.5, 3.5]),
    (0.5, "wrap", [2.5, 1.5, 2.5, 3.5]),
])
def test_fill_modes_against_hand_written_rows(xp, pixels, fill_mode, expected):
    row = xp.asarray(numpy.array([1, 2, 3, 4], numpy.float64).reshape(1, 1, 4, 1))
    y = affine_resample(row, shift_right(1, pixels), fill_mode=fill_mode, interpolation="bilinear", fill_value=9.0)
    numpy.testing.assert_allclose(to_numpy(y).ravel(), expected, rtol=0, atol=1e-12)


def test_resampler_keeps_integer_images_integer(xp):
    x = xp.asarray(numpy.arange(12, dtype=numpy.uint8).reshape(1, 3, 4, 1))
    y = affine_resample(x, shift_right(1, 0.5), fill_mode="nearest")
    assert y.dtype == numpy.uint8
    numpy.testing.assert_array_equal(to_numpy(y)[0, :, :, 0], [[0, 0, 2, 2], [4, 4, 6, 6], [8, 8, 10, 10]])
    # round half to even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 4.5 -> 4, ...


@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_resampler_backward_is_the_gradient(xp, rng, fill_mode, interpolation):
    x = xp.asarray(rng.standard_normal((2, 5, 6, 3)))
    angle = numpy.array([0.3, -1.1])
    m = numpy.zeros((2, 2, 3))
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = (1.2 * numpy.cos(angle), -numpy.sin(angle), numpy.sin(angle),
                                                      0.8 * numpy.cos(angle))
    m[:, 0, 2], m[:, 1, 2] = [1.3, -2.2], [0.4, 3.1]
    w = xp.asarray(rng.standard_normal((2, 5, 6, 3)))
    dx = affine_resample_backward(w, m, fill_mode, interpolation)
    assert_gradient(lambda v: (affine_resample(v, m, fill_mode, interpolation, fill_value=2.0) * w).sum(), x, dx, rng,
                    what=f"affine_resample ({fill_mode}, {interpolation})")


@pytest.mark.parametrize("make", RANDOM_LAYERS[1:])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_affine_layer_backward_is_the_adjoint(xp, rng, make, data_format):
    layer = make(seed=4, dtype="float64", fill_mode="constant", data_format=data_format)
    x = xp.asarray(rng.standard_normal((3, 5, 6, 4)))
    y = layer(x, training=True)
    dy = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(dy)
    assert dx.shape == x.shape
    # y = A x (the fill value is 0), so <A x, dy> = <x, A^T dy>.
    numpy.testing.assert_allclose(float((y * dy).sum()), float((x * dx).sum()), rtol=1e-10)
    layer.input_gradient_wanted = False
    assert layer.backward(dy) is None


def test_channels_first_matches_channels_last(xp, rng):
    x_host = images(rng, (3, 6, 5, 2))
    for make in RANDOM_LAYERS:
        last = to_numpy(make(seed=9)(xp.asarray(x_host), training=True))
        first = to_numpy(make(seed=9, data_format="channels_first")(xp.asarray(x_host.transpose(0, 3, 1, 2)),
                                                                    training=True))
        numpy.testing.assert_allclose(first.transpose(0, 2, 3, 1), last, rtol=0, atol=1e-6)


def test_one_image_without_batch_axis(xp, rng):
    x_host = images(rng, (1, 6, 5, 2))
    batched = to_numpy(layers.RandomRotation(0.3, seed=2)(xp.asarray(x_host), training=True))
    layer = layers.RandomRotation(0.3, seed=2)
    single = layer(xp.asarray(x_host[0]), training=True)
    assert single.shape == (6, 5, 2)
    numpy.testing.assert_array_equal(to_numpy(single), batched[0])
    assert layer.backward(xp.ones((6, 5, 2), dtype="float32")).shape == (6, 5, 2)


def test_rescaling(xp, rng):
    x_host = rng.integers(0, 256, (2, 3, 3, 3)).astype(numpy.float32)
    layer = layers.Rescaling(1.0 / 255, offset=-0.5)
    for training in (False, True):
        numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(x_host), training=training)),
                                      x_host * numpy.float32(1 / 255) - 0.5, rtol=1e-6)
    dy = xp.asarray(rng.standard_normal((2, 3, 3, 3)).astype(numpy.float32))
    numpy.testing.assert_allclose(to_numpy(layer.backward(dy)), to_numpy(dy) / 255, rtol=1e-6)
    per_channel = layers.Rescaling([1.0, 2.0, 3.0], offset=[0.0, 1.0, -1.0])
    numpy.testing.assert_allclose(to_numpy(per_channel(xp.asarray(x_host))),
                                  x_host * [1, 2, 3] + [0, 1, -1], rtol=1e-6)
    config = per_channel.get_config()
    assert config["scale"] == [1.0, 2.0, 3.0] and config["offset"] == [0.0, 1.0, -1.0]
    with pytest.raises(ValueError, match="Rescaling layer 'r'.*scale"):
        layers.Rescaling("big", name="r")


def test_rescaling_takes_any_shape_its_scale_broadcasts_against(xp, rng):
    # As Keras: one layer rescales a batch, then one image, then a flat vector.
    layer = layers.Rescaling(0.5, offset=1.0)
    for shape in ((2, 5, 4, 3), (5, 4, 3), (7,)):
        x_host = rng.standard_normal(shape).astype(numpy.float32)
        numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(x_host))), x_host * 0.5 + 1.0, rtol=1e-6)
    per_channel = layers.Rescaling([1.0, 2.0, 3.0], name="rc")
    for shape in ((2, 5, 4, 3), (4, 3)):
        x_host = rng.standard_normal(shape).astype(numpy.float32)
        numpy.testing.assert_allclose(to_numpy(per_channel(xp.asarray(x_host))), x_host * [1, 2, 3], rtol=1e-6)
    with pytest.raises(ValueError, match=r"Rescaling layer 'rc': scale of shape \(3,\) does not broadcast"):
        per_channel(xp.zeros((2, 5, 4, 2), dtype="float32"))


def test_bad_arguments_name_the_layer():
    bad_factors = [1.5, -1.01, (0.1,), (0.1, 0.2, 0.3), (-2.0, 0.1), "0.2", None, True, float("nan")]
    for bad in bad_factors:
        with pytest.raises(ValueError, match="RandomRotation layer 'rot'.*factor"):
            layers.RandomRotation(bad, name="rot")
        with pytest.raises(ValueError, match="RandomTranslation layer 'tr'.*height_factor"):
            layers.RandomTranslation(bad, 0.1, name="tr")
        with pytest.raises(ValueError, match="RandomTranslation layer 'tr'.*width_factor"):
            layers.RandomTranslation(0.1, bad, name="tr")
    for bad in (-1.0, (-1.0, 0.2), 1.2):
        with pytest.raises(ValueError, match=r"RandomZoom layer 'z'.*height_factor.*\(-1.0, 1.0\]"):
            layers.RandomZoom(bad, name="z")
    with pytest.raises(ValueError, match="RandomZoom layer 'z'.*width_factor"):
        layers.RandomZoom(0.2, -1.0, name="z")
    with pytest.raises(ValueError, match="RandomZoom layer 'z'.*fill_mode.*'mirror'"):
        layers.RandomZoom(0.2, fill_mode="mirror", name="z")
    with pytest.raises(ValueError, match="RandomRotation layer 'rot'.*interpolation.*'bicubic'"):
        layers.RandomRotation(0.2, interpolation="bicubic", name="rot")
    with pytest.raises(ValueError, match="RandomFlip layer 'f'.*mode.*'diagonal'"):
        layers.RandomFlip("diagonal", name="f")
    for bad_seed in (1.5, "3", True):
        with pytest.raises(ValueError, match="RandomFlip layer 'f': SeedGenerator: argument `seed` must be an integer"):
            layers.RandomFlip(seed=bad_seed, name="f")
    # As in Keras, a negative seed is taken as its 32 bits.
    assert layers.RandomFlip(seed=-1).generator.state.numpy().tolist() == [2**32 - 1, 0]
    with pytest.raises(ValueError, match="RandomFlip layer 'g' expects inputs of rank 4"):
        layers.RandomFlip(name="g")(numpy.zeros((2, 3), numpy.float32), training=True)
    with pytest.raises(ValueError, match="matrices must have shape"):
        affine_resample(numpy.zeros((2, 3, 3, 1)), numpy.zeros((3, 2, 3)))
    with pytest.raises(RuntimeError, match="training=True"):
        layer = layers.RandomZoom(0.1)
        layer(numpy.zeros((1, 3, 3, 1), numpy.float32), training=False)
        layer.backward(numpy.zeros((1, 3, 3, 1), numpy.float32))


def test_config_round_trip():
    for layer in (layers.RandomFlip("vertical", seed=3), layers.RandomTranslation((-0.1, 0.2), 0.3, fill_mode="wrap"),
                  layers.RandomRotation(0.25, interpolation="nearest", fill_value=2.0),
                  layers.RandomZoom(0.1, (-0.2, 0.3), data_format="channels_first"), layers.Rescaling(0.5, 1.0)):
        config = layer.get_config()
        config.pop("name")
        again = type(layer).from_config(config).get_config()
        again.pop("name")
        assert again == config


def test_augmentation_layers_train_first_in_a_model(rng):
    gpu_dl.backend.set_random_seed(0)
    model = gpu_dl.Sequential([layers.Input((6, 6, 1)), layers.Rescaling(1 / 255.0), layers.RandomFlip(seed=1),
                               layers.RandomRotation(0.1, seed=2), layers.RandomZoom(0.1, seed=3),
                               layers.RandomTranslation(0.1, 0.1, seed=4), layers.Flatten(),
                               layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.integers(0, 256, (16, 6, 6, 1)).astype(numpy.float32)
    y = rng.integers(0, 3, 16)
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert numpy.all(numpy.isfinite(history.history["loss"]))
    # inference is deterministic: the random layers pass their input through
    numpy.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


# ------------------------------------------------------------- Keras 3 itself
@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_fixed_transforms_match_keras(xp, rng, keras, fill_mode, interpolation, data_format):
    shape = (2, 7, 9, 3) if data_format == "channels_last" else (2, 3, 7, 9)
    x_host = images(rng, shape)
    common = dict(fill_mode=fill_mode, interpolation=interpolation, fill_value=0.5, data_format=data_format)
    pairs = [("RandomTranslation", ((0.23, 0.23), (-0.31, -0.31))),
             ("RandomTranslation", ((-0.6, -0.6), (0.9, 0.9))),
             ("RandomRotation", ((0.13, 0.13),)),
             ("RandomRotation", ((-0.37, -0.37),)),
             ("RandomZoom", ((0.4, 0.4), (-0.3, -0.3))),
             ("RandomZoom", ((-0.5, -0.5),))]
    # To the bit: the matrices are Keras's float32 arithmetic (for these two angles PyTorch's float32 cos and sin
    # are the correctly rounded ones gpu_dl takes), and the resampling repeats Keras's, where Keras's positions
    # are the correctly rounded float32 ones. Keras's own positions round as the machine's BLAS does
    # (tests/keras_affine.py): within affine_tolerance of them.
    last = x_host if data_format == "channels_last" else x_host.transpose(0, 2, 3, 1)
    n, h, w = last.shape[:3]
    values = [last.min(), last.max(), common["fill_value"]]
    for name, args in pairs:
        ours = to_numpy(getattr(layers, name)(*args, **common)(xp.asarray(x_host), training=True))
        with rounded_positions():
            theirs = keras.ops.convert_to_numpy(getattr(keras.layers, name)(*args, **common)(x_host, training=True))
        numpy.testing.assert_array_equal(ours, theirs, err_msg=f"{name}{args}")
        stock = keras.ops.convert_to_numpy(getattr(keras.layers, name)(*args, **common)(x_host, training=True))
        matrices = getattr(layers, name)(*args, **common)._matrices(n, h, w)
        numpy.testing.assert_allclose(ours, stock, rtol=0, err_msg=f"{name}{args}",
                                      atol=affine_tolerance(matrices, h, w, values, interpolation))


def test_rescaling_matches_keras(rng, keras):
    x = images(rng)
    for args in ((1 / 127.5, -1.0), ([0.5, 2.0, -1.0], 0.25)):
        numpy.testing.assert_allclose(layers.Rescaling(*args)(x),
                                      keras.ops.convert_to_numpy(keras.layers.Rescaling(*args)(x)), rtol=1e-6)


def test_a_keras_saved_model_with_these_layers_loads(rng, keras, tmp_path):
    # Keras writes an array scale as a '__numpy__' entry and factors as given (numbers, lists).
    model = keras.Sequential([
        keras.Input((6, 5, 3)),
        keras.layers.Rescaling(numpy.array([0.5, 1.0, 2.0], numpy.float32), offset=-1.0),
        keras.layers.RandomFlip("horizontal", seed=3),
        keras.layers.RandomTranslation((-0.2, 0.1), 0.3, fill_mode="constant", fill_value=1.5),
        keras.layers.RandomRotation(0.1, interpolation="nearest", seed=5),
        keras.layers.RandomZoom(0.2, (-0.1, 0.3), data_format="channels_last"),
        keras.layers.Flatten(), keras.layers.Dense(4)])
    model.save(tmp_path / "augment.keras")
    ours = gpu_dl.models.load_model(str(tmp_path / "augment.keras"))
    assert [type(layer).__name__ for layer in ours.layers][:5] == [
        "Rescaling", "RandomFlip", "RandomTranslation", "RandomRotation", "RandomZoom"]
    numpy.testing.assert_array_equal(numpy.asarray(ours.layers[0].scale), [0.5, 1.0, 2.0])
    assert ours.layers[2].fill_value == 1.5 and ours.layers[3].interpolation == "nearest"
    assert ours.layers[4].width_range == (-0.1, 0.3)
    x = images(rng, (3, 6, 5, 3)) * 100
    expected = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
    # Each output sums 90 float32 products of size ~100 in another order than Keras's: rounding of about 1e-7 of
    # the outputs' size, which an output that cancels to near zero shows as a large relative difference.
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6 * abs(expected).max())


def test_a_model_called_without_training_augments_as_keras_does(xp):
    # Keras: each layer takes its own default, so the random image layers augment and Dropout does not
    model = gpu_dl.Sequential([gpu_dl.layers.Input((4, 4, 1)), gpu_dl.layers.RandomFlip("horizontal", seed=1),
                               gpu_dl.layers.Dropout(0.9, seed=2), gpu_dl.layers.Flatten()])
    x = xp.asarray(numpy.arange(32, dtype="float32").reshape(2, 4, 4, 1))
    flipped = to_numpy(x)[:, :, ::-1].reshape(2, 16)
    outputs = [to_numpy(model(x)) for _ in range(8)]
    for y in outputs:       # no dropout: each image is itself or its mirror image
        for row, image, mirror in zip(y, to_numpy(x).reshape(2, 16), flipped):
            assert (row == image).all() or (row == mirror).all()
    assert any((y != to_numpy(x).reshape(2, 16)).any() for y in outputs)   # and some were flipped
    numpy.testing.assert_array_equal(to_numpy(model(x, training=False)), to_numpy(x).reshape(2, 16))
