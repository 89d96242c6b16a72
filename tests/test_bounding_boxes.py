"""gpu_dl.utils.bounding_boxes on NumPy and CuPy arrays: conversions against plain NumPy expectations (every
format, round trips, batched and unbatched, odd counts), clipping with its labels, crop and pad, affine maps,
IoU and CIoU, delta encoding, and Keras's errors. Keras itself is the oracle in
tests/test_keras_oracle_bounding_boxes.py."""
import numpy
import pytest

from gpu_dl.backend import to_numpy
from gpu_dl.utils import bounding_boxes as bb

FORMATS = bb.SUPPORTED_FORMATS
H, W = 37, 53


def random_xyxy(rng, shape):
    corners = rng.uniform(-5, 60, shape + (2, 2))
    low, high = corners.min(axis=-2), corners.max(axis=-2)
    return numpy.concatenate([low, high], axis=-1).astype("float32")


def expected_from_xyxy(b, fmt):
    """The plain NumPy meaning of each format (module docstring of gpu_dl.utils.bounding_boxes)."""
    x1, y1, x2, y2 = (b[..., i] for i in range(4))
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    base = fmt[4:] if fmt.startswith("rel_") else fmt
    values = {"xyxy": (x1, y1, x2, y2), "yxyx": (y1, x1, y2, x2), "xywh": (x1, y1, w, h),
              "center_xywh": (cx, cy, w, h), "center_yxhw": (cy, cx, h, w)}[base]
    out = numpy.stack(values, axis=-1).astype("float64")
    if fmt.startswith("rel_"):
        scale = {"xyxy": (W, H, W, H), "yxyx": (H, W, H, W), "xywh": (W, H, W, H), "center_xywh": (W, H, W, H)}[base]
        out = out / numpy.array(scale)
    return out


@pytest.mark.parametrize("shape", [(5,), (3, 7), (1,)])
@pytest.mark.parametrize("fmt", FORMATS)
def test_convert_format_from_and_to_xyxy(xp, rng, fmt, shape):
    boxes = random_xyxy(rng, shape)
    out = bb.convert_format(xp.asarray(boxes), "xyxy", fmt, height=H, width=W)
    assert type(out) is type(xp.asarray(boxes)) and out.dtype == numpy.float32 and out.shape == boxes.shape + ()
    numpy.testing.assert_allclose(to_numpy(out), expected_from_xyxy(boxes, fmt), rtol=1e-5, atol=1e-4)
    back = bb.convert_format(out, fmt.upper(), "XYXY", height=H, width=W)     # formats are case-insensitive
    numpy.testing.assert_allclose(to_numpy(back), boxes, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("source", FORMATS)
@pytest.mark.parametrize("target", FORMATS)
def test_convert_format_between_every_pair(rng, source, target):
    boxes = random_xyxy(rng, (2, 5))
    given = expected_from_xyxy(boxes, source).astype("float32")
    out = bb.convert_format(given, source, target, height=H, width=W, dtype="float64")
    assert out.dtype == numpy.float64
    numpy.testing.assert_allclose(out, expected_from_xyxy(boxes, target), rtol=1e-5, atol=1e-4)


def test_convert_format_takes_a_dict_lists_and_refuses_bad_input():
    given = {"boxes": numpy.array([[10, 20, 30, 40]]), "labels": numpy.array([3])}
    out = bb.convert_format(given, "xyxy", "xywh")
    numpy.testing.assert_array_equal(out["boxes"], [[10, 20, 20, 20]])
    numpy.testing.assert_array_equal(out["labels"], [3])
    numpy.testing.assert_array_equal(bb.convert_format([[1, 2, 3, 4]], "xyxy", "yxyx"), [[2, 1, 4, 3]])
    with pytest.raises(ValueError, match="last dimension of 4"):
        bb.convert_format(numpy.zeros((3, 5)), "xyxy", "xywh")
    with pytest.raises(ValueError, match="Supported formats"):
        bb.convert_format(numpy.zeros((3, 4)), "xyxy", "corners")
    with pytest.raises(ValueError, match="must receive `height` and `width`"):
        bb.convert_format(numpy.zeros((3, 4)), "xyxy", "rel_xyxy", height=4)


def test_clip_to_image_size_clips_and_marks_empty_boxes(xp):
    boxes = numpy.array([[[-10, -20, 150, 160], [50, 40, 70, 80], [130, 10, 140, 20]]], dtype="float32")
    labels = numpy.array([[0, 1, 2]])
    out = bb.clip_to_image_size({"boxes": xp.asarray(boxes), "labels": xp.asarray(labels)}, height=100, width=120)
    numpy.testing.assert_array_equal(to_numpy(out["boxes"]), [[[0, 0, 120, 100], [50, 40, 70, 80],
                                                               [120, 10, 120, 20]]])
    numpy.testing.assert_array_equal(to_numpy(out["labels"]), [[0, 1, -1]])       # zero area after clipping
    rel = bb.clip_to_image_size({"boxes": xp.asarray(boxes[0] / 100)}, bounding_box_format="rel_xyxy")
    numpy.testing.assert_allclose(to_numpy(rel["boxes"]), numpy.clip(boxes[0] / 100, 0, 1))
    assert "labels" not in rel
    with pytest.raises(ValueError, match="`height` and `width` must be set"):
        bb.clip_to_image_size({"boxes": boxes}, height=3)
    with pytest.raises(NotImplementedError, match="xyxy"):
        bb.clip_to_image_size({"boxes": boxes}, 3, 3, bounding_box_format="xywh")


def test_crop_and_pad(xp):
    boxes = xp.asarray(numpy.array([[10, 20, 50, 60], [70, 80, 100, 120]], dtype="float32"))
    numpy.testing.assert_array_equal(to_numpy(bb.crop(boxes, top=10, left=20, height=40, width=30)),
                                     [[0, 10, 30, 40], [30, 40, 30, 40]])
    numpy.testing.assert_array_equal(to_numpy(bb.crop(boxes, 10, 20, None, None)),
                                     [[0, 10, 30, 50], [50, 70, 80, 110]])
    numpy.testing.assert_array_equal(to_numpy(bb.pad(boxes[None], top=3, left=4)),
                                     [[[14, 23, 54, 63], [74, 83, 104, 123]]])
    for f in (bb.crop, bb.pad):
        with pytest.raises(NotImplementedError, match="xyxy"):
            f(boxes, 1, 1, 2, 2, bounding_box_format="yxyx")


def test_affine_transform_translation_scale_and_quarter_turn(xp, rng):
    boxes = random_xyxy(rng, (3, 5))
    cx, cy = 0.5 * (W - 1), 0.5 * (H - 1)
    zeros, ones = numpy.zeros(3), numpy.ones(3)
    tx, ty, scale = numpy.array([0.1, -0.2, 0.0]), numpy.array([0.0, 0.3, -0.1]), numpy.array([1.0, 0.5, 2.0])
    out = bb.affine_transform(xp.asarray(boxes), *(xp.asarray(v) for v in (zeros, tx, ty, ones, zeros, zeros)),
                              H, W)
    assert out.dtype == numpy.float64 and out.shape == (3, 5, 4)
    shift = numpy.stack([tx * (W - 1), ty * (H - 1)] * 2, axis=-1)[:, None]
    numpy.testing.assert_allclose(to_numpy(out), boxes + shift, rtol=1e-6, atol=1e-4)
    out = bb.affine_transform(xp.asarray(boxes), *(xp.asarray(v) for v in (zeros, zeros, zeros, scale, zeros,
                                                                            zeros)), H, W)
    centre = numpy.array([cx, cy, cx, cy])
    numpy.testing.assert_allclose(to_numpy(out), (boxes - centre) * scale[:, None, None] + centre, rtol=1e-6,
                                  atol=1e-4)
    # a quarter turn of 90 degrees: (x, y) -> (y - cy + cx, cx + cy - x), so the box's corners swap roles
    one = bb.affine_transform(xp.asarray(boxes[0]), 90.0, 0.0, 0.0, 1.0, 0.0, 0.0, H, W)
    assert one.dtype == numpy.float32 and one.shape == (5, 4)           # Python numbers: Keras's float32
    x1, y1, x2, y2 = (boxes[0][:, i] for i in range(4))
    want = numpy.stack([y1 - cy + cx, cx + cy - x2, y2 - cy + cx, cx + cy - x1], axis=-1)
    numpy.testing.assert_allclose(to_numpy(one), want, rtol=1e-5, atol=1e-3)
    with pytest.raises(NotImplementedError, match="xyxy"):
        bb.affine_transform(boxes, zeros, zeros, zeros, ones, zeros, zeros, H, W, bounding_box_format="yxyx")


def test_iou_of_known_boxes_batched_and_unbatched(xp):
    a = numpy.array([[0, 0, 10, 10], [5, 5, 15, 15], [-1, -1, -1, -1]], dtype="float32")
    b = numpy.array([[0, 0, 10, 10], [0, 0, 5, 20]], dtype="float32")
    inter = numpy.array([[100, 50], [25, 0], [0, 0]], dtype="float64")
    union = numpy.array([[100, 150], [175, 200], [200, 100]], dtype="float64")
    want = inter / (union + 1e-7)
    got = bb.compute_iou(xp.asarray(a), xp.asarray(b), "xyxy")
    numpy.testing.assert_allclose(to_numpy(got), want, rtol=1e-6)
    batched = bb.compute_iou(xp.asarray(numpy.stack([a, a])), xp.asarray(b), "xyxy")
    assert batched.shape == (2, 3, 2)
    numpy.testing.assert_allclose(to_numpy(batched)[1], want, rtol=1e-6)
    masked = bb.compute_iou(xp.asarray(a), xp.asarray(b), "xyxy", use_masking=True, mask_val=-7)
    numpy.testing.assert_allclose(to_numpy(masked), numpy.where([[0], [0], [1]], -7, want), rtol=1e-6)
    with pytest.raises(ValueError, match="expects boxes1 to be batched"):
        bb.compute_iou(numpy.zeros(4), b, "xyxy")
    with pytest.raises(ValueError, match="`image_shape` argument must be provided"):
        bb.compute_iou(a, b, "rel_xyxy")


def test_ciou_equals_iou_for_equal_boxes_and_drops_with_distance(xp):
    a = xp.asarray(numpy.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype="float32"))
    b = xp.asarray(numpy.array([[0, 0, 10, 10], [20, 0, 30, 10]], dtype="float32"))
    got = to_numpy(bb.compute_ciou(a, b, "xyxy"))
    # disjoint equal squares: IoU 0, v 0, centre distance 20^2 over the enclosing diagonal 30^2 + 10^2
    numpy.testing.assert_allclose(got, [1.0, -400 / 1000], rtol=1e-5)
    with pytest.raises(ValueError, match="relative"):
        bb.compute_ciou(a, b, "rel_xyxy", image_shape=(4, 4, 3))


@pytest.mark.parametrize("encoding", ["center_yxhw", "center_xywh"])
def test_deltas_round_trip_and_their_meaning(xp, rng, encoding):
    anchors = random_xyxy(rng, (7,)) + numpy.array([0, 0, 1, 1], dtype="float32")
    boxes = random_xyxy(rng, (2, 7)) + numpy.array([0, 0, 1, 1], dtype="float32")
    variance = [0.1, 0.1, 0.2, 0.2]
    deltas = bb.encode_box_to_deltas(xp.asarray(anchors), xp.asarray(boxes), "xyxy", "xyxy", encoding, variance)
    a, b = expected_from_xyxy(anchors, "center_xywh"), expected_from_xyxy(boxes, "center_xywh")
    want = numpy.concatenate([(b[..., :2] - a[..., :2]) / a[..., 2:], numpy.log(b[..., 2:] / a[..., 2:])], -1)
    if encoding == "center_yxhw":
        want = want[..., [1, 0, 3, 2]]
    numpy.testing.assert_allclose(to_numpy(deltas), want / numpy.array(variance), rtol=1e-4, atol=1e-4)
    back = bb.decode_deltas_to_boxes(xp.asarray(anchors), deltas, "xyxy", "xywh", encoding, variance)
    numpy.testing.assert_allclose(to_numpy(back), expected_from_xyxy(boxes, "xywh"), rtol=1e-4, atol=1e-3)
    levels = bb.decode_deltas_to_boxes({"p3": xp.asarray(anchors)}, {"p3": deltas}, "xyxy", "xyxy", encoding,
                                       variance)
    numpy.testing.assert_allclose(to_numpy(levels["p3"]), boxes, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="`variance` must be length 4"):
        bb.encode_box_to_deltas(anchors, boxes, "xyxy", "xyxy", variance=[1, 2])
    with pytest.raises(ValueError, match="`encoding_format` should be one of"):
        bb.encode_box_to_deltas(anchors, boxes, "xyxy", "xyxy", encoding_format="xyxy")
    with pytest.raises(ValueError, match="`encoded_format` should be"):
        bb.decode_deltas_to_boxes(anchors, boxes, "xyxy", "xyxy", encoded_format="xyxy")
