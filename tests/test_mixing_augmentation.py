"""MixUp, CutMix and RandomErasing: what they do to a batch, seeds, inference, gradients, bad arguments.
(Keras 3 itself: test_keras_oracle_color_augmentation.py.)"""
import numpy
import pytest

from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient


def images(rng, shape, low=0.0, high=255.0, dtype=numpy.float32):
    return rng.uniform(low, high, shape).astype(dtype)


def run(layer, xp, x, training=True):
    return to_numpy(layer(xp.asarray(x), training=training))


def test_mixup_mixes_each_image_with_its_partner(xp, rng):
    x = images(rng, (6, 3, 4, 2))
    layer = layers.MixUp(alpha=0.4, seed=3)
    y = run(layer, xp, x)
    mix = layer.last_mix
    w = mix["mix_weight"].reshape(-1, 1, 1, 1)
    assert sorted(mix["permutation_order"]) == list(range(6)) and ((w >= 0) & (w <= 1)).all()
    numpy.testing.assert_allclose(y, w * x + (1 - w) * x[mix["permutation_order"]], rtol=1e-5, atol=1e-3)
    one = images(rng, (3, 4, 2))
    numpy.testing.assert_allclose(to_numpy(layers.MixUp(seed=1)(xp.asarray(one))), one, rtol=1e-6)


def test_cutmix_pastes_one_box_of_the_partner(xp, rng):
    x = images(rng, (5, 9, 7, 2))
    layer = layers.CutMix(seed=4)
    y = run(layer, xp, x)
    partner = x[layer.last_mix["permutation_order"]]
    for n in range(5):
        pasted = (y[n] == partner[n]) & (y[n] != x[n])
        assert ((y[n] == x[n]) | pasted).all()
        rows, columns = numpy.nonzero(pasted[..., 0])
        if rows.size:      # a rectangle, the same in every channel
            box = numpy.zeros(pasted.shape[:2], bool)
            box[rows.min():rows.max() + 1, columns.min():columns.max() + 1] = True
            assert ((y[n] == partner[n]).all(axis=-1) | ~box).all()
    one = images(rng, (4, 4, 3))
    numpy.testing.assert_array_equal(to_numpy(layers.CutMix(seed=1)(xp.asarray(one))), one)   # Keras: unchanged


def test_random_erasing_fills_a_box(xp, rng):
    x = images(rng, (4, 6, 5, 3), 10, 200)
    # scale (1, 1): the whole image; factor (1, 1): every image
    numpy.testing.assert_array_equal(run(layers.RandomErasing((1, 1), (1, 1), fill_value=7), xp, x), 7.0)
    y = run(layers.RandomErasing((1, 1), (1, 1), fill_value=[1, 2, 300]), xp, x)
    numpy.testing.assert_array_equal(y, numpy.broadcast_to(numpy.array([1, 2, 255.0]), x.shape))
    y = run(layers.RandomErasing((1, 1), (1, 1), value_range=(0, 1)), xp, x / 255)
    assert (y >= 0).all() and (y <= 1).all() and (y == 0).mean() > 0.3      # clipped Gaussian noise
    numpy.testing.assert_array_equal(run(layers.RandomErasing(0.0), xp, x), x)
    y = run(layers.RandomErasing((1, 1), (0.2, 0.2), fill_value=0, seed=2), xp, x)
    erased = (y == 0).all(axis=-1)
    for n in range(4):
        rows, columns = numpy.nonzero(erased[n])
        assert 0 < rows.size <= 4 * 4 and erased[n][rows.min():rows.max() + 1, columns.min():columns.max() + 1].all()


@pytest.mark.parametrize("make", [lambda **kw: layers.MixUp(**kw), lambda **kw: layers.CutMix(**kw),
                                  lambda **kw: layers.RandomErasing(**kw)])
def test_inactive_at_inference_reproducible_and_channels_first(xp, rng, make):
    x = images(rng, (6, 5, 4, 3))
    a, b, c = make(seed=11), make(seed=11), make(seed=12)
    numpy.testing.assert_array_equal(run(a, xp, x, training=False), x)
    # Keras's MixUp draws outside training too (its generator moves there); the others draw nothing
    assert a.generator.state.numpy()[1] == (2 if isinstance(a, layers.MixUp) else 0)
    run(b, xp, x, training=False)
    outs = [[run(layer, xp, x) for _ in range(3)] for layer in (a, b, c)]
    for ya, yb in zip(outs[0], outs[1]):
        numpy.testing.assert_array_equal(ya, yb)
    assert not all(numpy.array_equal(ya, yc) for ya, yc in zip(outs[0], outs[2]))
    assert not numpy.array_equal(outs[0][0], outs[0][1])
    # (RandomErasing's noise is drawn in the input's layout, as Keras draws it: a fill value here)
    fixed = {"fill_value": 5.0} if isinstance(a, layers.RandomErasing) else {}
    y = run(make(seed=11, data_format="channels_first", **fixed), xp, x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    numpy.testing.assert_allclose(y, run(make(seed=11, **fixed), xp, x), rtol=1e-6)


@pytest.mark.parametrize("make", [lambda: layers.MixUp(0.5, seed=2, dtype="float64"),
                                  lambda: layers.CutMix(seed=2, dtype="float64", data_format="channels_first"),
                                  lambda: layers.RandomErasing(0.7, (0.1, 0.5), seed=2, dtype="float64")])
def test_backward_is_the_gradient(xp, rng, make):
    layer = make()
    x = xp.asarray(rng.standard_normal((5, 4, 6, 4)))
    start = layer.generator.state.numpy()      # the draws of the call below, made again in f
    y = layer(x, training=True)
    w = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(w)

    def f(v):
        layer.generator.state.assign(start)
        return (layer(v, training=True) * w).sum()

    assert_gradient(f, x, dx, rng, what=type(layer).__name__)
    layer.input_gradient_wanted = False
    assert layer.backward(w) is None


def test_dicts_mix_their_labels_and_bad_arguments_are_refused_naming_the_layer():
    rng = numpy.random.default_rng(2)
    data = {"images": rng.uniform(0, 1, (5, 6, 7, 3)).astype(numpy.float32),
            "labels": numpy.eye(5, dtype=numpy.float32),
            "segmentation_masks": rng.integers(0, 3, (5, 6, 7, 1)).astype(numpy.float32)}
    for cls in (layers.MixUp, layers.CutMix):
        layer = cls(name="m", seed=4)
        out = layer(data)
        w, p = layer.last_mix["mix_weight"].reshape(-1, 1), layer.last_mix["permutation_order"]
        assert sorted(p) == list(range(5)) and not numpy.array_equal(p, numpy.arange(5))
        numpy.testing.assert_allclose(out["labels"], w * numpy.eye(5) + (1 - w) * numpy.eye(5)[p], rtol=1e-6)
        numpy.testing.assert_allclose(out["labels"].sum(axis=1), 1, rtol=1e-6)
        numpy.testing.assert_array_equal(out["images"], cls(name="m", seed=4)(data["images"]))
        if cls is layers.CutMix:      # the masks' box is the images' box
            moved = out["images"] != data["images"]
            numpy.testing.assert_array_equal(out["segmentation_masks"][moved[..., :1]],
                                             data["segmentation_masks"][p][moved[..., :1]])
            with pytest.raises(ValueError, match="CutMix layer 'm': does not transform bounding boxes"):
                layer({**data, "bounding_boxes": {"boxes": numpy.zeros((5, 1, 4)), "labels": numpy.zeros((5, 1))}})
        numpy.testing.assert_array_equal(layer(data, training=False)["labels"], data["labels"])
    boxes = rng.uniform(0, 5, (5, 2, 4)).astype(numpy.float32)
    layer = layers.MixUp(seed=4, bounding_box_format="xyxy")
    out = layer({**data, "bounding_boxes": {"boxes": boxes, "labels": numpy.arange(10).reshape(5, 2)}})
    p = layer.last_mix["permutation_order"]
    numpy.testing.assert_array_equal(out["bounding_boxes"]["boxes"], numpy.concatenate([boxes, boxes[p]], axis=1))
    numpy.testing.assert_array_equal(out["bounding_boxes"]["labels"][:, 2:], numpy.arange(10).reshape(5, 2)[p])
    for bad in (0, -1, "a", None, float("inf")):
        with pytest.raises(ValueError, match="MixUp layer 'm': alpha must be a positive number"):
            layers.MixUp(bad, name="m")
    for bad in (1.5, -0.2, (2, 3)):
        with pytest.raises(ValueError, match="CutMix layer 'm': factor"):
            layers.CutMix(bad, name="m")
        with pytest.raises(ValueError, match="RandomErasing layer 'm': factor"):
            layers.RandomErasing(bad, name="m")
        with pytest.raises(ValueError, match="RandomErasing layer 'm': scale"):
            layers.RandomErasing(scale=bad, name="m")
    for bad in ((1, 2), "red", [1, 2, "x"]):
        with pytest.raises(ValueError, match="RandomErasing layer 'm': fill_value"):
            layers.RandomErasing(fill_value=bad, name="m")
    with pytest.raises(ValueError, match="RandomErasing layer 'm': value_range"):
        layers.RandomErasing(value_range=(1, 1), name="m")


def test_config_round_trip():
    from gpu_dl.models.keras_config import _layer_classes
    table = _layer_classes()
    for layer in (layers.MixUp(0.3, seed=1), layers.CutMix((0.2, 0.7), data_format="channels_first"),
                  layers.RandomErasing(0.5, 0.2, fill_value=[1, 2, 3], value_range=(0, 1), seed=3)):
        config = layer.get_config()
        config.pop("name")
        again = table[type(layer).__name__].from_config(config).get_config()
        again.pop("name")
        assert again == config
