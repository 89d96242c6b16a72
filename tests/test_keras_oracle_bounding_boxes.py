"""gpu_dl.utils.bounding_boxes against Keras 3's keras.utils.bounding_boxes (where Keras is installed, torch
backend): the same random boxes, odd counts, batched and unbatched, give the same results."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from gpu_dl.utils import bounding_boxes as bb  # noqa: E402
from keras_steps import keras_numpy  # noqa: E402

H, W = 37, 53
KB = keras.utils.bounding_boxes


def theirs(x):
    return keras_numpy(keras, x)


def random_xyxy(rng, shape):
    corners = rng.uniform(-5, 60, shape + (2, 2))
    return numpy.concatenate([corners.min(axis=-2), corners.max(axis=-2)], axis=-1).astype("float32")


def test_same_functions_as_keras():
    import gpu_dl
    theirs_names = sorted(n for n in dir(KB) if not n.startswith("_"))
    assert sorted(bb.__all__) == theirs_names
    assert gpu_dl.utils.bounding_boxes is bb and "bounding_boxes" in gpu_dl.utils.__all__


@pytest.mark.parametrize("shape", [(5,), (3, 7)])
@pytest.mark.parametrize("target", bb.SUPPORTED_FORMATS)
@pytest.mark.parametrize("source", bb.SUPPORTED_FORMATS)
def test_convert_format(rng, source, target, shape):
    boxes = rng.uniform(0, 1, shape + (4,)).astype("float32") * 50
    ours = bb.convert_format(boxes, source, target, height=H, width=W)
    want = theirs(KB.convert_format(boxes.copy(), source, target, height=H, width=W))
    assert ours.dtype == want.dtype
    numpy.testing.assert_allclose(ours, want, rtol=1e-6, atol=1e-6)


def test_clip_crop_pad(rng):
    boxes = random_xyxy(rng, (3, 7))
    labels = rng.integers(0, 5, (3, 7))
    ours = bb.clip_to_image_size({"boxes": boxes, "labels": labels}, height=H, width=W)
    want = theirs(KB.clip_to_image_size({"boxes": keras.ops.convert_to_tensor(boxes),
                                         "labels": keras.ops.convert_to_tensor(labels)}, height=H, width=W))
    numpy.testing.assert_array_equal(ours["boxes"], want["boxes"])
    numpy.testing.assert_array_equal(ours["labels"], want["labels"])
    assert (ours["labels"] == -1).any()
    rel = boxes / 40
    numpy.testing.assert_array_equal(
        bb.clip_to_image_size({"boxes": rel}, bounding_box_format="rel_xyxy")["boxes"],
        theirs(KB.clip_to_image_size({"boxes": keras.ops.convert_to_tensor(rel)},
                                     bounding_box_format="rel_xyxy")["boxes"]))
    numpy.testing.assert_array_equal(bb.crop(boxes, 3, 5, 20, 30),
                                     theirs(KB.crop(keras.ops.convert_to_tensor(boxes), 3, 5, 20, 30)))
    numpy.testing.assert_array_equal(bb.pad(boxes, 3, 5), theirs(KB.pad(keras.ops.convert_to_tensor(boxes), 3, 5)))


def test_affine_transform(rng):
    boxes = random_xyxy(rng, (3, 7))
    args = [rng.uniform(-40, 40, 3), rng.uniform(-0.2, 0.2, 3), rng.uniform(-0.2, 0.2, 3),
            rng.uniform(0.7, 1.3, 3), rng.uniform(-10, 10, 3), rng.uniform(-10, 10, 3)]
    args = [a.astype("float32") for a in args]
    ours = bb.affine_transform(boxes, *args, H, W)
    want = theirs(KB.affine_transform(keras.ops.convert_to_tensor(boxes),
                                      *(keras.ops.convert_to_tensor(a) for a in args), H, W))
    assert ours.dtype == want.dtype == numpy.float32
    numpy.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("fmt", ["xyxy", "yxyx", "xywh", "center_xywh", "rel_xyxy"])
@pytest.mark.parametrize("batched", [(False, False), (True, True), (True, False)])
def test_compute_iou(rng, fmt, batched):
    a, b = random_xyxy(rng, (5,)), random_xyxy(rng, (3,))
    a[1] = -2.0                                             # a background box for the masking
    if batched[0]:
        a = numpy.stack([a, random_xyxy(rng, (5,))])
    if batched[1]:
        b = numpy.stack([b, random_xyxy(rng, (3,))])
    a, b = (bb.convert_format(v, "xyxy", fmt, height=H, width=W) for v in (a, b))
    shape = (H, W, 3)
    for masking in (False, True):
        ours = bb.compute_iou(a, b, fmt, use_masking=masking, mask_val=-3, image_shape=shape)
        # Keras's masking fails on batched boxes1 with unbatched boxes2; for it, boxes2 repeated per image
        b_keras = numpy.stack([b, b]) if masking and batched == (True, False) else b
        want = theirs(KB.compute_iou(keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b_keras), fmt,
                                     use_masking=masking, mask_val=-3, image_shape=shape))
        assert ours.shape == want.shape
        numpy.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fmt", ["xyxy", "center_yxhw"])
def test_compute_ciou(rng, fmt):
    a, b = random_xyxy(rng, (2, 7)), random_xyxy(rng, (2, 7))
    b[0, :3] = a[0, :3]                                     # some overlaps
    a, b = (bb.convert_format(v, "xyxy", fmt) for v in (a, b))
    ours = bb.compute_ciou(a, b, fmt)
    want = theirs(KB.compute_ciou(keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b), fmt))
    numpy.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("encoding", ["center_yxhw", "center_xywh"])
@pytest.mark.parametrize("variance", [None, [0.1, 0.1, 0.2, 0.2]])
def test_deltas(rng, encoding, variance):
    anchors = random_xyxy(rng, (7,)) + numpy.array([0, 0, 1, 1], dtype="float32")
    boxes = random_xyxy(rng, (3, 7)) + numpy.array([0, 0, 1, 1], dtype="float32")
    rel_boxes = bb.convert_format(boxes, "xyxy", "rel_xywh", height=H, width=W)
    kw = dict(variance=variance, image_shape=(H, W, 3))
    ours = bb.encode_box_to_deltas(anchors, rel_boxes, "xyxy", "rel_xywh", encoding, **kw)
    want = theirs(KB.encode_box_to_deltas(keras.ops.convert_to_tensor(anchors), keras.ops.convert_to_tensor(rel_boxes),
                                          "xyxy", "rel_xywh", encoding, **kw))
    numpy.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-5)
    ours = bb.decode_deltas_to_boxes(anchors, ours, "xyxy", "center_xywh", encoding, **kw)
    want = theirs(KB.decode_deltas_to_boxes(keras.ops.convert_to_tensor(anchors), keras.ops.convert_to_tensor(want),
                                            "xyxy", "center_xywh", encoding, **kw))
    numpy.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-4)
