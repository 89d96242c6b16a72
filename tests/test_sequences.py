"""timeseries_dataset_from_array, pad_sequences, and fit/evaluate/predict on a SequenceDataset."""
import os

import numpy
import pytest

from gpu_dl import backend, layers, optimizers
from gpu_dl.data import SequenceDataset, pad_sequences, timeseries_dataset_from_array
from gpu_dl.models import Sequential
from toy_data import quiet


def expected_windows(data, targets, sequence_length, stride=1, rate=1, start=None, end=None):
    """Keras's windows written out one at a time: starts s = start + i * stride while the last row fits."""
    start = 0 if start is None else start
    end = len(data) if end is None else end
    xs, ys = [], []
    s = start
    while s + (sequence_length - 1) * rate < end and (targets is None or s < len(targets)):
        xs.append(numpy.stack([data[s + j * rate] for j in range(sequence_length)]))
        if targets is not None:
            ys.append(targets[s])
        s += stride
    return numpy.stack(xs), (numpy.stack(ys) if targets is not None else None)


def collect(ds):
    """All batches of one pass, concatenated."""
    batches = list(ds)
    if ds.has_targets:
        return numpy.concatenate([b[0] for b in batches]), numpy.concatenate([b[1] for b in batches])
    return numpy.concatenate(batches), None


CASES = [
    # sequence_length, stride, rate, start, end, batch_size
    (10, 3, 2, None, None, 128),     # Keras's docstring example: 27 windows, 0..18 to 78..96
    (5, 1, 1, None, None, 7),
    (4, 2, 3, 5, 60, 4),
    (1, 1, 1, None, None, 32),
    (3, 5, 1, 10, 40, 1),
    (99, 1, 1, None, None, 8),       # exactly one window over all the data
    (7, 100, 1, None, None, 3),      # stride longer than the data: one window
    (50, 1, 2, None, None, 2),       # (50 - 1) * 2 + 1 = 99 rows: exactly one window
]


@pytest.mark.parametrize("length,stride,rate,start,end,batch", CASES)
def test_windows_and_targets_match_the_written_out_rule(length, stride, rate, start, end, batch):
    data = numpy.arange(99, dtype=numpy.float32) * 10
    targets = numpy.arange(99) + 1000
    ds = timeseries_dataset_from_array(data, targets, length, sequence_stride=stride, sampling_rate=rate,
                                       batch_size=batch, start_index=start, end_index=end)
    ex, ey = expected_windows(data, targets, length, stride, rate, start, end)
    x, y = collect(ds)
    numpy.testing.assert_array_equal(x, ex)
    numpy.testing.assert_array_equal(y, ey)
    assert x.dtype == numpy.float32 and y.dtype == targets.dtype
    assert len(ds) == -(-len(ex) // batch)
    sizes = [len(b[0]) for b in ds]
    assert sizes[:-1] == [batch] * (len(sizes) - 1) and 1 <= sizes[-1] <= batch
    ax, ay = ds.as_arrays()
    numpy.testing.assert_array_equal(ax, ex)
    numpy.testing.assert_array_equal(ay, ey)


def test_keras_docstring_example_one():
    ds = timeseries_dataset_from_array(numpy.arange(99), None, sequence_length=10, sequence_stride=3,
                                       sampling_rate=2, batch_size=None)
    x, y = ds.as_arrays()
    assert y is None and len(ds) == 27 and x.shape == (27, 10)
    numpy.testing.assert_array_equal(x[0], numpy.arange(0, 20, 2))
    numpy.testing.assert_array_equal(x[1], numpy.arange(3, 23, 2))
    numpy.testing.assert_array_equal(x[2], numpy.arange(6, 26, 2))
    numpy.testing.assert_array_equal(x[-1], numpy.arange(78, 98, 2))


def test_keras_docstring_example_two_next_step_targets():
    data = numpy.arange(100.0) ** 2
    ds = timeseries_dataset_from_array(data[:-10], data[10:], sequence_length=10, batch_size=16)
    inputs, targets = next(iter(ds))
    numpy.testing.assert_array_equal(inputs[0], data[:10])
    assert targets[0] == data[10]
    x, y = ds.as_arrays()
    numpy.testing.assert_array_equal(y, data[10:10 + len(x)])
    numpy.testing.assert_array_equal(x[:, -1] + 0, data[9:9 + len(x)])


def test_targets_shorter_than_data_leave_out_windows_without_a_target():
    """Keras caps the number of windows at len(targets): targets=data[L:] drops the last window."""
    data = numpy.arange(30.0)
    ds = timeseries_dataset_from_array(data, data[5:], sequence_length=5, batch_size=4)
    x, y = ds.as_arrays()
    assert len(x) == 25            # 26 windows fit; the last has no target
    numpy.testing.assert_array_equal(y, data[5:30])
    numpy.testing.assert_array_equal(x[:, 0], numpy.arange(25.0))
    ex, ey = expected_windows(data, data[5:], 5)
    numpy.testing.assert_array_equal(x, ex)


def test_multidimensional_data_and_targets_unbatched():
    rng = numpy.random.default_rng(0)
    data = rng.standard_normal((40, 3, 2)).astype(numpy.float32)
    targets = rng.standard_normal((40, 4))
    ds = timeseries_dataset_from_array(data, targets, sequence_length=6, sequence_stride=4, sampling_rate=2,
                                       batch_size=None, start_index=3, end_index=37)
    ex, ey = expected_windows(data, targets, 6, 4, 2, 3, 37)
    items = list(ds)
    assert len(items) == len(ds) == len(ex)
    for (xi, yi), exi, eyi in zip(items, ex, ey):
        assert xi.shape == (6, 3, 2) and yi.shape == (4,)
        numpy.testing.assert_array_equal(xi, exi)
        numpy.testing.assert_array_equal(yi, eyi)
    x, y = ds.as_arrays()
    assert x.shape == (len(ex), 6, 3, 2) and y.shape == (len(ex), 4)


def test_targets_none_yields_inputs_only():
    data = numpy.arange(20).reshape(10, 2)
    ds = timeseries_dataset_from_array(data, None, sequence_length=3, batch_size=4)
    batches = list(ds)
    assert all(isinstance(b, numpy.ndarray) for b in batches)
    assert [b.shape for b in batches] == [(4, 3, 2), (4, 3, 2)]
    x, y = ds.as_arrays()
    assert y is None
    numpy.testing.assert_array_equal(x, expected_windows(data, None, 3)[0])


def test_data_is_not_copied_and_windows_gather_per_batch():
    data = numpy.arange(1000.0)
    ds = timeseries_dataset_from_array(data, None, sequence_length=10, batch_size=100)
    assert ds._data is data
    first = next(iter(ds))
    assert first.shape == (100, 10)


def test_shuffle_is_a_permutation_reproducible_under_a_seed_and_new_each_pass():
    data = numpy.arange(200.0)
    targets = numpy.arange(200) * 3
    plain = timeseries_dataset_from_array(data, targets, 8, sequence_stride=2, batch_size=16)
    px, py = plain.as_arrays()
    a = timeseries_dataset_from_array(data, targets, 8, sequence_stride=2, batch_size=16, shuffle=True, seed=7)
    b = timeseries_dataset_from_array(data, targets, 8, sequence_stride=2, batch_size=16, shuffle=True, seed=7)
    a1, a2 = collect(a), collect(a)
    b1, b2 = collect(b), b.as_arrays()           # as_arrays gives the next pass's order
    for (x1, y1), (x2, y2) in ((a1, b1), (a2, b2)):
        numpy.testing.assert_array_equal(x1, x2)
        numpy.testing.assert_array_equal(y1, y2)
    assert not numpy.array_equal(a1[0], px), "a shuffled pass should not be in chronological order"
    assert not numpy.array_equal(a1[0], a2[0]), "each pass should draw a new order"
    for x, y in (a1, a2):
        order = numpy.argsort(x[:, 0])
        numpy.testing.assert_array_equal(x[order], px)
        numpy.testing.assert_array_equal(y[order], py)
        numpy.testing.assert_array_equal(y, x[:, 0].astype(int) * 3)    # windows keep their own targets
    in_order, _ = a.as_arrays(in_order=True)
    numpy.testing.assert_array_equal(in_order, px)
    c = timeseries_dataset_from_array(data, targets, 8, sequence_stride=2, batch_size=16, shuffle=True, seed=8)
    assert not numpy.array_equal(collect(c)[0], a1[0])


def test_shuffle_unbatched():
    ds = timeseries_dataset_from_array(numpy.arange(50), None, 5, batch_size=None, shuffle=True, seed=1)
    windows = numpy.stack(list(ds))
    assert windows.shape == (46, 5)
    assert sorted(windows[:, 0]) == list(range(46))
    numpy.testing.assert_array_equal(windows - windows[:, :1], numpy.tile(numpy.arange(5), (46, 1)))


@pytest.mark.parametrize("kwargs,error,words", [
    (dict(sequence_length=0), ValueError, "sequence_length"),
    (dict(sequence_length=2.5), TypeError, "sequence_length"),
    (dict(sequence_length=3, sequence_stride=0), ValueError, "sequence_stride"),
    (dict(sequence_length=3, sequence_stride="2"), TypeError, "sequence_stride"),
    (dict(sequence_length=3, sampling_rate=-1), ValueError, "sampling_rate"),
    (dict(sequence_length=3, sampling_rate=True), TypeError, "sampling_rate"),
    (dict(sequence_length=3, batch_size=0), ValueError, "batch_size"),
    (dict(sequence_length=3, batch_size=1.0), TypeError, "batch_size"),
    (dict(sequence_length=3, start_index=-1), ValueError, "start_index"),
    (dict(sequence_length=3, start_index=20), ValueError, "start_index"),
    (dict(sequence_length=3, end_index=21), ValueError, "end_index"),
    (dict(sequence_length=3, start_index=5, end_index=5), ValueError, "end_index"),
    (dict(sequence_length=3, start_index=8, end_index=4), ValueError, "end_index"),
    (dict(sequence_length=3, seed=-2), ValueError, "seed"),
    (dict(sequence_length=21), ValueError, "spans 21 rows"),
    (dict(sequence_length=8, sampling_rate=3), ValueError, "spans 22 rows"),
    (dict(sequence_length=5, start_index=10, end_index=14), ValueError, "only 4 rows between start_index=10"),
])
def test_bad_arguments_name_the_argument(kwargs, error, words):
    with pytest.raises(error, match=words):
        timeseries_dataset_from_array(numpy.arange(20.0), numpy.arange(20), **kwargs)


def test_bad_data_and_targets():
    with pytest.raises(ValueError, match="`data`.*scalar"):
        timeseries_dataset_from_array(numpy.float32(3), None, 1)
    with pytest.raises(TypeError, match="`data` must hold numbers"):
        timeseries_dataset_from_array(numpy.array(["a", "b", "c"]), None, 1)
    with pytest.raises(ValueError, match="`data` must be a rectangular array"):
        timeseries_dataset_from_array([[1, 2], [3]], None, 1)
    with pytest.raises(ValueError, match="`data` is empty"):
        timeseries_dataset_from_array(numpy.zeros((0, 3)), None, 1)
    with pytest.raises(ValueError, match="`data` is required"):
        timeseries_dataset_from_array(None, None, 1)
    with pytest.raises(ValueError, match="`targets` has 3 entries.*row 5"):
        timeseries_dataset_from_array(numpy.arange(20.0), numpy.arange(3), 2, start_index=5)
    with pytest.raises(ValueError, match="`targets`.*scalar"):
        timeseries_dataset_from_array(numpy.arange(20.0), 4, 2)


def test_keras_timeseries_oracle():
    """Keras's own function, where TensorFlow is installed (its implementation is tf.data)."""
    pytest.importorskip("tensorflow")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    data = numpy.arange(300, dtype=numpy.float32).reshape(100, 3)
    targets = numpy.arange(100) * 2
    for length, stride, rate, start, end, batch in CASES[:5]:
        if (length - 1) * rate >= 100:
            continue
        theirs = keras.utils.timeseries_dataset_from_array(
            data, targets, length, sequence_stride=stride, sampling_rate=rate, batch_size=batch,
            start_index=start, end_index=end)
        kx = numpy.concatenate([numpy.asarray(b[0]) for b in theirs])
        ky = numpy.concatenate([numpy.asarray(b[1]) for b in theirs])
        ours = timeseries_dataset_from_array(data, targets, length, sequence_stride=stride, sampling_rate=rate,
                                             batch_size=batch, start_index=start, end_index=end)
        x, y = ours.as_arrays()
        numpy.testing.assert_array_equal(x, kx)
        numpy.testing.assert_array_equal(y, ky)


# ------------------------------------------------------------------ pad_sequences
def keras_pad_sequences():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    return keras.utils.pad_sequences


RAGGED = [[1], [2, 3], [], [4, 5, 6, 7], [8, 9, 10]]


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [None, 1, 2, 3, 6])
def test_pad_sequences_written_out(padding, truncating, maxlen):
    out = pad_sequences(RAGGED, maxlen=maxlen, padding=padding, truncating=truncating, value=-1)
    width = 4 if maxlen is None else maxlen
    expected = numpy.full((5, width), -1, dtype=numpy.int32)
    for i, seq in enumerate(RAGGED):
        kept = seq[-width:] if truncating == "pre" else seq[:width]
        kept = kept if seq else []
        if padding == "pre":
            expected[i, width - len(kept):] = kept
        else:
            expected[i, :len(kept)] = kept
    assert out.dtype == numpy.int32
    numpy.testing.assert_array_equal(out, expected)


def test_pad_sequences_keras_docstring():
    seqs = [[1], [2, 3], [4, 5, 6]]
    numpy.testing.assert_array_equal(pad_sequences(seqs), [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    numpy.testing.assert_array_equal(pad_sequences(seqs, value=-1), [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]])
    numpy.testing.assert_array_equal(pad_sequences(seqs, padding="post"), [[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    numpy.testing.assert_array_equal(pad_sequences(seqs, maxlen=2), [[0, 1], [2, 3], [5, 6]])


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [None, 1, 3, 5])
def test_pad_sequences_matches_keras(padding, truncating, maxlen):
    keras_pad = keras_pad_sequences()
    rng = numpy.random.default_rng(3)
    vectors = [rng.standard_normal((n, 2, 3)) for n in (3, 0, 1, 6, 4)]
    cases = [
        (RAGGED, dict(value=-1)),
        (RAGGED, dict(dtype="float32", value=0.5)),
        ([numpy.array(s) for s in RAGGED], dict(dtype="int64")),
        (vectors, dict(dtype="float64", value=9.0)),
        (vectors, dict(dtype="float32")),
    ]
    for seqs, kwargs in cases:
        kwargs = dict(kwargs, maxlen=maxlen, padding=padding, truncating=truncating)
        theirs = keras_pad(seqs, **kwargs)
        ours = pad_sequences(seqs, **kwargs)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        numpy.testing.assert_array_equal(ours, theirs)


def test_pad_sequences_vectors_and_strings_and_edges():
    seqs = [numpy.ones((2, 3)), numpy.zeros((0, 3)), numpy.arange(12.0).reshape(4, 3)]
    out = pad_sequences(seqs, dtype="float32", maxlen=3, padding="post", truncating="post")
    assert out.shape == (3, 3, 3) and out.dtype == numpy.float32
    numpy.testing.assert_array_equal(out[0], [[1, 1, 1], [1, 1, 1], [0, 0, 0]])
    numpy.testing.assert_array_equal(out[1], numpy.zeros((3, 3)))
    numpy.testing.assert_array_equal(out[2], numpy.arange(9.0).reshape(3, 3))
    words = pad_sequences([["a", "b"], ["c"]], dtype=object, value="<pad>")
    assert words.tolist() == [["a", "b"], ["<pad>", "c"]]
    assert pad_sequences([[], []]).shape == (2, 0)
    assert pad_sequences([]).shape == (0, 0)
    assert pad_sequences(RAGGED, maxlen=0).shape == (5, 0)
    tuples = pad_sequences(((1, 2), (3,)), padding="post")
    numpy.testing.assert_array_equal(tuples, [[1, 2], [3, 0]])


def test_pad_sequences_errors():
    with pytest.raises(ValueError, match='Padding type "middle"'):
        pad_sequences(RAGGED, padding="middle")
    with pytest.raises(ValueError, match='Truncating type "both"'):
        pad_sequences(RAGGED, truncating="both")
    with pytest.raises(ValueError, match="`sequences` must be iterable"):
        pad_sequences(5)
    with pytest.raises(ValueError, match="list of iterables.*3"):
        pad_sequences([[1], 3])
    with pytest.raises(ValueError, match=r"Shape of sample \(2,\) of sequence at position 1 .*expected shape \(3,\)"):
        pad_sequences([numpy.ones((2, 3)), numpy.ones((1, 2))], dtype="float32")
    with pytest.raises(ValueError, match="Sequence at position 1 cannot be converted to dtype int32"):
        pad_sequences([[1, 2], ["a", "b"]])
    with pytest.raises(ValueError, match="not compatible with `value`'s type"):
        pad_sequences(RAGGED, value="x")
    with pytest.raises(ValueError, match="maxlen"):
        pad_sequences(RAGGED, maxlen=-1)
    with pytest.raises(TypeError, match="maxlen"):
        pad_sequences(RAGGED, maxlen=2.0)


# ------------------------------------------------------- fit / evaluate / predict

def series(n=240, seed=0):
    rng = numpy.random.default_rng(seed)
    t = numpy.arange(n)
    data = numpy.stack([numpy.sin(t / 6.0), numpy.cos(t / 6.0)], axis=1) + 0.05 * rng.standard_normal((n, 2))
    return data.astype(numpy.float32)


def window_model(length, seed=0):
    backend.set_random_seed(seed)
    model = Sequential([layers.Input((length, 2)), layers.Flatten(), layers.Dense(8, activation="tanh"),
                        layers.Dense(1)])
    model.compile(optimizer=optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    return model


def test_fit_evaluate_predict_on_a_dataset_match_the_arrays(xp):
    length = 12
    data = series()
    targets = data[length:, 0:1]                 # the next step's first channel
    train = timeseries_dataset_from_array(data, targets, length, batch_size=16, end_index=180)
    test = timeseries_dataset_from_array(data, targets, length, batch_size=16, start_index=180)
    x, y = train.as_arrays()
    tx, ty = test.as_arrays()
    assert len(x) == 169 and len(tx) == 48

    on_dataset = window_model(length)
    h1, _ = quiet(on_dataset.fit, train, epochs=4, validation_data=test, verbose=0)
    on_arrays = window_model(length)
    h2, _ = quiet(on_arrays.fit, x, y, batch_size=16, epochs=4, shuffle=False, validation_data=(tx, ty), verbose=0)
    for a, b in zip(on_dataset.get_weights(), on_arrays.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for key in ("loss", "mae", "val_loss", "val_mae"):
        numpy.testing.assert_allclose(h1.history[key], h2.history[key], rtol=1e-6)
    assert h1.history["loss"][-1] < h1.history["loss"][0]

    d_eval = on_dataset.evaluate(test, verbose=0, return_dict=True)
    a_eval = on_arrays.evaluate(tx, ty, batch_size=16, verbose=0, return_dict=True)
    assert d_eval == pytest.approx(a_eval, rel=1e-6)
    assert d_eval["loss"] == pytest.approx(h1.history["val_loss"][-1], rel=1e-6)
    numpy.testing.assert_allclose(on_dataset.predict(test, verbose=0), on_arrays.predict(tx, verbose=0),
                                  rtol=1e-6, atol=1e-7)
    inputs_only = timeseries_dataset_from_array(data, None, length, batch_size=16, start_index=180)
    assert on_dataset.predict(inputs_only, verbose=0).shape == (49, 1)


def test_fit_on_a_shuffled_dataset_reshuffles_each_epoch_like_arrays():
    """The data set's shuffle flag stands for fit's: True trains like fit(shuffle=True) on its windows."""
    length = 6
    data = series(120)
    targets = data[length:, 1:2]
    ds = timeseries_dataset_from_array(data, targets, length, batch_size=8, shuffle=True, seed=3)
    x, y = ds.as_arrays(in_order=True)
    a = window_model(length, seed=5)
    quiet(a.fit, ds, epochs=3, verbose=0, shuffle=False)     # fit's shuffle is ignored for a data set
    b = window_model(length, seed=5)
    quiet(b.fit, x, y, batch_size=8, epochs=3, verbose=0, shuffle=True)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        numpy.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)


def test_dataset_misuse_is_reported():
    length = 5
    data = series(60)
    ds = timeseries_dataset_from_array(data, data[length:, :1], length, batch_size=8)
    model = window_model(length)
    before = model.get_weights()
    with pytest.raises(ValueError, match="`y` must not be given when `x` is a data set"):
        model.fit(ds, numpy.zeros(55), verbose=0)
    with pytest.raises(ValueError, match="`batch_size` must not be given.*batch_size=8"):
        model.fit(ds, batch_size=32, verbose=0)
    with pytest.raises(ValueError, match="`sample_weight` is not supported"):
        model.fit(ds, sample_weight=numpy.ones(55), verbose=0)
    with pytest.raises(ValueError, match="`validation_split` needs arrays"):
        model.fit(ds, validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="`validation_batch_size` must not be given when `validation_data`"):
        model.fit(ds, validation_data=ds, validation_batch_size=4, verbose=0)
    inputs_only = timeseries_dataset_from_array(data, None, length, batch_size=8)
    with pytest.raises(ValueError, match="inputs only.*fit\\(\\) needs targets"):
        model.fit(inputs_only, verbose=0)
    with pytest.raises(ValueError, match="inputs only.*evaluate\\(\\) needs targets"):
        model.evaluate(inputs_only, verbose=0)
    unbatched = timeseries_dataset_from_array(data, data[length:, :1], length, batch_size=None)
    with pytest.raises(ValueError, match="batch_size=None.*needs batches"):
        model.predict(unbatched, verbose=0)
    for a, b in zip(before, model.get_weights()):      # nothing changed before the errors
        numpy.testing.assert_array_equal(a, b)
    quiet(model.fit, ds, batch_size=8, epochs=1, verbose=0)     # the data set's own batch size may be repeated
    assert isinstance(ds, SequenceDataset) and len(ds) == 7
