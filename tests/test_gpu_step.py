"""The GPU path as a whole: a training step that never waits for the device, and the pool on a real GPU.

GPU tier only (skipped without a CUDA device).
"""
import numpy
import pytest

from gpu_dl import backend, layers
from gpu_dl.models import Sequential


# (input shape per sample, layers after Input): each family of kernels in one small model
_MODELS = {
    "mlp": ((12,), lambda: [layers.Dense(16, activation="relu"), layers.Dropout(0.2)]),
    "cnn": ((9, 9, 3), lambda: [layers.RandomFlip(seed=1), layers.RandomRotation(0.1, seed=2),
                                layers.Conv2D(8, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
                                layers.Conv2D(8, 3, strides=2), layers.GlobalAveragePooling2D()]),
    "lstm": ((7, 5), lambda: [layers.LSTM(6, return_sequences=True), layers.LSTM(4, recurrent_dropout=0.1)]),
    "gru": ((7, 5), lambda: [layers.Bidirectional(layers.GRU(6)), layers.Dense(4, activation="tanh")]),
    # ids in [0, 10): the batches come from host arrays the model checked, so the Embedding reads nothing back
    "embedding": ((6,), lambda: [layers.Embedding(10, 4), layers.Flatten()]),
    # the same, and the multi-hot encoding scatters its ids with no size read back
    "multi_hot": ((6,), lambda: [layers.CategoryEncoding(10, output_mode="multi_hot")]),
}


def _model(kind):
    backend.set_random_seed(0)
    shape, hidden = _MODELS[kind]
    model = Sequential([layers.Input(shape)] + hidden() + [layers.Dense(5, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, shape


@pytest.mark.parametrize("kind", sorted(_MODELS))
@pytest.mark.filterwarnings("ignore:cupyx.allow_synchronize")
def test_train_step_copies_nothing_back_to_the_host(cupy_only, kind):
    """Inside a step, nothing synchronises with the device (no device-to-host copy, no .item()).

    CuPy's detector sees the synchronisations CuPy itself makes (asnumpy, item, float() of an array),
    which are the ones gpu_dl's Python could cause.
    """
    cupyx = pytest.importorskip("cupyx")
    if not hasattr(cupyx, "allow_synchronize"):   # deprecated since CuPy 10; the emulated cupyx has none
        pytest.skip("this cupyx has no synchronisation detector (cupyx.allow_synchronize)")
    cupy = cupy_only
    model, shape = _model(kind)
    rng = numpy.random.default_rng(0)
    x = rng.integers(0, 10, (64,) + shape) if kind in ("embedding", "multi_hot") else rng.standard_normal((64,) + shape)
    x, y = x.astype("float32"), rng.integers(0, 5, 64)
    model.train_on_batch(x, y)                 # builds, compiles kernels, creates optimizer slots, checks x's ids
    xb, yb = cupy.asarray(x[:32]), cupy.asarray(y[:32])
    cupy.cuda.runtime.deviceSynchronize()
    with cupyx.allow_synchronize(False):
        for _ in range(3):
            model._train_step(xb, yb, None, ids_checked=True)     # as fit runs it on batches of checked arrays
    loss = model._logs()["loss"]               # the one scalar the progress bar reads, after the steps
    assert numpy.isfinite(loss)


def test_pool_serves_cupy_and_reports_out_of_memory_with_device_figures(cupy_only):
    cupy = cupy_only
    from gpu_dl.backend import cupy_allocator
    if not cupy_allocator.is_installed():
        pytest.skip("gpu_dl's pool is not CuPy's allocator here (GPU_DL_ALLOCATOR is set)")
    before = backend.memory_stats().get("num_allocs", 0)
    a = cupy.arange(1000, dtype=cupy.float32)
    assert backend.memory_stats()["num_allocs"] > before and float(a.sum()) == 499500.0
    free, total = cupy.cuda.runtime.memGetInfo()
    with pytest.raises(backend.OutOfMemoryError) as caught:
        cupy.empty(2 * total, dtype=cupy.uint8)
    message = str(caught.value)
    assert "tried to allocate" in message and "free of" in message and "batch_size" in message
    assert backend.memory_stats()["num_ooms"] >= 1
    b = cupy.ones(10)                          # the pool still works after the error
    assert float(b.sum()) == 10.0
    assert "Allocated memory" in backend.memory_summary()
