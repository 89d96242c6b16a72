"""The CTC loss against Keras 3 itself (where Keras is installed, with the torch backend): the same values
for random label rows (repeats, padding, empty rows, rows that cannot fit, a 0 before a label), the same
reductions, the same gradients as torch's autograd, the same training steps of a recurrent model, and
configs and .keras files that load both ways."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend, losses  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


def _labels(rng, batch, length, classes, steps=None):
    """Padded label rows with repeats; with ``steps``, only rows that fit in that many steps."""
    labels = numpy.zeros((batch, length), dtype=numpy.int64)
    for b in range(batch):
        while True:
            row = rng.integers(1, classes, rng.integers(0, length + 1))
            if len(row) > 1 and rng.random() < 0.5:
                row[1] = row[0]
            if steps is None or len(row) + int((row[1:] == row[:-1]).sum()) <= steps:
                break
        labels[b, :len(row)] = row
    return labels


SHAPES = [(6, 10, 5, 4), (3, 4, 3, 3), (1, 1, 2, 1), (9, 17, 7, 6), (4, 6, 4, 0), (5, 3, 2, 3)]


@pytest.mark.parametrize("seed", range(len(SHAPES)))
def test_values_match_keras(seed):
    rng = numpy.random.default_rng(seed)
    batch, steps, classes, length = SHAPES[seed]
    labels = _labels(rng, batch, length, classes)
    if length >= 3 and batch >= 3:
        labels[-1, :3] = [0, 1, 1]        # Keras reads [0, 1]: a blank label, then 1
    logits = (rng.standard_normal((batch, steps, classes)) * 2).astype("float32")
    expected = keras.ops.convert_to_numpy(keras.losses.ctc(labels, logits))
    got = losses.ctc(labels, logits)
    assert got.dtype == numpy.float32
    numpy.testing.assert_array_equal(numpy.isinf(got), numpy.isinf(expected))
    numpy.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    if seed == 5:
        assert numpy.isinf(got).any()      # 3 steps for up to 3 labels of one class: some cannot fit


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight", None])
def test_reductions_match_keras(seed, reduction):
    rng = numpy.random.default_rng(seed)
    batch, steps, classes, length = SHAPES[seed]
    labels = _labels(rng, batch, length, classes, steps=steps)
    logits = rng.standard_normal((batch, steps, classes)).astype("float32")
    sw = rng.uniform(0, 2, batch).astype("float32")
    for weights in (None, sw):
        expected = keras.ops.convert_to_numpy(keras.losses.CTC(reduction=reduction)(labels, logits,
                                                                                   sample_weight=weights))
        got = losses.CTC(reduction=reduction)(labels, logits, sample_weight=weights)
        numpy.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_gradients_match_torch_autograd(seed):
    """On rows that fit and hold no 0 before a label (there torch's backward is not the derivative of its loss;
    tests/test_loss_ctc.py checks ours against finite differences)."""
    import torch
    rng = numpy.random.default_rng(seed)
    batch, steps, classes, length = SHAPES[seed]
    labels = _labels(rng, batch, length, classes, steps=steps)
    logits = (rng.standard_normal((batch, steps, classes)) * 2).astype("float32")
    weights = rng.uniform(0.5, 2, batch).astype("float32")
    tensor = torch.tensor(logits, requires_grad=True)
    keras.losses.CTC()(labels, tensor, sample_weight=weights).backward()
    loss = losses.CTC()
    ours = loss.weighted_grad(labels, logits, loss.reduction_weights(labels, logits, loss.call(labels, logits),
                                                                       weights))
    numpy.testing.assert_allclose(ours, tensor.grad.numpy(), rtol=1e-4, atol=2e-6)


def _recurrent(lib, steps=7, features=3, classes=4):
    L = lib.layers
    return lib.Sequential([lib.Input((steps, features)), L.LSTM(6, return_sequences=True), L.Dense(classes)])


@pytest.mark.parametrize("make_loss", [lambda lib: "ctc", lambda lib: lib.losses.CTC(reduction="sum")],
                         ids=["ctc", "CTC-sum"])
def test_training_steps_match_keras(rng, make_loss):
    backend.set_random_seed(4)
    ours, theirs = _recurrent(gpu_dl), _recurrent(keras)
    assert_training_steps_match(keras, ours, theirs, rng, (7, 3), classes=None, batch=6, steps=4,
                                loss=make_loss(gpu_dl), keras_loss=make_loss(keras),
                                targets=lambda r, n: _labels(r, n, 3, 4, steps=7))


def test_configs_load_both_ways():
    theirs = keras.losses.CTC(reduction="sum", name="seq")
    ours = losses.deserialize(keras.losses.serialize(theirs))
    assert type(ours) is losses.CTC and ours.get_config() == theirs.get_config()
    back = keras.saving.deserialize_keras_object(losses.serialize(losses.CTC(reduction="mean")))
    assert type(back) is keras.losses.CTC and back.get_config() == {"name": "ctc", "reduction": "mean"}


@pytest.mark.parametrize("make_loss", [lambda lib: "ctc", lambda lib: lib.losses.CTC(reduction="sum")],
                         ids=["ctc", "CTC-sum"])
def test_keras_files_load_both_ways(tmp_path, rng, make_loss):
    x = rng.standard_normal((6, 7, 3)).astype("float32")
    y = _labels(rng, 6, 3, 4, steps=7)
    backend.set_random_seed(1)
    ours = _recurrent(gpu_dl)
    ours.compile(optimizer="adam", loss=make_loss(gpu_dl))
    ours.fit(x, y, epochs=1, batch_size=3, verbose=0)
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    assert theirs.evaluate(x, y, verbose=0) == pytest.approx(ours.evaluate(x, y, verbose=0), rel=1e-5)

    theirs = _recurrent(keras)
    theirs.compile(optimizer="adam", loss=make_loss(keras))
    theirs.fit(x, y, epochs=1, batch_size=3, verbose=0)
    theirs.save(tmp_path / "k.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "k.keras")
    assert type(loaded.loss) is losses.CTC
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(theirs.evaluate(x, y, verbose=0), rel=1e-5)
