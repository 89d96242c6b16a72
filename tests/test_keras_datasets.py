"""gpu_dl.datasets (Keras's keras.datasets) on small files built here in each data set's format, put in a temporary
Keras cache with the hash the loader expects (or served by a local HTTP server): the arrays, the options of the
word-id loaders against a plain expectation, the errors, and files that would run code refused unrun. Where Keras
is installed, its loaders given the same files return the same arrays."""
import gzip
import hashlib
import http.server
import io
import json
import os
import pickle
import struct
import tarfile
import threading

import numpy
import pytest

from gpu_dl import datasets
from gpu_dl.datasets import downloads


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty Keras cache (``$KERAS_HOME``); returns its ``datasets`` folder."""
    home = tmp_path / "keras_home"
    (home / "datasets").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path))
    return home / "datasets"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def put(cache, monkeypatch, module, fname, data, hash_name="FILE_HASH"):
    """``data`` cached as ``fname``, with ``module``'s expected hash set to its own: no download happens."""
    (cache / fname).write_bytes(data)
    monkeypatch.setattr(module, hash_name, sha256(data))
    return cache / fname


def npz_bytes(**arrays):
    buffer = io.BytesIO()
    numpy.savez(buffer, **arrays)
    return buffer.getvalue()


def sequences(rng, n, vocabulary=30, longest=12):
    out = numpy.empty(n, dtype=object)
    out[:] = [rng.integers(1, vocabulary, rng.integers(1, longest)).tolist() for _ in range(n)]
    return out


def idx_gz(array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return gzip.compress(header + array.tobytes())


def cifar_archive(folder, files, protocol=2):
    """A tar.gz of ``folder/<name>`` members, each a pickled dict (protocol 2, as the real batches; Keras's reader
    refuses the ``_codecs.encode`` Python 3 writes for bytes under protocol 2, so its comparison uses 4)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as archive:
        for name, content in files.items():
            raw = pickle.dumps(content, protocol=protocol)
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()


def cifar_batch(rng, n, **labels):
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=numpy.uint8), **{k.encode(): v for k, v in labels.items()}}


def planes_to_images(data):
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


# ---------------------------------------------------------------------------------------------------------------
# Images

def test_mnist_reads_keras_npz_from_the_cache(cache, monkeypatch):
    rng = numpy.random.default_rng(0)
    x = rng.integers(0, 256, (7, 28, 28), dtype=numpy.uint8)
    y = rng.integers(0, 10, 7, dtype=numpy.uint8)
    put(cache, monkeypatch, datasets.mnist, "mnist.npz", npz_bytes(x_train=x[:5], y_train=y[:5], x_test=x[5:],
                                                                   y_test=y[5:]))
    (x_train, y_train), (x_test, y_test) = datasets.mnist.load_data()
    numpy.testing.assert_array_equal(x_train, x[:5])
    numpy.testing.assert_array_equal(y_test, y[5:])
    assert x_test.shape == (2, 28, 28) and y_train.dtype == numpy.uint8


def test_fashion_mnist_reads_the_four_idx_files(cache):
    rng = numpy.random.default_rng(1)
    folder = cache / "fashion-mnist"
    folder.mkdir()
    x = rng.integers(0, 256, (9, 28, 28), dtype=numpy.uint8)
    y = rng.integers(0, 10, 9, dtype=numpy.uint8)
    for name, array in (("train-images-idx3-ubyte", x[:6]), ("train-labels-idx1-ubyte", y[:6]),
                        ("t10k-images-idx3-ubyte", x[6:]), ("t10k-labels-idx1-ubyte", y[6:])):
        (folder / (name + ".gz")).write_bytes(idx_gz(array))
    (x_train, y_train), (x_test, y_test) = datasets.fashion_mnist.load_data()
    numpy.testing.assert_array_equal(x_train, x[:6])
    numpy.testing.assert_array_equal(y_train, y[:6])
    numpy.testing.assert_array_equal(x_test, x[6:])
    numpy.testing.assert_array_equal(y_test, y[6:])


def test_cifar10_extracts_the_archive_and_reads_channels_last(cache, monkeypatch):
    rng = numpy.random.default_rng(2)
    files = {f"data_batch_{i}": cifar_batch(rng, 2, labels=[i, 9 - i]) for i in range(1, 6)}
    files["test_batch"] = cifar_batch(rng, 3, labels=[0, 1, 2])
    put(cache, monkeypatch, datasets.cifar10, "cifar-10-batches-py-target_archive",
        cifar_archive("cifar-10-batches-py", files))
    (x_train, y_train), (x_test, y_test) = datasets.cifar10.load_data()
    assert x_train.shape == (10, 32, 32, 3) and y_train.shape == (10, 1) and x_test.shape == (3, 32, 32, 3)
    numpy.testing.assert_array_equal(x_train[:2], planes_to_images(files["data_batch_1"][b"data"]))
    numpy.testing.assert_array_equal(y_train[:, 0], [1, 8, 2, 7, 3, 6, 4, 5, 5, 4])
    numpy.testing.assert_array_equal(y_test[:, 0], [0, 1, 2])
    assert (cache / "cifar-10-batches-py-target" / "cifar-10-batches-py" / "test_batch").is_file()


@pytest.mark.parametrize("label_mode", ["fine", "coarse"])
def test_cifar100_reads_fine_or_coarse_labels(cache, monkeypatch, label_mode):
    rng = numpy.random.default_rng(3)
    files = {name: cifar_batch(rng, n, fine_labels=rng.integers(0, 100, n).tolist(),
                               coarse_labels=rng.integers(0, 20, n).tolist())
             for name, n in (("train", 4), ("test", 2))}
    put(cache, monkeypatch, datasets.cifar100, "cifar-100-python-target_archive",
        cifar_archive("cifar-100-python", files))
    (x_train, y_train), (x_test, y_test) = datasets.cifar100.load_data(label_mode)
    numpy.testing.assert_array_equal(x_test, planes_to_images(files["test"][b"data"]))
    numpy.testing.assert_array_equal(y_train[:, 0], files["train"][f"{label_mode}_labels".encode()])
    assert y_test.shape == (2, 1) and y_train.dtype == numpy.uint8


@pytest.fixture
def channels_first():
    """``image_data_format()`` is "channels_first" inside the test (and Keras's too where Keras is installed)."""
    from gpu_dl import config
    config.set_image_data_format("channels_first")
    try:
        import keras
    except ImportError:
        keras = None
    if keras is not None:
        keras.config.set_image_data_format("channels_first")
    yield
    config.set_image_data_format("channels_last")
    if keras is not None:
        keras.config.set_image_data_format("channels_last")


def test_cifar10_follows_channels_first(cache, monkeypatch, channels_first):
    rng = numpy.random.default_rng(12)
    files = {f"data_batch_{i}": cifar_batch(rng, 2, labels=[i, 9 - i]) for i in range(1, 6)}
    files["test_batch"] = cifar_batch(rng, 3, labels=[0, 1, 2])
    put(cache, monkeypatch, datasets.cifar10, "cifar-10-batches-py-target_archive",
        cifar_archive("cifar-10-batches-py", files))
    (x_train, y_train), (x_test, y_test) = datasets.cifar10.load_data()
    assert x_train.shape == (10, 3, 32, 32) and x_test.shape == (3, 3, 32, 32) and y_train.shape == (10, 1)
    # Each stored row is the red, green and blue 32x32 planes in turn: channels_first is the row reshaped.
    numpy.testing.assert_array_equal(x_train[2:4], files["data_batch_2"][b"data"].reshape(-1, 3, 32, 32))
    numpy.testing.assert_array_equal(x_test, files["test_batch"][b"data"].reshape(-1, 3, 32, 32))
    assert x_train.dtype == numpy.uint8 and x_train.flags.c_contiguous


def test_cifar100_follows_channels_first(cache, monkeypatch, channels_first):
    rng = numpy.random.default_rng(13)
    files = {name: cifar_batch(rng, n, fine_labels=list(range(n)), coarse_labels=list(range(n)))
             for name, n in (("train", 4), ("test", 2))}
    put(cache, monkeypatch, datasets.cifar100, "cifar-100-python-target_archive",
        cifar_archive("cifar-100-python", files))
    (x_train, _), (x_test, y_test) = datasets.cifar100.load_data()
    numpy.testing.assert_array_equal(x_train, files["train"][b"data"].reshape(-1, 3, 32, 32))
    numpy.testing.assert_array_equal(x_test, files["test"][b"data"].reshape(-1, 3, 32, 32))
    numpy.testing.assert_array_equal(y_test[:, 0], [0, 1])


def test_cifar100_refuses_an_unknown_label_mode_before_any_download(cache):
    with pytest.raises(ValueError, match="label_mode"):
        datasets.cifar100.load_data("medium")
    assert not any(cache.iterdir())


# ---------------------------------------------------------------------------------------------------------------
# Tables

@pytest.mark.parametrize("test_split, seed", [(0.2, 113), (0.0, 5), (0.5, 1)])
def test_boston_housing_shuffles_by_seed_and_splits(cache, monkeypatch, test_split, seed):
    rng = numpy.random.default_rng(4)
    x, y = rng.standard_normal((11, 13)), rng.standard_normal(11)
    put(cache, monkeypatch, datasets.boston_housing, "boston_housing.npz", npz_bytes(x=x, y=y))
    (x_train, y_train), (x_test, y_test) = datasets.boston_housing.load_data(test_split=test_split, seed=seed)
    order = numpy.arange(11)
    numpy.random.RandomState(seed).shuffle(order)
    cut = int(11 * (1 - test_split))
    numpy.testing.assert_array_equal(x_train, x[order[:cut]])
    numpy.testing.assert_array_equal(y_test, y[order[cut:]])
    assert len(x_test) == 11 - cut


def test_california_housing_small_keeps_the_first_600_rows(cache, monkeypatch):
    rng = numpy.random.default_rng(5)
    x, y = rng.standard_normal((610, 8)), rng.standard_normal(610)
    put(cache, monkeypatch, datasets.california_housing, "california_housing.npz", npz_bytes(x=x, y=y))
    (x_train, y_train), (x_test, y_test) = datasets.california_housing.load_data(version="small")
    assert len(x_train) == 480 and len(x_test) == 120
    kept = numpy.concatenate([y_train, y_test])
    numpy.testing.assert_array_equal(numpy.sort(kept), numpy.sort(y[:600]))
    (x_train, _), _ = datasets.california_housing.load_data()
    assert len(x_train) == 488


@pytest.mark.parametrize("call", [lambda: datasets.boston_housing.load_data(test_split=1.0),
                                  lambda: datasets.california_housing.load_data(test_split=-0.1),
                                  lambda: datasets.reuters.load_data(test_split=1),
                                  lambda: datasets.california_housing.load_data(version="medium")])
def test_bad_options_are_refused_before_any_download(cache, call):
    with pytest.raises(ValueError, match="test_split|version"):
        call()
    assert not any(cache.iterdir())


# ---------------------------------------------------------------------------------------------------------------
# Word ids

def expected_word_ids(xs, labels, seed_rng, num_words, skip_top, maxlen, start_char, oov_char, index_from):
    """Keras's documented processing, sequence by sequence: shuffle, offset, drop long ones, limit the ids."""
    order = numpy.arange(len(xs))
    seed_rng.shuffle(order)
    xs = [list(xs[i]) for i in order]
    labels = labels[order]
    if start_char is not None:
        xs = [[start_char] + [w + index_from for w in x] for x in xs]
    else:
        xs = [[w + index_from for w in x] for x in xs]
    if maxlen:
        keep = [len(x) < maxlen for x in xs]
        xs, labels = [x for x, k in zip(xs, keep) if k], labels[numpy.array(keep, dtype=bool)]
    return xs, labels


def limited(xs, num_words, skip_top, oov_char):
    if oov_char is not None:
        return [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    return [[w for w in x if skip_top <= w < num_words] for x in xs]


WORD_OPTIONS = [dict(), dict(num_words=20, skip_top=4), dict(maxlen=9), dict(start_char=None, index_from=0),
                dict(oov_char=None, num_words=15, skip_top=2), dict(seed=7, index_from=1, start_char=5)]


@pytest.mark.parametrize("options", WORD_OPTIONS)
def test_imdb_processes_word_ids_as_documented(cache, monkeypatch, options):
    rng = numpy.random.default_rng(6)
    x_train, x_test = sequences(rng, 9), sequences(rng, 6)
    y_train, y_test = rng.integers(0, 2, 9), rng.integers(0, 2, 6)
    put(cache, monkeypatch, datasets.imdb, "imdb.npz", npz_bytes(x_train=x_train, y_train=y_train, x_test=x_test,
                                                                 y_test=y_test))
    settings = dict(num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1, oov_char=2, index_from=3)
    settings.update(options)
    (a_train, b_train), (a_test, b_test) = datasets.imdb.load_data(**settings)
    shuffle = numpy.random.RandomState(settings.pop("seed"))
    train, train_labels = expected_word_ids(x_train, y_train, shuffle, **settings)
    test, test_labels = expected_word_ids(x_test, y_test, shuffle, **settings)
    num_words = settings["num_words"] or max(max(x) for x in train + test)
    train, test = (limited(xs, num_words, settings["skip_top"], settings["oov_char"]) for xs in (train, test))
    assert a_train.dtype == object and a_train.ndim == 1
    assert list(a_train) == train and list(a_test) == test
    assert all(isinstance(w, int) for x in a_train for w in x)
    numpy.testing.assert_array_equal(b_train, train_labels)
    numpy.testing.assert_array_equal(b_test, test_labels)


@pytest.mark.parametrize("options", WORD_OPTIONS)
def test_reuters_processes_word_ids_as_documented(cache, monkeypatch, options):
    rng = numpy.random.default_rng(7)
    xs, ys = sequences(rng, 12), rng.integers(0, 46, 12)
    put(cache, monkeypatch, datasets.reuters, "reuters.npz", npz_bytes(x=xs, y=ys))
    settings = dict(num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1, oov_char=2, index_from=3)
    settings.update(options)
    (a_train, b_train), (a_test, b_test) = datasets.reuters.load_data(test_split=0.25, **settings)
    shuffle = numpy.random.RandomState(settings.pop("seed"))
    words, labels = expected_word_ids(xs, ys, shuffle, **settings)
    num_words = settings["num_words"] or max(max(x) for x in words)
    words = limited(words, num_words, settings["skip_top"], settings["oov_char"])
    cut = int(len(words) * 0.75)
    assert list(a_train) == words[:cut] and list(a_test) == words[cut:]
    numpy.testing.assert_array_equal(numpy.concatenate([b_train, b_test]), labels)


def test_imdb_maxlen_that_keeps_nothing_is_an_error(cache, monkeypatch):
    rng = numpy.random.default_rng(8)
    put(cache, monkeypatch, datasets.imdb, "imdb.npz",
        npz_bytes(x_train=sequences(rng, 3), y_train=numpy.zeros(3), x_test=sequences(rng, 2), y_test=numpy.zeros(2)))
    with pytest.raises(ValueError, match="maxlen=1"):
        datasets.imdb.load_data(maxlen=1)


def test_word_indexes_and_label_names(cache, monkeypatch):
    index = {"the": 1, "movie": 17}
    put(cache, monkeypatch, datasets.imdb, "imdb_word_index.json", json.dumps(index).encode(),
        hash_name="WORD_INDEX_HASH")
    assert datasets.imdb.get_word_index() == index
    put(cache, monkeypatch, datasets.reuters, "reuters_word_index.json", b'{"oil": 3}', hash_name="WORD_INDEX_HASH")
    assert datasets.reuters.get_word_index() == {"oil": 3}
    names = datasets.reuters.get_label_names()
    assert len(names) == 46 and names[3] == "earn" and len(set(names)) == 46


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch ran_from_pickle",))


def npz_with_pickle(member, payload, **plain):
    """An .npz whose ``member`` is an object-dtype .npy holding the pickle of ``payload`` as it is."""
    from numpy.lib import format as npy
    buffer = io.BytesIO()
    numpy.savez(buffer, **plain)
    raw = io.BytesIO()
    npy.write_array_header_1_0(raw, {"descr": "|O", "fortran_order": False, "shape": (len(payload),)})
    raw.write(pickle.dumps(payload, protocol=3))
    import zipfile
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr(member + ".npy", raw.getvalue())
    return buffer.getvalue()


def test_a_pickle_that_would_run_code_is_refused_unrun(cache, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    data = npz_with_pickle("x", numpy.array([_RunsCode()], dtype=object), y=numpy.zeros(1))
    put(cache, monkeypatch, datasets.reuters, "reuters.npz", data)
    with pytest.raises(ValueError, match="refusing"):
        datasets.reuters.load_data()
    assert not (tmp_path / "ran_from_pickle").exists()


def object_array(*items):
    out = numpy.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


@pytest.mark.parametrize("payload, message", [
    (object_array(2.5), "list of word ids"),
    (object_array(None, [1, 2]), "list of word ids"),
    ([[1, 2]], "1-D array of sequences"),
])
def test_sequences_that_are_not_lists_of_ids_are_refused(cache, monkeypatch, payload, message):
    put(cache, monkeypatch, datasets.reuters, "reuters.npz", npz_with_pickle("x", payload, y=numpy.zeros(1)))
    with pytest.raises(ValueError, match=message):
        datasets.reuters.load_data()


def test_sequences_holding_floats_are_refused(cache, monkeypatch):
    xs = numpy.empty(1, dtype=object)
    xs[0] = [1.0, 2.5]
    put(cache, monkeypatch, datasets.reuters, "reuters.npz", npz_bytes(x=xs, y=numpy.zeros(1)))
    with pytest.raises(ValueError, match="whole numbers"):
        datasets.reuters.load_data()


def test_one_list_repeated_by_reference_is_refused_before_it_is_expanded(cache, monkeypatch):
    one = list(range(1000))
    xs = numpy.empty(2000, dtype=object)
    xs[:] = [one] * 2000        # pickled once, referenced 2000 times: 2 million ids from a few kB
    put(cache, monkeypatch, datasets.reuters, "reuters.npz", npz_bytes(x=xs, y=numpy.zeros(2000)))
    with pytest.raises(ValueError, match="repeat one list"):
        datasets.reuters.load_data()


def test_a_cached_file_with_the_wrong_hash_is_downloaded_again(cache, monkeypatch):
    """A file of another hash in the cache is fetched again from the origin, here a local server."""
    rng = numpy.random.default_rng(9)
    good = npz_bytes(x=rng.standard_normal((5, 13)), y=rng.standard_normal(5))
    (cache / "boston_housing.npz").write_bytes(b"stale")
    monkeypatch.setattr(datasets.boston_housing, "FILE_HASH", sha256(good))
    served = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            served.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(good)))
            self.end_headers()
            self.wfile.write(good)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(downloads, "ORIGIN_FOLDER", f"http://127.0.0.1:{httpd.server_address[1]}/data/")
        (x_train, _), (x_test, _) = datasets.boston_housing.load_data()
        datasets.boston_housing.load_data()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert served == ["/data/boston_housing.npz"]      # once: the second call finds the good copy
    assert len(x_train) + len(x_test) == 5
    assert (cache / "boston_housing.npz").read_bytes() == good


# ---------------------------------------------------------------------------------------------------------------
# Keras, given the same files

@pytest.fixture
def keras_datasets():
    pytest.importorskip("keras")
    import importlib
    return lambda name: importlib.import_module(f"keras.src.datasets.{name}")


@pytest.mark.parametrize("options", WORD_OPTIONS[:5])
def test_imdb_and_reuters_equal_keras(cache, monkeypatch, keras_datasets, options):
    rng = numpy.random.default_rng(10)
    imdb = put(cache, monkeypatch, datasets.imdb, "imdb.npz",
               npz_bytes(x_train=sequences(rng, 9), y_train=rng.integers(0, 2, 9), x_test=sequences(rng, 7),
                         y_test=rng.integers(0, 2, 7)))
    reuters = put(cache, monkeypatch, datasets.reuters, "reuters.npz",
                  npz_bytes(x=sequences(rng, 13), y=rng.integers(0, 46, 13)))
    for name, path in (("imdb", imdb), ("reuters", reuters)):
        theirs = keras_datasets(name)
        monkeypatch.setattr(theirs, "get_file", lambda *args, _path=path, **kwargs: str(_path))
        ours = getattr(datasets, name).load_data(**options)
        expected = theirs.load_data(**options)
        for a, b in zip(ours, expected):
            assert [list(s) for s in a[0]] == [list(s) for s in b[0]], name
            numpy.testing.assert_array_equal(a[1], b[1])


def test_image_and_table_loaders_equal_keras(cache, monkeypatch, keras_datasets):
    rng = numpy.random.default_rng(11)
    x, y = rng.standard_normal((17, 13)), rng.standard_normal(17)
    boston = put(cache, monkeypatch, datasets.boston_housing, "boston_housing.npz", npz_bytes(x=x, y=y))
    files = {name: cifar_batch(rng, 3, fine_labels=[1, 2, 3], coarse_labels=[4, 5, 6]) for name in ("train", "test")}
    put(cache, monkeypatch, datasets.cifar100, "cifar-100-python-target_archive",
        cifar_archive("cifar-100-python", files, protocol=4))
    cases = [("boston_housing", boston, {"test_split": 0.3, "seed": 2}),
             ("cifar100", cache / "cifar-100-python-target", {"label_mode": "coarse"})]
    ours = [datasets.boston_housing.load_data(test_split=0.3, seed=2), datasets.cifar100.load_data("coarse")]
    for (name, path, options), mine in zip(cases, ours):
        theirs = keras_datasets(name)
        monkeypatch.setattr(theirs, "get_file", lambda *args, _path=path, **kwargs: str(_path))
        expected = theirs.load_data(**options)
        for a, b in zip(mine, expected):
            numpy.testing.assert_array_equal(a[0], b[0])
            numpy.testing.assert_array_equal(a[1], b[1])
            assert a[0].dtype == b[0].dtype and a[1].shape == b[1].shape


def test_cifar100_channels_first_equals_keras(cache, monkeypatch, keras_datasets, channels_first):
    # Keras's CIFAR-10 loader fills arrays of the full 50,000 images, so only CIFAR-100 runs on small files.
    rng = numpy.random.default_rng(14)
    files = {name: cifar_batch(rng, 3, fine_labels=[1, 2, 3], coarse_labels=[4, 5, 6]) for name in ("train", "test")}
    put(cache, monkeypatch, datasets.cifar100, "cifar-100-python-target_archive",
        cifar_archive("cifar-100-python", files, protocol=4))
    theirs = keras_datasets("cifar100")
    monkeypatch.setattr(theirs, "get_file", lambda *args, **kwargs: str(cache / "cifar-100-python-target"))
    mine = datasets.cifar100.load_data("fine")
    expected = theirs.load_data("fine")
    assert mine[0][0].shape == (3, 3, 32, 32)
    for a, b in zip(mine, expected):
        numpy.testing.assert_array_equal(a[0], b[0])
        numpy.testing.assert_array_equal(a[1], b[1])
        assert a[0].shape == b[0].shape and a[0].dtype == b[0].dtype


def test_cifar100_offline_reader_and_catalog_take_the_extracted_folder(tmp_path, monkeypatch):
    """gpu_dl.data.load_cifar100 (and `gpu-dl train --data cifar100`) read the folder without a download."""
    from gpu_dl.data import load_cifar100
    from gpu_dl.data.catalog import load_dataset
    monkeypatch.setenv("HOME", str(tmp_path))
    rng = numpy.random.default_rng(12)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    files = {name: cifar_batch(rng, n, fine_labels=rng.integers(0, 100, n).tolist(),
                               coarse_labels=rng.integers(0, 20, n).tolist()) for name, n in (("train", 3), ("test", 2))}
    for name, content in files.items():
        (folder / name).write_bytes(pickle.dumps(content, protocol=2))
    (x_train, y_train), _ = load_cifar100(tmp_path, label_mode="coarse")
    numpy.testing.assert_array_equal(y_train[:, 0], files["train"][b"coarse_labels"])
    (x, y), (x_test, _), description = load_dataset("cifar100", folder)
    assert x.dtype == numpy.float32 and x.shape == (3, 32, 32, 3) and float(x.max()) <= 1.0
    numpy.testing.assert_array_equal(y, files["train"][b"fine_labels"])
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        load_cifar100(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "train").write_bytes(b"not a pickle")
    (tmp_path / "bad" / "test").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a readable CIFAR-100 file"):
        load_cifar100(tmp_path / "bad")
