"""What one training step of ``Model.fit`` issues on the GPU, pinned as upper bounds, and the cuts behind them.

The digits MLP and CNN of ``gpu_dl.models.examples`` (Adam, sparse categorical
cross-entropy, accuracy, batch 32, ``verbose=0``), counted per step as
``tests/device_work.py`` counts (every RawKernel launch, device-to-host syncs
and host-to-device uploads included; ``profiling/train_step_host_work.py``
prints the same with host times): the difference of two fits of different
step counts, so that the per-fit work cancels. No step reads anything back
from the device; the uploads are the batch's x and y. The counts run on the
emulated GPU only (its CuPy stand-in has the hooks that count); on a GPU the
count test is skipped.

The cuts that brought the counts down keep every result: a fit with them
gives the same weights and logs, bit for bit, as the same fit with the two
model-level ones turned off (the output layer's softmax left to the fused
loss, the backward stopping at the first trained layer), on both backends;
integer class ids compared with the argmax as integers give Keras's float
comparison's accuracy; the dropout mask written into its draws' buffer is
the expression it replaces.
"""
import numpy
import pytest

from device_work import DeviceWork
from gpu_dl import backend, data, metrics
from gpu_dl.backend import launch
from gpu_dl.layers import regularization
from gpu_dl.models import examples
from gpu_dl.models.sequential import Sequential
from gpu_dl.ops import random_draws

BATCH, SHORT, LONG = 32, 2, 6
# Per training step at most; the counts when these bounds were set, and before the cuts (in the comments).
BOUNDS = {
    # before: 11 launches, 9 products, 20 elementwise, 1 function, 5 copies, 44 allocations
    "mlp": {"launches": 11, "products": 8, "elementwise": 15, "functions": 0, "fills": 0, "copies": 0,
            "allocations": 31, "uploads": 2, "syncs": 0},
    # before: 24 launches, 6 products, 17 elementwise, 1 function, 5 copies, 50 allocations
    "cnn": {"launches": 24, "products": 6, "elementwise": 12, "functions": 0, "fills": 0, "copies": 1,
            "allocations": 41, "uploads": 2, "syncs": 0},
}


def _digits(name, samples=BATCH * LONG):
    (x, y), _ = data.load_digits(image_shape=name == "cnn")
    return x[:samples], y[:samples]


def _compiled(name, x):
    backend.set_random_seed(0)
    model = examples.build_model(name, x.shape[1:], 10)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_a_training_step_issues_at_most_the_pinned_work(cupy_only, name):
    cupy = cupy_only
    if not cupy.__version__.endswith("emulated"):
        pytest.skip("the counts need the emulated GPU's hooks, which CuPy does not have")
    x, y = _digits(name)
    model = _compiled(name, x)
    found = []
    # the launches no-ops (their outputs are left as allocated: warnings off); nothing poisoned, which fills
    with numpy.errstate(all="ignore"), launch.poisoned_outputs(False):
        model.fit(x[:BATCH * SHORT], y[:BATCH * SHORT], batch_size=BATCH, verbose=0)   # kernels bound
        for steps in (SHORT, LONG):
            with DeviceWork(cupy, no_op_launches=True, every_launch=True, transfers=True) as work:
                model.fit(x[:BATCH * steps], y[:BATCH * steps], batch_size=BATCH, verbose=0)
                found.append(work.take())
    per_step = {key: (found[1].get(key, 0) - found[0].get(key, 0)) / (LONG - SHORT)
                for key in set(found[0]) | set(found[1])}
    assert set(per_step) <= set(BOUNDS[name]), f"work of a kind not pinned: {per_step}"
    over = {key: (value, BOUNDS[name][key]) for key, value in per_step.items() if value > BOUNDS[name][key]}
    assert not over, f"{name}: per step (found, bound): {over}; all found: {per_step}"
    assert per_step["launches"] >= 1 and per_step["products"] >= 1, per_step    # the counters counted


def _fit(name, x, y, epochs=2):
    """Weights and history of a fit (shuffled, dropout drawing) from one seed, as host arrays."""
    model = _compiled(name, x)
    history = model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0)
    return [backend.to_numpy(w) for w in model.get_weights()], history.history


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_the_step_cuts_keep_the_weights_and_logs_bit_for_bit(xp, name, monkeypatch):
    x, y = _digits(name, samples=BATCH * 3 + 7)     # a last batch of 7
    cut = _fit(name, x, y)
    monkeypatch.setattr(Sequential, "_activation_left_to_loss", lambda self: None)
    monkeypatch.setattr(Sequential, "_first_trained_layer", lambda self: 0)
    whole = _fit(name, x, y)
    for got, want in zip(cut[0], whole[0]):
        assert numpy.isfinite(got).all()
        numpy.testing.assert_array_equal(got, want)
    assert cut[1] == whole[1] and len(cut[1]["loss"]) == 2
    assert cut[1]["loss"][1] < cut[1]["loss"][0]         # it trained


def test_a_left_out_softmax_still_gives_probabilities_to_the_metrics(xp):
    """The output layer's call leaves its softmax to the loss only inside a fused step; predict still applies it."""
    x, y = _digits("mlp", samples=BATCH)
    model = _compiled("mlp", x)
    model.fit(x, y, batch_size=BATCH, verbose=0)
    assert not model.layers[-1].activation_left_to_loss
    with model._loss_computes_activation_in(True):    # what a fused step sets: the softmax Dense leaves it out
        assert model._activation_left_to_loss() is model.layers[-1]
    assert model._activation_left_to_loss() is None
    assert model._first_trained_layer() == 1          # after Flatten
    p = backend.to_numpy(model.predict(x, verbose=0))
    numpy.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-5)
    assert (p >= 0).all()


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_integer_ids_give_the_accuracy_of_ids_cast_to_the_predictions_dtype(xp, rng, dtype):
    classes = 5
    scores = rng.standard_normal((40, classes)).astype(dtype)
    ids = rng.integers(0, classes, 40)
    big = 2 ** (numpy.finfo(dtype).nmant + 1)
    # ids beyond the dtype's exact integers (big + 1 rounds to big), negative ones, one past the classes
    ids[:7] = [big, big + 1, -1, -big - 1, classes, 2 ** 40, 2 ** 31 - 1]
    ids[7:20] = scores.argmax(axis=-1)[7:20]
    fits32 = numpy.abs(ids) < 2 ** 31
    for id_dtype, rows in (("int64", slice(None)), ("int32", fits32), ("uint32", fits32 & (ids >= 0))):
        y_pred = xp.asarray(scores[rows])
        for labels in (ids[rows], ids[rows][:, None]):
            got = metrics.sparse_categorical_accuracy(xp.asarray(labels.astype(id_dtype)), y_pred)
            # Keras's rule: the ids cast to the predictions' dtype
            with numpy.errstate(over="ignore"):     # 2**40 is float16's inf, as Keras's cast makes it
                cast = labels.astype(id_dtype).astype(dtype)
            want = metrics.sparse_categorical_accuracy(xp.asarray(cast), y_pred)
            got, want = backend.to_numpy(got), backend.to_numpy(want)
            numpy.testing.assert_array_equal(got, want, err_msg=f"{id_dtype} ids, {dtype} predictions")
            assert got.dtype == numpy.float32 and got.shape == (len(labels),) and 0 < got.sum() < len(got)


def test_the_dropout_mask_in_its_draws_buffer_is_the_expression_it_replaces(xp):
    for dtype in ("float16", "float32", "float64"):
        x = xp.zeros((6, 33), dtype)
        for rate in (0.1, 0.3, 0.5):
            got = regularization.keep_mask_of_pair((7, 3), x, (6, 33), rate)
            uniform = random_draws.dropout_mask(xp, (7, 3), (6, 33), numpy.float64 if xp is numpy else x.dtype)
            want = (uniform < 1.0 - rate).astype(x.dtype) / x.dtype.type(1.0 - rate)
            assert got.dtype == x.dtype
            numpy.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(want))
            kept = backend.to_numpy(got) > 0
            assert 0 < kept.mean() < 1
