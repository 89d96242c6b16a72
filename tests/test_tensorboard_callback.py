"""TensorBoard: the event files a fit writes, read back record by record, against History and Keras's tags."""
import io
import struct
import subprocess
import sys
import types
from pathlib import Path

import numpy
import pytest

pytest.importorskip("tensorboardX", reason="TensorBoard writes with tensorboardX: pip install \"gpu_dl[tensorboard]\"")
from tensorboardX.proto.event_pb2 import Event  # noqa: E402
from tensorboardX.record_writer import masked_crc32c  # noqa: E402

from gpu_dl import backend, callbacks, layers, optimizers  # noqa: E402
from gpu_dl.backend import profiler  # noqa: E402
from gpu_dl.callbacks import tensorboard_events  # noqa: E402
from gpu_dl.models import Model, Sequential  # noqa: E402
from gpu_dl.utils import clear_session  # noqa: E402
from toy_data import blobs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ helpers

def classifier(seed=0):
    clear_session()     # the layers get Keras's first names (dense, dense_1): the weight paths are known
    backend.set_random_seed(seed)
    model = Sequential([layers.Input((2,)), layers.Dense(8, activation="relu"), layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.SGD(0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def read_events(folder):
    """Every Event of the event files in ``folder``, oldest file first, after checking the TFRecord framing."""
    found = []
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            header = data[at:at + 8]
            (length,) = struct.unpack("<Q", header)
            assert struct.unpack("<I", data[at + 8:at + 12])[0] == masked_crc32c(header)
            body = data[at + 12:at + 12 + length]
            assert struct.unpack("<I", data[at + 12 + length:at + 16 + length])[0] == masked_crc32c(body)
            found.append(Event.FromString(body))
            at += 16 + length
    return found


def values(folder):
    """``{tag: [(step, Summary.Value), ...]}`` in the order written."""
    out = {}
    for event in read_events(folder):
        for value in event.summary.value:
            out.setdefault(value.tag, []).append((event.step, value))
    return out


def scalars(folder):
    """``{tag: [(step, float), ...]}`` of the scalar summaries."""
    return {tag: [(step, v.simple_value) for step, v in entries] for tag, entries in values(folder).items()
            if entries[0][1].HasField("simple_value")}


def as_float32(numbers):
    return [float(numpy.float32(n)) for n in numbers]


def fit(model, callback, epochs=2, validation=False, **kwargs):
    x, y = blobs(96)   # batches of 32: three per epoch
    data = (x[:30], y[:30]) if validation else None
    return model.fit(x, y, batch_size=32, epochs=epochs, validation_data=data, callbacks=[callback], verbose=0,
                     shuffle=False, **kwargs)


# ----------------------------------------------------------------- epoch logs

def test_epoch_scalars_equal_history_with_keras_tags_and_steps(tmp_path):
    model = classifier()
    history = fit(model, callbacks.TensorBoard(log_dir=tmp_path), epochs=3)
    train = scalars(tmp_path / "train")
    assert set(train) == {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"}
    for name in ("loss", "accuracy"):
        assert [s for s, _ in train[f"epoch_{name}"]] == [0, 1, 2]
        assert [v for _, v in train[f"epoch_{name}"]] == as_float32(history.history[name])
    assert train["epoch_learning_rate"] == [(e, float(numpy.float32(0.05))) for e in range(3)]
    assert not (tmp_path / "validation").exists()


def test_validation_is_written_under_validation_without_the_prefix(tmp_path):
    model = classifier()
    history = fit(model, callbacks.TensorBoard(log_dir=tmp_path), validation=True)
    val = scalars(tmp_path / "validation")
    assert [v for _, v in val["epoch_loss"]] == as_float32(history.history["val_loss"])
    assert [v for _, v in val["epoch_accuracy"]] == as_float32(history.history["val_accuracy"])
    # Keras's evaluation scalars: at the optimizer's iteration count after each epoch's 3 steps.
    assert [s for s, _ in val["evaluation_loss_vs_iterations"]] == [3, 6]
    assert [v for _, v in val["evaluation_loss_vs_iterations"]] == as_float32(history.history["val_loss"])
    assert "epoch_val_loss" not in scalars(tmp_path / "train")


def test_evaluate_writes_the_evaluation_scalars_at_the_iteration_count(tmp_path):
    model = classifier()
    fit(model, callbacks.TensorBoard(log_dir=tmp_path / "fit"), epochs=1)
    x, y = blobs(96)
    loss, accuracy = model.evaluate(x, y, callbacks=[callbacks.TensorBoard(log_dir=tmp_path / "eval")], verbose=0)
    val = scalars(tmp_path / "eval" / "validation")
    assert val["evaluation_loss_vs_iterations"] == [(3, float(numpy.float32(loss)))]
    assert val["evaluation_accuracy_vs_iterations"] == [(3, float(numpy.float32(accuracy)))]
    assert "keras" in values(tmp_path / "eval" / "train")     # the config, as Keras writes it for any run


def test_evaluate_and_predict_of_their_own_close_their_files(tmp_path):
    model = classifier()
    callback = callbacks.TensorBoard(log_dir=tmp_path)
    fit(model, callback, epochs=1)
    assert callback._writers == {}
    x, y = blobs(96)
    model.evaluate(x, y, callbacks=[callback], verbose=0)
    assert callback._writers == {}
    model.predict(x, callbacks=[callback], verbose=0)
    assert callback._writers == {}
    # fit's, evaluate's and predict's configs, each in a file of its own.
    assert len(list((tmp_path / "train").glob("events.out.tfevents.*"))) == 3
    assert len(values(tmp_path / "train")["keras"]) == 3


def test_steps_per_second_is_written_when_asked(tmp_path):
    fit(classifier(), callbacks.TensorBoard(log_dir=tmp_path, write_steps_per_second=True))
    train = scalars(tmp_path / "train")
    assert [s for s, _ in train["epoch_steps_per_second"]] == [0, 1]
    assert all(v > 0 for _, v in train["epoch_steps_per_second"])
    assert not any(tag.startswith("batch_") for tag in train)


# ----------------------------------------------------------------- batch logs

class BatchLosses(callbacks.Callback):
    """The running loss after each training batch, as the loop hands it to the batch hook."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append((logs["loss"], logs["accuracy"]))


@pytest.mark.parametrize("update_freq, steps", [("batch", [1, 2, 3, 4, 5, 6]), (2, [2, 4, 6]), (4, [4])])
def test_batch_scalars_at_keras_global_steps(tmp_path, update_freq, steps):
    model = classifier()
    seen = BatchLosses()
    x, y = blobs(96)
    model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0,
              callbacks=[callbacks.TensorBoard(log_dir=tmp_path, update_freq=update_freq,
                                               write_steps_per_second=True), seen])
    train = scalars(tmp_path / "train")
    assert [s for s, _ in train["batch_loss"]] == steps
    assert [v for _, v in train["batch_loss"]] == as_float32([seen.seen[s - 1][0] for s in steps])
    assert [v for _, v in train["batch_accuracy"]] == as_float32([seen.seen[s - 1][1] for s in steps])
    assert [s for s, _ in train["batch_steps_per_second"]] == steps
    assert [s for s, _ in train["epoch_loss"]] == [0, 1]


def test_batch_steps_continue_over_the_epochs_of_a_generator(tmp_path):
    x, y = blobs(96)
    batches = ((x[s:s + 32], y[s:s + 32]) for _ in range(2) for s in range(0, 96, 32))
    model = classifier()
    model.fit(batches, steps_per_epoch=3, epochs=2, verbose=0, shuffle=False,
              callbacks=[callbacks.TensorBoard(log_dir=tmp_path, update_freq=2)])
    assert [s for s, _ in scalars(tmp_path / "train")["batch_loss"]] == [2, 4, 6]


@pytest.mark.parametrize("update_freq, profile_batch, reads", [
    ("epoch", 0, 2),            # the two epochs' logs only
    (2, 0, 2 + 3),              # and batches 2, 4 and 6
    ("epoch", (2, 5), 2 + 1),   # and batch 5, where the profiled range ends (nothing inside the range)
])
def test_batch_logs_are_read_only_where_written(monkeypatch, tmp_path, update_freq, profile_batch, reads):
    # Each batch's logs are read back from the device: a read inside the step loop waits for the GPU.
    monkeypatch.setattr(profiler, "start", lambda: True)
    monkeypatch.setattr(profiler, "stop", lambda: True)
    model = classifier()
    calls = []
    model_logs = model._logs
    model._logs = lambda *a, **k: calls.append(1) or model_logs(*a, **k)
    fit(model, callbacks.TensorBoard(log_dir=tmp_path, update_freq=update_freq, histogram_freq=1,
                                     profile_batch=profile_batch))
    assert len(calls) == reads


# ------------------------------------------------------------- weights, graph

def test_histograms_every_histogram_freq_epochs_with_keras_paths(tmp_path):
    model = classifier()
    weights_at = {}
    record = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: weights_at.setdefault(
        epoch, [w.numpy() for w in model.weights]))
    x, y = blobs(96)
    model.fit(x, y, batch_size=32, epochs=3, verbose=0,
              callbacks=[record, callbacks.TensorBoard(log_dir=tmp_path, histogram_freq=2)])
    written = {tag: entries for tag, entries in values(tmp_path / "train").items() if tag.endswith("/histogram")}
    paths = ["sequential/dense/kernel", "sequential/dense/bias", "sequential/dense_1/kernel", "sequential/dense_1/bias"]
    assert sorted(written) == sorted(f"{p}/histogram" for p in paths)
    for index, path in enumerate(paths):
        entries = written[f"{path}/histogram"]
        assert [s for s, _ in entries] == [0, 2]
        for step, value in entries:
            expected = weights_at[step][index].astype(numpy.float64)
            histo = value.histo
            assert histo.num == expected.size and sum(histo.bucket) == expected.size
            assert histo.min == pytest.approx(expected.min()) and histo.max == pytest.approx(expected.max())
            assert histo.sum == pytest.approx(expected.sum(), abs=1e-9)


def test_functional_model_paths_have_no_model_prefix(tmp_path):
    clear_session()
    backend.set_random_seed(0)
    inputs = layers.Input((2,))
    model = Model(inputs, layers.Dense(3, activation="softmax", name="head")(inputs))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    fit(model, callbacks.TensorBoard(log_dir=tmp_path, histogram_freq=1), epochs=1)
    tags = {tag for tag in values(tmp_path / "train") if tag.endswith("/histogram")}
    assert tags == {"head/kernel/histogram", "head/bias/histogram"}


def test_write_graph_writes_the_model_config_as_keras_does(tmp_path):
    model = classifier()
    fit(model, callbacks.TensorBoard(log_dir=tmp_path), epochs=1)
    ((step, value),) = values(tmp_path / "train")["keras"]
    assert step == 0
    assert value.metadata.plugin_data.plugin_name == "graph_keras_model"
    assert value.metadata.plugin_data.content == b"1"
    assert value.tensor.string_val[0].decode() == model.to_json()
    fit(classifier(), callbacks.TensorBoard(log_dir=tmp_path / "none", write_graph=False), epochs=1)
    assert "keras" not in values(tmp_path / "none" / "train")


def test_write_images_writes_the_weights_as_keras_lays_them_out(tmp_path):
    from PIL import Image
    model = classifier()
    fit(model, callbacks.TensorBoard(log_dir=tmp_path, histogram_freq=1, write_images=True), epochs=1)
    images = values(tmp_path / "train")
    kernel, bias = (w.numpy() for w in model.layers[0].weights)
    for tag, expected in (("sequential/dense/kernel/image", kernel), ("sequential/dense/bias/image", bias[:, None])):
        ((step, value),) = images[tag]
        assert step == 0 and value.metadata.plugin_data.plugin_name == "images"
        width, height, png = value.tensor.string_val
        assert (int(width), int(height)) == (expected.shape[1], expected.shape[0])
        pixels = numpy.asarray(Image.open(io.BytesIO(png)))
        assert pixels.dtype == numpy.uint8 and pixels.shape == expected.shape
        assert numpy.array_equal(pixels, numpy.clip(expected.astype(numpy.float64) * 255.5, 0, 255).astype(numpy.uint8))


@pytest.mark.parametrize("shape, laid_out", [
    ((5,), (1, 5, 1, 1)), ((2, 8), (1, 2, 8, 1)), ((8, 2), (1, 2, 8, 1)), ((3, 3, 1, 4), (4, 3, 3, 1)),
    ((3, 1, 6), (1, 3, 6, 1)), ((2, 3, 6), (6, 2, 3, 1)), ((3, 3, 2, 3), (3, 3, 2, 3)), ((3, 3, 2, 5), None),
    ((1,), None)])
def test_weight_image_layout_follows_keras(shape, laid_out):
    weight = numpy.arange(numpy.prod(shape), dtype=numpy.float32).reshape(shape)
    image = tensorboard_events.weight_images(weight)
    assert (None if image is None else image.shape) == laid_out
    if shape == (8, 2):
        assert numpy.array_equal(image[0, :, :, 0], weight.T)


def test_histogram_leaves_out_non_finite_values():
    summary = tensorboard_events.histogram("w", numpy.array([1.0, numpy.nan, 3.0, numpy.inf]))
    assert summary.value[0].histo.num == 2 and summary.value[0].histo.max == 3.0
    assert tensorboard_events.histogram("w", numpy.array([numpy.nan])) is None


# ------------------------------------------------------------------ arguments

@pytest.mark.parametrize("kwargs, error, words", [
    (dict(update_freq="step"), ValueError, "update_freq"),
    (dict(update_freq=0), ValueError, "update_freq"),
    (dict(update_freq=-2), ValueError, "update_freq"),
    (dict(update_freq=True), ValueError, "update_freq"),
    (dict(histogram_freq=-1), ValueError, "histogram_freq"),
    (dict(histogram_freq=1.5), ValueError, "histogram_freq"),
    (dict(profile_batch=-1), ValueError, "profile_batch"),
    (dict(profile_batch=(5, 2)), ValueError, "profile_batch"),
    (dict(profile_batch=(0, 3)), ValueError, "profile_batch"),
    (dict(profile_batch=(1, 2, 3)), ValueError, "profile_batch"),
    (dict(profile_batch="a,b"), ValueError, "profile_batch"),
    (dict(profile_batch=1.0), ValueError, "profile_batch"),
    (dict(write_images="yes"), TypeError, "write_images"),
    (dict(log_dir=3), TypeError, "log_dir"),
    (dict(embeddings_freq=1), NotImplementedError, "embeddings_freq"),
    (dict(embeddings_freq=-1), ValueError, "embeddings_freq"),
    (dict(embeddings_metadata=3), TypeError, "embeddings_metadata"),
])
def test_bad_arguments_are_refused_naming_them(tmp_path, kwargs, error, words):
    kwargs.setdefault("log_dir", tmp_path)
    with pytest.raises(error, match=words):
        callbacks.TensorBoard(**kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("given, start_stop", [
    (0, (0, 0)), (3, (3, 3)), ((2, 5), (2, 5)), ([4, 4], (4, 4)), ("2,6", (2, 6)), ("7", (7, 7))])
def test_profile_batch_forms_keras_accepts(tmp_path, given, start_stop):
    callback = callbacks.TensorBoard(log_dir=tmp_path, profile_batch=given)
    assert (callback._start_batch, callback._stop_batch) == start_stop


def test_defaults_are_keras_defaults():
    callback = callbacks.TensorBoard()
    assert (callback.log_dir, callback.histogram_freq, callback.write_graph, callback.write_images,
            callback.write_steps_per_second, callback.update_freq, callback.embeddings_freq) == \
        ("logs", 0, True, False, False, "epoch", 0)
    assert callbacks.TensorBoard(update_freq="batch").update_freq == 1


def test_missing_tensorboardx_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)     # makes `import tensorboardX` fail
    with pytest.raises(ImportError, match=r'pip install "gpu_dl\[tensorboard\]"'):
        callbacks.TensorBoard(log_dir=tmp_path)


def test_gpu_dl_imports_without_tensorboardx():
    script = ("import sys; sys.modules['tensorboardX'] = None\n"
              "import gpu_dl, gpu_dl.callbacks\n"
              "assert gpu_dl.callbacks.TensorBoard\n")
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr


# ------------------------------------------------------------------ profiling

@pytest.mark.parametrize("profile_batch, expected", [
    ((2, 5), [("start", 1), ("stop", 5)]),
    (4, [("start", 3), ("stop", 4)]),
    ((5, 100), [("start", 4), ("stop", 6)]),     # past the end: stopped when training ends
    (0, []),
])
def test_profile_batch_starts_and_stops_the_cuda_profiler_around_those_batches(monkeypatch, tmp_path,
                                                                               profile_batch, expected):
    model = classifier()
    calls = []     # (what, training steps taken when it was called)
    monkeypatch.setattr(profiler, "start", lambda: calls.append(("start", int(model.optimizer.iterations))) or True)
    monkeypatch.setattr(profiler, "stop", lambda: calls.append(("stop", int(model.optimizer.iterations))) or True)
    fit(model, callbacks.TensorBoard(log_dir=tmp_path, profile_batch=profile_batch))
    assert calls == expected


def fake_cupy(monkeypatch):
    """Put a stand-in for cupy in sys.modules that records the CUDA runtime calls made through it."""
    calls = []
    runtime = types.SimpleNamespace(profilerStart=lambda: calls.append("profilerStart"),
                                    profilerStop=lambda: calls.append("profilerStop"),
                                    deviceSynchronize=lambda: calls.append("deviceSynchronize"))
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime)))
    return calls


def test_profiler_does_nothing_on_the_cpu(monkeypatch, tmp_path):
    model = classifier()
    calls = fake_cupy(monkeypatch)
    monkeypatch.setattr(profiler, "get_device", lambda: "cpu")
    assert profiler.start() is False and profiler.stop() is False
    fit(model, callbacks.TensorBoard(log_dir=tmp_path, profile_batch=(2, 3)))
    assert calls == []


def test_profiler_calls_the_cuda_profiler_api_on_the_gpu(monkeypatch):
    calls = fake_cupy(monkeypatch)
    monkeypatch.setattr(profiler, "get_device", lambda: "gpu")
    assert profiler.start() is True
    assert profiler.stop() is True
    # The queued kernels finish before the capture range closes.
    assert calls == ["profilerStart", "deviceSynchronize", "profilerStop"]
