"""audio_dataset_from_directory on WAV folders the tests write with the standard library's ``wave``: Keras's file
order, labels and splits (against Keras's own index where Keras is installed), decoding against the integer
samples written, padding and cutting, a model trained on a folder, and what it refuses."""
import os
import wave

import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.data.audio_folders import read_wav
from gpu_dl.utils import audio_dataset_from_directory

# Keras's order: class folders sorted (hidden ones skipped), each walked in sorted order, ".wav" in any case
LENGTHS = {"bird/a.wav": 40, "bird/deep/b.wav": 25, "cat/c.wav": 33, "cat/d.WAV": 12, "cat/e.wav": 40,
           "dog/f.wav": 7, "dog/g.wav": 29}
ORDER = list(LENGTHS)


def write_wav(path, samples, rate=8000, width=2):
    """``samples`` (frames, channels) of integers, written as ``width``-byte PCM."""
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = numpy.asarray(samples)
    if width == 1:
        data = (samples + 128).astype(numpy.uint8).tobytes()
    elif width == 3:
        little = samples.astype("<i4").view(numpy.uint8).reshape(samples.shape + (4,))
        data = little[..., :3].tobytes()
    else:
        data = samples.astype("<i2" if width == 2 else "<i4").tobytes()
    with wave.open(str(path), "wb") as f:
        f.setnchannels(samples.shape[1])
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(data)


@pytest.fixture
def audio_folder(tmp_path):
    """Mono 16-bit files of LENGTHS, each sample from a fixed generator; returns (folder, {name: int samples})."""
    rng = numpy.random.default_rng(3)
    root = tmp_path / "sounds"
    written = {}
    for name, length in LENGTHS.items():
        written[name] = rng.integers(-32768, 32768, (length, 1))
        write_wav(root / name, written[name])
    (root / ".hidden").mkdir()
    write_wav(root / ".hidden" / "x.wav", numpy.zeros((5, 1), int))
    (root / "cat" / "notes.txt").write_text("not audio")
    return root, written


def _relative(paths, root):
    return [os.path.relpath(p, root).replace(os.sep, "/") for p in paths]


def test_files_labels_and_padded_batches(audio_folder):
    root, written = audio_folder
    ds = audio_dataset_from_directory(root, shuffle=False, batch_size=3, verbose=False)
    assert ds.class_names == ["bird", "cat", "dog"] and len(ds) == 3
    assert _relative(ds.file_paths, root) == ORDER
    audio, labels = ds[0]
    assert audio.dtype == numpy.float32 and audio.shape == (3, 40, 1)     # padded to the batch's longest file
    assert labels.dtype == numpy.int32 and labels.tolist() == [0, 0, 1]
    for row, name in enumerate(ORDER[:3]):
        values = written[name][:, 0] / 32768.0
        numpy.testing.assert_array_equal(audio[row, :len(values), 0], values.astype(numpy.float32))
        assert not audio[row, len(values):].any()
    audio, labels = ds[2]
    assert audio.shape == (1, 29, 1) and labels.tolist() == [2]
    one = audio_dataset_from_directory(root, shuffle=False, batch_size=None, label_mode="categorical",
                                       verbose=False)
    clip, label = one[3]
    assert clip.shape == (12, 1) and label.tolist() == [0.0, 1.0, 0.0] and label.dtype == numpy.float32
    # without inferred labels the whole tree is walked, hidden folders included (as Keras walks it)
    bare = audio_dataset_from_directory(root, labels=None, shuffle=False, batch_size=3, verbose=False)
    assert bare.class_names is None and bare[0].shape == (3, 40, 1)
    assert _relative(bare.file_paths, root) == [".hidden/x.wav"] + ORDER
    assert not bare[0][0].any()
    numpy.testing.assert_array_equal(bare[0][2, :25, 0], (written["bird/deep/b.wav"][:, 0] / 32768.0))


def test_output_sequence_length_cuts_and_pads(audio_folder):
    root, written = audio_folder
    ds = audio_dataset_from_directory(root, shuffle=False, batch_size=4, output_sequence_length=30, verbose=False)
    audio, _ = ds[0]
    assert audio.shape == (4, 30, 1)
    numpy.testing.assert_array_equal(audio[0, :, 0], (written["bird/a.wav"][:30, 0] / 32768.0).astype("float32"))
    numpy.testing.assert_array_equal(audio[1, :25, 0], (written["bird/deep/b.wav"][:, 0] / 32768.0))
    assert not audio[1, 25:].any()
    assert ds[1][0].shape == (3, 30, 1)        # every batch the same length


def test_ragged_batches_keep_each_length(audio_folder):
    root, written = audio_folder
    ds = audio_dataset_from_directory(root, shuffle=False, batch_size=4, ragged=True, verbose=False)
    audio, labels = ds[0]
    assert audio.dtype == object and [a.shape for a in audio] == [(40, 1), (25, 1), (33, 1), (12, 1)]
    numpy.testing.assert_array_equal(audio[3][:, 0], written["cat/d.WAV"][:, 0] / 32768.0)


def test_split_and_shuffle_follow_keras(audio_folder):
    root, _ = audio_folder
    train, val = audio_dataset_from_directory(root, validation_split=0.3, subset="both", seed=11, verbose=False)
    shuffled = list(ORDER)
    numpy.random.RandomState(11).shuffle(shuffled)           # Keras's shuffle of the file list
    assert _relative(train.file_paths, root) == shuffled[:5] and _relative(val.file_paths, root) == shuffled[5:]
    assert train.shuffle and not val.shuffle
    labels = numpy.asarray([0, 0, 1, 1, 1, 2, 2])
    numpy.random.RandomState(11).shuffle(labels)
    assert numpy.concatenate([train.labels, val.labels]).tolist() == labels.tolist()
    only = audio_dataset_from_directory(root, validation_split=0.3, subset="validation", seed=11, verbose=False)
    assert only.file_paths == val.file_paths
    # each pass reads every training file once, in a new order
    seen = [sorted(numpy.concatenate([y for _, y in train]).tolist()) for _ in range(2)]
    assert seen[0] == seen[1] == sorted(train.labels.tolist())


def test_explicit_labels_class_names_and_binary(audio_folder):
    root, _ = audio_folder
    ds = audio_dataset_from_directory(root, labels=[1, 0, 1, 0, 1, 0, 1, 1], label_mode="binary", shuffle=False,
                                      verbose=False)
    assert ds.class_names == ["0", "1"]
    _, labels = ds[0]
    assert labels.shape == (8, 1) and labels[:, 0].tolist() == [1, 0, 1, 0, 1, 0, 1, 1]
    picked = audio_dataset_from_directory(root, class_names=["dog", "bird"], shuffle=False, verbose=False)
    assert _relative(picked.file_paths, root) == ORDER[5:] + ORDER[:2]
    assert picked[0][1].tolist() == [0, 0, 1, 1]


def test_stereo_and_other_sample_widths(tmp_path):
    rng = numpy.random.default_rng(0)
    cases = {1: (rng.integers(-128, 128, (9, 2)), 128.0), 2: (rng.integers(-32768, 32768, (9, 2)), 32768.0),
             3: (rng.integers(-2 ** 23, 2 ** 23, (9, 2)), 2.0 ** 23), 4: (rng.integers(-2 ** 31, 2 ** 31, (9, 2)),
                                                                        2.0 ** 31)}
    for width, (samples, scale) in cases.items():
        path = tmp_path / f"w{width}.wav"
        write_wav(path, samples, rate=11025, width=width)
        audio, rate = read_wav(path)
        assert rate == 11025 and audio.dtype == numpy.float32 and audio.shape == (9, 2)
        numpy.testing.assert_allclose(audio, samples / scale, rtol=1e-7, atol=0)
        cut, _ = read_wav(path, desired_samples=4)
        numpy.testing.assert_array_equal(cut, audio[:4])
        padded, _ = read_wav(path, desired_samples=12)
        numpy.testing.assert_array_equal(padded[:9], audio)
        assert not padded[9:].any()


def test_a_model_trains_on_a_folder_of_sounds(tmp_path):
    rng = numpy.random.default_rng(5)
    t = numpy.arange(256) / 8000.0
    for label, pitch in (("high", 2500.0), ("low", 300.0)):
        for i in range(6):
            tone = 12000 * numpy.sin(2 * numpy.pi * (pitch + 40 * i) * t + rng.uniform(0, 6))
            write_wav(tmp_path / "tones" / label / f"{i}.wav",
                      (tone + rng.normal(0, 500, t.shape)).astype(int)[:, None])
    ds = audio_dataset_from_directory(tmp_path / "tones", batch_size=4, seed=2, verbose=False)
    gpu_dl.utils.set_random_seed(4)
    model = gpu_dl.Sequential([layers.Input((256, 1)), layers.STFTSpectrogram(frame_length=32, frame_step=16,
                                                                              mode="log"),
                               layers.GlobalAveragePooling1D(), layers.Dense(1, activation="sigmoid")])
    model.compile(gpu_dl.optimizers.Adam(0.05), "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(ds, epochs=15, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] == 1.0


def test_bad_arguments_and_files(audio_folder, tmp_path):
    root, _ = audio_folder
    with pytest.raises(ValueError, match="label_mode"):
        audio_dataset_from_directory(root, label_mode="sparse")
    with pytest.raises(ValueError, match="`labels` argument should be a list/tuple"):
        audio_dataset_from_directory(root, labels="auto")
    with pytest.raises(ValueError, match="class_names"):
        audio_dataset_from_directory(root, labels=[0] * 8, class_names=["a"])
    with pytest.raises(ValueError, match="both `ragged` and `output_sequence_length`"):
        audio_dataset_from_directory(root, ragged=True, output_sequence_length=10)
    with pytest.raises(ValueError, match="integer value"):
        audio_dataset_from_directory(root, sampling_rate=8000.0)
    with pytest.raises(ValueError, match="higher than 0"):
        audio_dataset_from_directory(root, sampling_rate=0)
    with pytest.raises(ValueError, match="output_sequence_length"):
        audio_dataset_from_directory(root, output_sequence_length=0)
    with pytest.raises(ValueError, match="batch_size"):
        audio_dataset_from_directory(root, batch_size=0)
    with pytest.raises(ValueError, match="provide a `seed`"):
        audio_dataset_from_directory(root, validation_split=0.5, subset="training")
    with pytest.raises(ValueError, match="exactly 2 class_names"):
        audio_dataset_from_directory(root, label_mode="binary", verbose=False)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        audio_dataset_from_directory(tmp_path / "missing")
    (tmp_path / "empty" / "x").mkdir(parents=True)
    with pytest.raises(ValueError, match="No audio files found"):
        audio_dataset_from_directory(tmp_path / "empty", verbose=False)
    resampled = audio_dataset_from_directory(root, sampling_rate=16000, shuffle=False, verbose=False)
    with pytest.raises(ValueError, match="8000 Hz.*does not resample"):
        resampled[0]
    assert audio_dataset_from_directory(root, sampling_rate=8000, shuffle=False, verbose=False)[0][0].shape == \
        (7, 40, 1)
    write_wav(root / "dog" / "h.wav", numpy.zeros((5, 2), int))       # stereo among mono files
    mixed = audio_dataset_from_directory(root, shuffle=False, verbose=False)
    with pytest.raises(ValueError, match="same number of channels"):
        mixed[0]
    (root / "dog" / "i.wav").write_bytes(b"RIFF not really a wave file")
    broken = audio_dataset_from_directory(root, shuffle=False, batch_size=None, verbose=False)
    with pytest.raises(ValueError, match="i.wav.*PCM WAV"):
        broken[len(broken) - 1]


def test_index_and_split_match_keras(audio_folder):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("keras")
    from keras.src.utils import dataset_utils
    root, _ = audio_folder
    for kwargs in [dict(shuffle=False), dict(seed=3), dict(seed=8, validation_split=0.4, subset="training"),
                   dict(seed=8, validation_split=0.4, subset="validation"),
                   dict(shuffle=False, labels=[2, 0, 1, 1, 0, 2, 2, 1]), dict(seed=4, labels=None)]:
        kwargs = dict(kwargs)
        split, subset = kwargs.pop("validation_split", None), kwargs.pop("subset", None)
        labels = kwargs.pop("labels", "inferred")
        ours = audio_dataset_from_directory(root, labels=labels, validation_split=split, subset=subset,
                                            verbose=False, **kwargs)
        paths, keras_labels, names = dataset_utils.index_directory(str(root), labels, formats=(".wav",),
                                                                    verbose=False, **kwargs)
        if split:
            paths, keras_labels = dataset_utils.get_training_or_validation_split(paths, keras_labels, split, subset)
        assert ours.file_paths == list(paths) and ours.class_names == names
        if labels is not None:
            assert ours.labels.tolist() == numpy.asarray(keras_labels).tolist()
