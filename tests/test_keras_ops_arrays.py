"""Keras's array ops (``gpu_dl.ops.moveaxis``, ``kron``, ``depth_to_space``, ``unfold``, ``rearrange``, ...): on
arrays against NumPy, in functional models (outputs against NumPy, gradients against float64 finite differences,
saving and loading), dtypes and shapes as Keras gives them, the constants, what they refuse, and a composite layer
using them in its call."""
import re

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers, ops
from gpu_dl.backend import array_module, to_numpy
from gpu_dl.models.saving import model_config, model_from_config
from keras_ops_harness import assert_input_gradients, assert_trains, assert_weight_gradients, fitting_shape, model_of, \
    op_case_tests, positive_and_signed

N = 5
MATRIX = numpy.linspace(-1.0, 1.0, 20).reshape(5, 4)
KRON = numpy.linspace(0.5, 1.5, 6).reshape(1, 2, 3)


# ------------------------------------------------------------------ plain NumPy references
def _depth_to_space(x, s):
    """channels_last: out[n, h * s + i, w * s + j, c] = x[n, h, w, (i * s + j) * C + c]."""
    n, h, w, cs = x.shape
    c = cs // (s * s)
    nn, hh, ww, cc = numpy.indices((n, h * s, w * s, c))
    return x[nn, hh // s, ww // s, ((hh % s) * s + ww % s) * c + cc]


def _depth_to_space_first(x, s):
    """channels_first: out[n, c, h * s + i, w * s + j] = x[n, c * s * s + i * s + j, h, w]."""
    n, cs, h, w = x.shape
    c = cs // (s * s)
    nn, cc, hh, ww = numpy.indices((n, c, h * s, w * s))
    return x[nn, cc * s * s + (hh % s) * s + ww % s, hh // s, ww // s]


def _unfold(x, k, d=1, p=0, s=1):
    n, c, h, w = x.shape
    padded = numpy.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    oh, ow = (h + 2 * p - d * (k - 1) - 1) // s + 1, (w + 2 * p - d * (k - 1) - 1) // s + 1
    out = numpy.zeros((n, c, k, k, oh, ow))
    for i in range(k):
        for j in range(k):
            for y in range(oh):
                for z in range(ow):
                    out[:, :, i, j, y, z] = padded[:, :, y * s + i * d, z * s + j * d]
    return out.reshape(n, c * k * k, oh * ow)


def _fold(cols, size, k, d=1, p=0, s=1):
    n = cols.shape[0]
    h, w = size
    oh, ow = (h + 2 * p - d * (k - 1) - 1) // s + 1, (w + 2 * p - d * (k - 1) - 1) // s + 1
    cols = cols.reshape(n, -1, k, k, oh, ow)
    out = numpy.zeros((n, cols.shape[1], h + 2 * p, w + 2 * p))
    for i in range(k):
        for j in range(k):
            for y in range(oh):
                for z in range(ow):
                    out[:, :, y * s + i * d, z * s + j * d] += cols[:, :, i, j, y, z]
    return out[:, :, p:p + h, p:p + w]


def _cdist(x, y):
    return numpy.sqrt(((x[..., :, None, :] - y[..., None, :, :]) ** 2).sum(-1))


def _windows(x, length, stride):
    return numpy.lib.stride_tricks.sliding_window_view(x, length, axis=-1)[..., ::stride, :]


def _padded(v):
    """2-vectors as 3-vectors of z = 0 (how cross takes them)."""
    return numpy.concatenate([v, numpy.zeros(v.shape[:-1] + (1,))], axis=-1)


def _images(b):
    return ops.reshape(b, (-1, 2, 2, 3))


# (id, the expression on a (N, 3, 4) positive and b (N, 3, 4) signed, written once with gpu_dl.ops for arrays and
# symbolic tensors alike; what NumPy makes of it)
CASES = [
    # joining and splitting
    ("append_axis", lambda a, b: ops.append(a, b, axis=1), lambda a, b: numpy.append(a, b, axis=1)),
    ("append_flat", lambda a, b: ops.append(b, a), lambda a, b: numpy.append(b, a)),
    ("hstack", lambda a, b: ops.hstack([a, b]), lambda a, b: numpy.hstack([a, b])),
    ("vstack", lambda a, b: ops.vstack([b, a]), lambda a, b: numpy.vstack([b, a])),
    ("dstack", lambda a, b: ops.dstack([a, b, a]), lambda a, b: numpy.dstack([a, b, a])),
    ("array_split", lambda a, b: ops.concatenate(ops.array_split(b, 3, axis=2)[::-1], axis=2),
     lambda a, b: numpy.concatenate(numpy.array_split(b, 3, axis=2)[::-1], axis=2)),
    ("array_split_part", lambda a, b: ops.array_split(b, 2, axis=1)[1], lambda a, b: b[:, 2:]),
    ("hsplit", lambda a, b: ops.concatenate(ops.hsplit(b, [1])[::-1], axis=1),
     lambda a, b: numpy.concatenate([b[:, 1:], b[:, :1]], axis=1)),
    ("vsplit", lambda a, b: ops.vsplit(b, [2])[0] * 3.0, lambda a, b: b[:2] * 3.0),
    ("dsplit", lambda a, b: ops.dsplit(b, 2)[1] - ops.dsplit(a, 2)[0], lambda a, b: b[..., 2:] - a[..., :2]),
    ("unstack", lambda a, b: ops.stack(ops.unstack(b, axis=1)[::-1], axis=1), lambda a, b: b[:, ::-1]),
    ("unstack_num", lambda a, b: ops.unstack(b, num=4, axis=-1)[2] * ops.unstack(a, axis=2)[0],
     lambda a, b: b[..., 2] * a[..., 0]),
    # axes, flips, diagonals
    ("moveaxis", lambda a, b: ops.moveaxis(b, 1, -1), lambda a, b: numpy.moveaxis(b, 1, -1)),
    ("moveaxis_several", lambda a, b: ops.moveaxis(ops.expand_dims(b, 1), [1, 2], [3, 1]),
     lambda a, b: numpy.moveaxis(b[:, None], [1, 2], [3, 1])),
    ("swapaxes", lambda a, b: ops.swapaxes(b, 2, 1), lambda a, b: numpy.swapaxes(b, 2, 1)),
    ("ravel", lambda a, b: ops.ravel(b), lambda a, b: b.ravel()),
    ("rot90", lambda a, b: ops.rot90(b, axes=(1, 2)), lambda a, b: numpy.rot90(b, axes=(1, 2))),
    ("rot90_k", lambda a, b: ops.rot90(b, k=-3, axes=(2, 1)) + ops.rot90(a, k=5, axes=(1, 2)),
     lambda a, b: numpy.rot90(b, -3, axes=(2, 1)) + numpy.rot90(a, 5, axes=(1, 2))),
    ("rot90_half", lambda a, b: ops.rot90(b, k=2, axes=(2, 1)), lambda a, b: numpy.rot90(b, 2, axes=(2, 1))),
    ("fliplr", lambda a, b: ops.fliplr(b), lambda a, b: b[:, ::-1]),
    ("flipud", lambda a, b: ops.flipud(b) * a, lambda a, b: b[::-1] * a),
    ("diag_vector", lambda a, b: ops.diag(ops.ravel(b), k=2), lambda a, b: numpy.diag(b.ravel(), 2)),
    ("diag_matrix", lambda a, b: ops.diag(ops.reshape(b, (-1, 4)), k=-1),
     lambda a, b: numpy.diag(b.reshape(-1, 4), -1)),
    ("diagflat", lambda a, b: ops.diagflat(ops.mean(b, axis=1), k=-1), lambda a, b: numpy.diagflat(b.mean(1), -1)),
    ("diagonal", lambda a, b: ops.diagonal(b, offset=1, axis1=1, axis2=2),
     lambda a, b: numpy.diagonal(b, 1, 1, 2)),
    ("diagonal_reversed", lambda a, b: ops.diagonal(b, -1, 2, 1), lambda a, b: numpy.diagonal(b, -1, 2, 1)),
    # blocks and windows
    ("depth_to_space", lambda a, b: ops.depth_to_space(ops.reshape(b, (-1, 1, 3, 4)), 2),
     lambda a, b: _depth_to_space(b.reshape(-1, 1, 3, 4), 2)),
    ("depth_to_space_first", lambda a, b: ops.depth_to_space(ops.reshape(b, (-1, 4, 1, 3)), 2, "channels_first"),
     lambda a, b: _depth_to_space_first(b.reshape(-1, 4, 1, 3), 2)),
    ("space_to_depth", lambda a, b: ops.space_to_depth(ops.reshape(b, (-1, 2, 6, 1)), 2),
     lambda a, b: numpy.stack([b.reshape(-1, 2, 6)[:, i::2, j::2] for i in (0, 1) for j in (0, 1)], -1)),
    ("space_to_depth_first", lambda a, b: ops.space_to_depth(ops.reshape(b, (-1, 1, 2, 6)), 2, "channels_first"),
     lambda a, b: numpy.stack([b.reshape(-1, 2, 6)[:, i::2, j::2] for i in (0, 1) for j in (0, 1)], 1)),
    ("extract_sequences", lambda a, b: ops.extract_sequences(b, 2, 1), lambda a, b: _windows(b, 2, 1)),
    ("extract_sequences_stride", lambda a, b: ops.extract_sequences(b, 3, 2) * 2.0,
     lambda a, b: _windows(b, 3, 2) * 2.0),
    ("unfold", lambda a, b: ops.unfold(_images(b), 2), lambda a, b: _unfold(b.reshape(-1, 2, 2, 3), 2)),
    ("unfold_padded", lambda a, b: ops.unfold(_images(b), 2, dilation=1, padding=1, stride=2),
     lambda a, b: _unfold(b.reshape(-1, 2, 2, 3), 2, 1, 1, 2)),
    ("unfold_dilated", lambda a, b: ops.unfold(ops.reshape(b, (-1, 1, 3, 4)), 2, dilation=2, padding=1),
     lambda a, b: _unfold(b.reshape(-1, 1, 3, 4), 2, 2, 1)),
    ("fold", lambda a, b: ops.fold(ops.reshape(b, (-1, 4, 3)), (2, 4), 2),
     lambda a, b: _fold(b.reshape(-1, 4, 3), (2, 4), 2)),
    ("fold_padded", lambda a, b: ops.fold(ops.reshape(b, (-1, 4, 3)), (1, 5), 2, padding=1, stride=2),
     lambda a, b: _fold(b.reshape(-1, 4, 3), (1, 5), 2, 1, 1, 2)),
    ("rearrange", lambda a, b: ops.rearrange(b, "n h w -> n w h"), lambda a, b: b.transpose(0, 2, 1)),
    ("rearrange_merge", lambda a, b: ops.rearrange(b, "n h w -> n (w h)"),
     lambda a, b: b.transpose(0, 2, 1).reshape(-1, 12)),
    ("rearrange_split", lambda a, b: ops.rearrange(b, "n h (w1 w) -> n (h w1) w", w1=2),
     lambda a, b: b.reshape(-1, 3, 2, 2).reshape(-1, 6, 2)),
    ("rearrange_split_swap", lambda a, b: ops.rearrange(b, "n h (w w1) -> n w1 (w h)", w1=2),
     lambda a, b: b.reshape(-1, 3, 2, 2).transpose(0, 3, 2, 1).reshape(-1, 2, 6)),
    # products
    ("kron", lambda a, b: ops.kron(b, KRON), lambda a, b: numpy.kron(b, KRON)),
    ("kron_tensors", lambda a, b: ops.kron(b, a[:1, :2]), lambda a, b: numpy.kron(b, a[:1, :2])),
    ("outer", lambda a, b: ops.outer(b, a[:, 0]), lambda a, b: numpy.outer(b, a[:, 0])),
    ("inner", lambda a, b: ops.inner(b, MATRIX), lambda a, b: numpy.inner(b, MATRIX)),
    ("inner_tensors", lambda a, b: ops.inner(b, a[:2]), lambda a, b: numpy.inner(b, a[:2])),
    ("vdot", lambda a, b: ops.vdot(a, b) * b, lambda a, b: numpy.vdot(a, b) * b),
    ("cross", lambda a, b: ops.cross(b[..., :3], a[..., 1:]), lambda a, b: numpy.cross(b[..., :3], a[..., 1:])),
    ("cross_axis", lambda a, b: ops.cross(b, a, axis=1), lambda a, b: numpy.cross(b, a, axis=1)),
    ("cross_axes", lambda a, b: ops.cross(b, ops.swapaxes(a, 1, 2), axisa=1, axisb=2, axisc=1),
     lambda a, b: numpy.cross(b, a.swapaxes(1, 2), axisa=1, axisb=2, axisc=1)),
    ("cross_2d", lambda a, b: ops.cross(b[..., :2], a[..., 2:]),
     lambda a, b: b[..., 0] * a[..., 3] - b[..., 1] * a[..., 2]),
    ("cross_2d_3d", lambda a, b: ops.cross(b[..., :2], a[..., 1:]),
     lambda a, b: numpy.cross(_padded(b[..., :2]), a[..., 1:])),
    ("cdist", lambda a, b: ops.cdist(b, a), lambda a, b: _cdist(b, a)),
    ("cdist_broadcast", lambda a, b: ops.cdist(b, MATRIX[:2]), lambda a, b: _cdist(b, MATRIX[:2])),
    ("vander", lambda a, b: ops.vander(ops.ravel(b), 3), lambda a, b: numpy.vander(b.ravel(), 3)),
    ("vander_increasing", lambda a, b: ops.vander(ops.ravel(b[:1]), increasing=True),
     lambda a, b: numpy.vander(b[:1].ravel(), increasing=True)),
    # grids and sequences
    ("meshgrid", lambda a, b: ops.meshgrid(ops.mean(b, axis=(1, 2)), ops.mean(a, axis=1))[0] +
     2 * ops.meshgrid(ops.mean(b, axis=(1, 2)), ops.mean(a, axis=1))[1],
     lambda a, b: numpy.meshgrid(b.mean((1, 2)), a.mean(1))[0] + 2 * numpy.meshgrid(b.mean((1, 2)), a.mean(1))[1]),
    # a host array beside a device one: ops.multiply moves it to the device (CuPy's `*` would refuse it)
    ("meshgrid_ij", lambda a, b: ops.sum(ops.multiply(ops.stack(ops.meshgrid(b[:, 0, 0], a[0, 0], b[0, :, 1],
                                                                             indexing="ij"), axis=-1),
                                                      numpy.array([1.0, 2.0, 3.0])), axis=-1),
     lambda a, b: numpy.sum(numpy.stack(numpy.meshgrid(b[:, 0, 0], a[0, 0], b[0, :, 1], indexing="ij"), axis=-1) *
                            numpy.array([1.0, 2.0, 3.0]), axis=-1)),
    ("geomspace", lambda a, b: ops.geomspace(a, a * 3.0 + 1.0, 4, axis=1),
     lambda a, b: numpy.geomspace(a, a * 3.0 + 1.0, 4, axis=1)),
    ("geomspace_open", lambda a, b: ops.geomspace(a, 2.0, 3, endpoint=False, axis=-1),
     lambda a, b: numpy.geomspace(a, 2.0, 3, endpoint=False, axis=-1)),
    ("geomspace_negative", lambda a, b: ops.geomspace(-a, -2.0 * a, 3, axis=3),
     lambda a, b: numpy.geomspace(-a, -2.0 * a, 3, axis=3)),
    ("logspace", lambda a, b: ops.logspace(b, a, 5, base=2.0, axis=1),
     lambda a, b: numpy.logspace(b, a, 5, base=2.0, axis=1)),
    ("logspace_open", lambda a, b: ops.logspace(0.5, b, 3, endpoint=False, axis=-1),
     lambda a, b: numpy.logspace(0.5, b, 3, endpoint=False, axis=-1)),
    # dtypes
    ("array", lambda a, b: ops.array(b) * a, lambda a, b: b * a),
    ("empty_like", lambda a, b: ops.empty_like(b) + b, lambda a, b: b),
]
IDS = [c[0] for c in CASES]


(test_each_op_on_arrays_computes_what_numpy_does, test_each_op_in_a_functional_model_computes_what_numpy_does,
 test_each_op_has_the_gradient_of_finite_differences, test_each_op_is_saved_and_loaded_as_keras_writes_it) = \
    op_case_tests(CASES, rtol=1e-12, atol=1e-14, output_shape=fitting_shape, checks_array_shape=True)


@pytest.mark.parametrize("name,expression,expected", CASES, ids=IDS)
def test_float32_stays_float32_forward_and_backward(xp, rng, name, expression, expected):
    model, used = model_of(expression, dtype="float32")
    values = [xp.asarray(v) for v in positive_and_signed(rng, "float32")]
    y = model.forward([values[i] for i in used], training=True)
    assert y.dtype == numpy.float32 and model.outputs[0].dtype == "float32"
    numpy.testing.assert_allclose(to_numpy(y), expected(*(to_numpy(v).astype("float64") for v in values)),
                                  rtol=2e-5, atol=2e-5)
    grads = model.backward(xp.ones(y.shape, dtype="float32"))
    for grad in grads if len(used) > 1 else [grads]:
        assert grad is None or grad.dtype == numpy.float32


def test_view_reads_the_bits_and_sends_no_gradient(xp, rng):
    x = gpu_dl.Input((3, 4))
    model = gpu_dl.Model(x, ops.view(x, "float16"))
    assert model.output_shape == (None, 3, 8) and model.outputs[0].dtype == "float16"
    values = rng.standard_normal((2, 3, 4)).astype("float32")
    y = model.forward(xp.asarray(values), training=True)
    numpy.testing.assert_array_equal(to_numpy(y), values.view("float16"))
    assert model.backward(xp.ones(y.shape, dtype="float16")) is None
    same = gpu_dl.Model(x, ops.view(x) * 2.0)
    numpy.testing.assert_array_equal(to_numpy(same.forward(xp.asarray(values), training=True)), values * 2)
    assert same.backward(xp.ones((2, 3, 4), dtype="float32")) is None


def test_rearrange_records_its_pattern_and_lengths_as_keras_does():
    x = gpu_dl.Input((3, 4), name="x")
    model = gpu_dl.Model(x, ops.rearrange(x, "n h (w1 w) -> n (h w1) w", w1=2))
    entry = model_config(model)["config"]["layers"][-1]
    assert (entry["module"], entry["class_name"]) == ("keras.src.ops.einops", "Rearrange")
    assert set(entry["config"]) == {"name"}
    node = entry["inbound_nodes"][0]
    assert node["args"][1] == "n h (w1 w) -> n (h w1) w" and node["kwargs"] == {"w1": 2}
    assert model.output_shape == (None, 6, 2)


def test_rearrange_s_saved_lengths_are_read_back_and_bad_ones_refused(rng):
    x = gpu_dl.Input((3, 4), name="x")
    model = gpu_dl.Model(x, ops.rearrange(x, "n h (w1 w) -> n (h w1) w", w1=2))
    values = rng.standard_normal((2, 3, 4))
    numpy.testing.assert_allclose(model_from_config(model_config(model)).forward(values), model.forward(values),
                                  rtol=1e-15)

    def refused(edit, match):
        config = model_config(model)
        edit(config["config"]["layers"][-1]["inbound_nodes"][0])
        with pytest.raises(ValueError, match=match):
            model_from_config(config)

    refused(lambda n: n["kwargs"].update(w1="two"), "length of axis 'w1' must be a positive integer")
    refused(lambda n: n["kwargs"].update(w1=True), "length of axis 'w1' must be a positive integer")
    refused(lambda n: n["kwargs"].update(w1=n["args"][0]), "'w1' of Rearrange takes a constant, not a tensor")
    refused(lambda n: n["kwargs"].update({"w 1": 2}), r"takes the lengths of axes .*gives 'w 1'")
    refused(lambda n: n["kwargs"].update(w1=3), "cannot be split")
    refused(lambda n: n["args"].__setitem__(1, 7), "second argument must be its pattern")


def test_pad_s_constant_values_saved_as_a_tensor_is_refused():
    x = gpu_dl.Input((3,), name="x")
    config = model_config(gpu_dl.Model(x, ops.pad(x, [[0, 0], [1, 1]], constant_values=2.0)))
    node = config["config"]["layers"][-1]["inbound_nodes"][0]
    assert node["kwargs"] == {"constant_values": 2.0}
    node["kwargs"]["constant_values"] = node["args"][0]
    with pytest.raises(ValueError, match="'constant_values' of Pad takes a constant, not a tensor"):
        model_from_config(config)
    node["kwargs"] = {"constant_values": 2.0, "mode": "reflect"}
    with pytest.raises(ValueError, match="takes constant_values; its call gives 'mode'"):
        model_from_config(config)


def test_the_empty_like_input_takes_no_gradient(rng):
    x = gpu_dl.Input((3,), dtype="float64")
    model = gpu_dl.Model(x, ops.empty_like(x, dtype="float64"))
    model.forward(rng.standard_normal((2, 3)), training=True)
    assert model.backward(numpy.ones((2, 3))) is None


# ------------------------------------------------------------------ configs, dtypes, shapes
def test_configs_hold_keras_modules_classes_and_settings():
    x = gpu_dl.Input((4, 6, 8), name="x")
    ids = gpu_dl.Input((3,), dtype="int32", name="ids")
    outputs = [ops.moveaxis(x, [1, 2], [2, 1]), ops.rot90(x, axes=(1, 2)), ops.depth_to_space(x, 2),
               ops.unfold(ops.moveaxis(x, -1, 1), 2, padding=1), ops.fold(ops.reshape(x, (-1, 8, 24)), (4, 9), 2),
               ops.multi_hot(ids, 5), ops.geomspace(x, x + 1.0, 3), ops.unstack(x, axis=1)[0],
               ops.cross(x[..., :3], x[..., 1:4], axis=-1), ops.extract_sequences(x, 3, 2), ops.cdist(x, x),
               ops.array_split(x, 3, axis=-1)[0], ops.hsplit(x, [1, 3])[1], ops.view(x, "int32")]
    config = model_config(gpu_dl.Model([x, ids], outputs))["config"]
    entries = {e["class_name"]: e for e in config["layers"]}
    for entry in entries.values():
        assert entry["config"]["name"] == entry["name"]
        entry["config"]["name"] = re.sub(r"_\d+$", "", entry["name"])        # the counter of earlier tests' uses
    assert entries["Moveaxis"]["config"] == {"name": "moveaxis", "source": [1, 2], "destination": [2, 1]}
    assert entries["Rot90"]["config"] == {"name": "rot90", "k": 1, "axes": [1, 2]}
    assert entries["DepthToSpace"]["module"] == "keras.src.ops.nn"
    assert entries["DepthToSpace"]["config"] == {"name": "depth_to_space", "block_size": 2,
                                                 "data_format": "channels_last"}
    assert entries["Unfold"]["config"] == {"name": "unfold", "kernel_size": 2, "dilation": 1, "padding": 1,
                                           "stride": 1}
    assert entries["Fold"]["config"] == {"name": "fold", "output_size": [4, 9], "kernel_size": 2, "dilation": 1,
                                         "padding": 0, "stride": 1}
    assert entries["MultiHot"]["config"] == {"name": "multi_hot", "num_classes": 5, "axis": -1, "dtype": "float32",
                                             "sparse": False}
    assert entries["Geomspace"]["config"] == {"name": "geomspace", "num": 3, "endpoint": True, "dtype": None,
                                              "axis": 0}
    assert entries["Unstack"]["module"] == "keras.src.ops.core"
    assert entries["Unstack"]["config"] == {"name": "unstack", "num": None, "axis": 1}
    assert entries["Cross"]["config"] == {"name": "cross", "axisa": -1, "axisb": -1, "axisc": -1, "axis": -1}
    assert entries["ExtractSequences"]["module"] == "keras.src.ops.math"
    assert entries["CDist"]["config"] == {"name": "c_dist"}
    assert entries["ArraySplit"]["config"] == {"name": "array_split", "indices_or_sections": 3, "axis": -1}
    assert entries["Hsplit"]["config"] == {"name": "hsplit", "indices_or_sections": [1, 3]}
    assert entries["View"]["config"] == {"name": "view", "dtype": "int32"}


def test_shapes_and_dtypes_are_keras_s():
    x = gpu_dl.Input((3, 4))
    ints = gpu_dl.Input((3, 4), dtype="int32")
    assert ops.moveaxis(x, 0, -1).shape == (3, 4, None)
    assert ops.ravel(x).shape == (None,) and ops.append(x, x).shape == (None,)
    assert ops.diag(ops.ravel(x)).shape == (None, None) and ops.diagflat(x[0], k=1).shape == (13, 13)
    assert ops.outer(x, x).shape == (None, None) and ops.vdot(x, x).shape == ()
    assert ops.inner(x, x).shape == (None, 3, None, 3) and ops.kron(x, x).shape == (None, 9, 16)
    assert ops.geomspace(x, x, 3).shape == (3, None, 3, 4)
    assert [t.shape for t in ops.array_split(x, 3, axis=2)] == [(None, 3, 2), (None, 3, 1), (None, 3, 1)]
    assert [t.shape for t in ops.vsplit(x, 2)] == [(None, 3, 4)] * 2
    assert [t.shape for t in ops.meshgrid(x[0, 0], x[0])] == [(12, 4)] * 2
    assert ops.view(x, "float16").shape == (None, 3, 8) and ops.view(x, "int64").shape == (None, 3, 2)
    for t in (ops.moveaxis(ints, 1, 2), ops.kron(ints, ints), ops.inner(ints, ints), ops.outer(ints, ints),
              ops.vander(ints[0, 0], 2), ops.hstack([ints, ints]), *ops.unstack(ints, axis=1)):
        assert t.dtype == "int32"
    assert ops.cdist(ints, ints).dtype == "float32" and ops.geomspace(ints, ints, 2).dtype == "float32"
    assert ops.multi_hot(ints, 4).dtype == "float32" and ops.multi_hot(ints, 4, dtype="int32").dtype == "int32"
    assert ops.array(x, dtype="float64").dtype == "float64" and ops.empty_like(ints).dtype == "int32"
    assert [t.dtype for t in ops.unravel_index(ints, (3, 4))] == ["int32", "int32"]
    assert ops.hstack([ints, x]).dtype == "float32" and ops.append(ints, x).dtype == "float32"


def test_integer_results_on_arrays(xp):
    i = xp.asarray(numpy.array([[0, 2, 2], [4, 1, 0]], dtype="int32"))
    hot = ops.multi_hot(i, 5)
    assert hot.dtype == numpy.float32 and array_module(hot) is xp
    numpy.testing.assert_array_equal(to_numpy(hot), [[1, 0, 1, 0, 0], [1, 1, 0, 0, 1]])
    numpy.testing.assert_array_equal(to_numpy(ops.multi_hot(xp.asarray([1, 3, 9]), num_tokens=4)), [0, 1, 0, 1])
    rows, cols = ops.unravel_index(i, (2, 3))
    assert rows.dtype == numpy.int32
    numpy.testing.assert_array_equal(to_numpy(rows), numpy.unravel_index(to_numpy(i), (2, 3))[0])
    numpy.testing.assert_array_equal(to_numpy(cols), numpy.unravel_index(to_numpy(i), (2, 3))[1])
    v = ops.view(xp.asarray(numpy.array([[1.0, -2.0]], dtype="float32")), "int32")
    numpy.testing.assert_array_equal(to_numpy(v), numpy.array([[1.0, -2.0]], dtype="float32").view("int32"))
    assert ops.kron(i, i).dtype == numpy.int32 and ops.inner(i, i).dtype == numpy.int32
    assert ops.cdist(i, i).dtype == numpy.float32 and ops.geomspace(1, 8, 4).dtype == numpy.float32
    numpy.testing.assert_allclose(to_numpy(ops.geomspace(1, 8, 4)), [1, 2, 4, 8], rtol=1e-6)
    assert ops.empty_like(i).dtype == numpy.int32 and not to_numpy(ops.empty_like(i)).any()
    assert ops.array([1, 2]).dtype == numpy.int32 and ops.array([1.0], dtype="float64").dtype == numpy.float64
    assert isinstance(ops.unstack(i), tuple) and isinstance(ops.hsplit(i, 3), list)


def test_integer_ops_in_a_model_send_no_gradient(rng):
    ids = gpu_dl.Input((3,), dtype="int32")
    x = gpu_dl.Input((5,), dtype="float64")
    rows, cols = ops.unravel_index(ids, (2, 3))
    y = x * ops.multi_hot(ids, 5, dtype="float64") + ops.cast(ops.sum(rows + cols, axis=1, keepdims=True), "float64")
    model = gpu_dl.Model([ids, x], y)
    i, v = rng.integers(0, 5, (4, 3)), rng.standard_normal((4, 5))
    hot = (i[..., None] == numpy.arange(5)).any(1)
    coords = numpy.unravel_index(i, (2, 3))
    numpy.testing.assert_allclose(model.forward([i, v], training=True),
                                  v * hot + (coords[0] + coords[1]).sum(1, keepdims=True))
    gi, gx = model.backward(numpy.ones((4, 5)))
    assert gi is None
    numpy.testing.assert_allclose(gx, hot * 1.0)


def test_constants_are_numpy_s_in_floatx(xp):
    for made, want in ((ops.tri(3, 4, k=1), numpy.tri(3, 4, 1)), (ops.identity(3), numpy.identity(3)),
                       (ops.empty((2, 3)), numpy.zeros((2, 3))), (ops.bartlett(7), numpy.bartlett(7)),
                       (ops.blackman(6), numpy.blackman(6)), (ops.hamming(5), numpy.hamming(5)),
                       (ops.hanning(9), numpy.hanning(9)), (ops.kaiser(8, 3.5), numpy.kaiser(8, 3.5))):
        assert made.dtype == numpy.float32 and array_module(made) is xp
        numpy.testing.assert_allclose(to_numpy(made), want, rtol=1e-6, atol=1e-7)
    assert ops.tri(2, dtype="int32").dtype == numpy.int32 and ops.identity(2, "float64").dtype == numpy.float64
    assert ops.empty(4, dtype="int32").shape == (4,) and ops.empty(4, dtype="int32").dtype == numpy.int32
    numpy.testing.assert_array_equal(to_numpy(ops.tri(3)), numpy.tri(3))


def test_what_the_ops_refuse():
    x = gpu_dl.Input((3, 4))
    ints = gpu_dl.Input((3,), dtype="int32")
    cases = [
        (ValueError, "out of range", lambda: ops.moveaxis(x, 3, 0)),
        (ValueError, "as many axes", lambda: ops.moveaxis(x, [0, 1], [1])),
        (ValueError, "two different axes", lambda: ops.rot90(x, axes=(1, 1))),
        (ValueError, "1 or 2 axes", lambda: ops.diag(x)),
        (ValueError, "one axis", lambda: ops.diagonal(x, 0, 2, -1)),
        (ValueError, "4-D tensor", lambda: ops.depth_to_space(x, 2)),
        (ValueError, "block_size", lambda: ops.depth_to_space(numpy.zeros((1, 2, 2, 4)), 1)),
        (ValueError, "multiple of block_size", lambda: ops.space_to_depth(ops.reshape(x, (-1, 3, 2, 2)), 2)),
        (ValueError, "data_format", lambda: ops.space_to_depth(numpy.zeros((1, 2, 2, 4)), 2, "nhwc")),
        (ValueError, "shorter than sequence_length", lambda: ops.extract_sequences(x, 5, 1)),
        (ValueError, "4-D tensor", lambda: ops.unfold(x, 2)),
        (ValueError, "multiple of the kernel", lambda: ops.fold(x, (3, 3), 2)),
        (ValueError, "2 or 3 components", lambda: ops.cross(x, x)),
        (ValueError, "last axes", lambda: ops.inner(x, ops.transpose(x, (0, 2, 1)))),
        (ValueError, "last axes", lambda: ops.cdist(x, ops.transpose(x, (0, 2, 1)))),
        (ValueError, "one axis", lambda: ops.vander(x)),
        (ValueError, "'xy' or 'ij'", lambda: ops.meshgrid(x, indexing="yx")),
        (TypeError, "indices_or_sections", lambda: ops.array_split(x, [1, 2])),
        (ValueError, "positive", lambda: ops.array_split(x, 0)),
        (ValueError, "equal parts", lambda: ops.hsplit(x, 2)),
        (ValueError, "give `num`", lambda: ops.unstack(x, axis=0)),
        (TypeError, "integer indices", lambda: ops.unravel_index(x, (3, 4))),
        (ValueError, "same axes on both sides", lambda: ops.rearrange(x, "b h w -> b h")),
        (ValueError, "names 2 axes", lambda: ops.rearrange(x, "b h -> h b")),
        (ValueError, "cannot be split", lambda: ops.rearrange(x, "b h (w1 w) -> b h w1 w", w1=3)),
        (ValueError, "cannot be viewed", lambda: ops.view(ops.reshape(x, (-1, 3)), "float64")),
        (ValueError, "must be -1", lambda: ops.multi_hot(ints, 3, axis=5)),
        (ValueError, "num_classes", lambda: ops.multi_hot(ints)),
        (TypeError, "symbolic tensor", lambda: ops.hanning(x)),
        (TypeError, "must be an integer", lambda: ops.bartlett(2.5)),
        (ValueError, "must not be negative", lambda: ops.tri(-1)),
        (ValueError, "must not be negative", lambda: ops.empty(-2)),
        (TypeError, "must be an integer", lambda: ops.empty((2, None))),
        (TypeError, "beta", lambda: ops.kaiser(4, "wide")),
        (TypeError, "list of tensors", lambda: ops.hstack(x)),
    ]
    for error, match, call in cases:
        with pytest.raises(error, match=match):
            call()


# ------------------------------------------------------------------ a composite layer using them in its call
class PatchMixer(layers.Layer):
    """Images to patches (space_to_depth), the patches mixed by a Dense, back to images (depth_to_space); rows and
    columns swapped with rearrange, and the rows' cross-distances (cdist) appended."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.mix = layers.Dense(8, dtype=kwargs.get("dtype"))

    def call(self, x):
        patches = ops.space_to_depth(x, 2)                              # (b, 2, 3, 8)
        h = ops.depth_to_space(self.mix(patches), 2)                    # (b, 4, 6, 2)
        h = ops.rearrange(h, "b h w c -> b w (h c)")                    # (b, 6, 8)
        return ops.concatenate([h, ops.cdist(h, h)], axis=-1)           # (b, 6, 14)


def _mixer_model(dtype=None):
    x = gpu_dl.Input((4, 6, 2))
    return gpu_dl.Model(x, layers.Dense(1, dtype=dtype)(ops.ravel(ops.mean(PatchMixer(dtype=dtype)(x), axis=1))
                                                           [:, None]))


def test_a_composite_layer_using_them_has_exact_gradients(xp, rng):
    backend.set_random_seed(3)
    x = gpu_dl.Input((4, 6, 2), dtype="float64")
    model = gpu_dl.Model(x, ops.mean(PatchMixer(dtype="float64")(x), axis=1))
    values = xp.asarray(rng.standard_normal((3, 4, 6, 2)))
    w = xp.asarray(rng.standard_normal((3, 14)))
    assert_weight_gradients(model, values, w, rng)
    assert_input_gradients(model, [values], w, rng, "input")


def test_a_composite_layer_using_them_trains(rng):
    backend.set_random_seed(4)
    x = gpu_dl.Input((4, 6, 2))
    model = gpu_dl.Model(x, layers.Dense(1)(ops.mean(PatchMixer()(x), axis=1)))
    data, target = rng.standard_normal((32, 4, 6, 2)).astype("float32"), rng.standard_normal((32, 1)).astype(
        "float32")
    assert_trains(model, data, target)
