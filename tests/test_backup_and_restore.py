"""BackupAndRestore: a fit interrupted by an exception and run again with the same callback resumes from the backup
and ends with the weights (and optimizer state) of an uninterrupted fit; batch-level saves, the double checkpoint,
the clean-up, and the refused arguments."""
import json
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers
from gpu_dl.callbacks import BackupAndRestore, Callback

EPOCHS = 4


def data():
    rng = numpy.random.default_rng(0)
    return rng.normal(size=(24, 3)).astype("float32"), rng.normal(size=(24, 2)).astype("float32")


def make_model():
    backend.set_random_seed(3)
    model = gpu_dl.models.Sequential([gpu_dl.Input((3,)), layers.Dense(4, activation="tanh"), layers.Dense(2)])
    model.compile(gpu_dl.optimizers.Adam(0.05), "mse")
    return model


class InterruptAt(Callback):
    """Raises at the end of one epoch (or batch), as a crash would."""

    def __init__(self, epoch, batch=None):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.batch is not None and self.current == self.epoch and batch == self.batch:
            raise RuntimeError("interrupted")

    def on_epoch_end(self, epoch, logs=None):
        if self.batch is None and epoch == self.epoch:
            raise RuntimeError("interrupted")


def uninterrupted():
    model = make_model()
    model.fit(*data(), batch_size=8, epochs=EPOCHS, shuffle=False, verbose=0)
    return model


@pytest.mark.parametrize("interrupt", [InterruptAt(1), InterruptAt(2, batch=1)], ids=["after_epoch", "mid_epoch"])
def test_interrupted_fit_resumes_to_the_same_weights(tmp_path, interrupt):
    save_freq = "epoch"
    expected = uninterrupted()
    backup_dir = tmp_path / "backup"
    model = make_model()
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(*data(), batch_size=8, epochs=EPOCHS, shuffle=False, verbose=0,
                  callbacks=[BackupAndRestore(backup_dir, save_freq=save_freq), interrupt])
    metadata = json.loads((backup_dir / "training_metadata.json").read_text())
    assert metadata["epoch"] == 2 and (backup_dir / "latest.weights.h5").exists()
    # a fresh process would start again from a new model: the backup gives it the weights and optimizer state
    resumed = make_model()
    epochs_run = []
    history = resumed.fit(*data(), batch_size=8, epochs=EPOCHS, shuffle=False, verbose=0,
                          callbacks=[BackupAndRestore(backup_dir, save_freq=save_freq),
                                     gpu_dl.callbacks.LambdaCallback(on_epoch_begin=lambda e, l: epochs_run.append(e))])
    assert epochs_run == [2, 3] and history.epoch == [2, 3]
    for ours, theirs in zip(resumed.get_weights(), expected.get_weights()):
        numpy.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert not backup_dir.exists()      # deleted after a fit that ended normally


def test_batch_saves_resume_the_unfinished_epoch_from_its_start(tmp_path):
    # As Keras: a backup taken mid-epoch records that epoch, which the resumed fit runs again from its first batch
    # with the weights of the save.
    backup_dir = tmp_path / "b"
    model = make_model()
    with pytest.raises(RuntimeError):
        model.fit(*data(), batch_size=8, epochs=EPOCHS, shuffle=False, verbose=0,
                  callbacks=[BackupAndRestore(backup_dir, save_freq=4), InterruptAt(2, batch=1)])
    # 3 batches an epoch: saves after the 4th and 8th batches, the last in epoch 2 (its batch 1)
    assert json.loads((backup_dir / "training_metadata.json").read_text()) == {"epoch": 2, "batch": 1}
    saved = make_model()
    saved.load_weights(str(backup_dir / "latest.weights.h5"))
    resumed = make_model()
    seen = []
    resumed.fit(*data(), batch_size=8, epochs=EPOCHS, shuffle=False, verbose=0,
                callbacks=[BackupAndRestore(backup_dir, save_freq=4),
                           gpu_dl.callbacks.LambdaCallback(on_epoch_begin=lambda e, l: seen.append(
                               (e, [w.copy() for w in resumed.get_weights()])))])
    assert [e for e, _ in seen] == [2, 3]
    for ours, theirs in zip(seen[0][1], saved.get_weights()):
        numpy.testing.assert_array_equal(ours, theirs)


def test_double_checkpoint_falls_back_to_the_previous_backup(tmp_path):
    backup_dir = tmp_path / "b"
    model = make_model()
    with pytest.raises(RuntimeError):
        model.fit(*data(), batch_size=8, epochs=EPOCHS, shuffle=False, verbose=0,
                  callbacks=[BackupAndRestore(backup_dir, double_checkpoint=True), InterruptAt(2)])
    assert json.loads((backup_dir / "training_metadata.json.bkp").read_text())["epoch"] == 2
    (backup_dir / "latest.weights.h5").write_bytes(b"truncated")      # a crash mid-save
    resumed = make_model()
    epochs_run = []
    resumed.fit(*data(), batch_size=8, epochs=EPOCHS, shuffle=False, verbose=0,
                callbacks=[BackupAndRestore(backup_dir, double_checkpoint=True, delete_checkpoint=False),
                           gpu_dl.callbacks.LambdaCallback(on_epoch_begin=lambda e, l: epochs_run.append(e))])
    assert epochs_run == [2, 3]
    for ours, theirs in zip(resumed.get_weights(), uninterrupted().get_weights()):
        numpy.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert (backup_dir / "latest.weights.h5").exists()     # delete_checkpoint=False keeps it


def test_cleanup_keeps_other_files_and_damaged_backup_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    model = make_model()
    model.fit(*data(), batch_size=8, epochs=1, verbose=0, callbacks=[BackupAndRestore(tmp_path)])
    assert os.listdir(tmp_path) == ["notes.txt"]
    (tmp_path / "training_metadata.json").write_text('{"epoch": "two"}')
    with pytest.raises(ValueError, match="non-negative integer"):
        model.fit(*data(), epochs=1, verbose=0, callbacks=[BackupAndRestore(tmp_path)])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="backup_dir"):
        BackupAndRestore("")
    with pytest.raises(TypeError, match="backup_dir"):
        BackupAndRestore(3)
    for bad in ("batch", 0, -2, 1.5, True):
        with pytest.raises(ValueError, match="save_freq"):
            BackupAndRestore("dir", save_freq=bad)
