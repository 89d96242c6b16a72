"""MNIST, Fashion-MNIST and CIFAR-10 readers on small files built here in each format."""
import gzip
import io
import os
import pickle
import struct
import subprocess
import sys
import tarfile

import numpy
import pytest

from gpu_dl.data import load_cifar10, load_fashion_mnist, load_mnist
from gpu_dl.data.cifar10 import restricted_loads
from gpu_dl.data.mnist import parse_idx
from peak_memory import peak_bytes


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """No real data set on this machine is read: HOME and GPU_DL_DATA point at empty folders."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("GPU_DL_DATA", raising=False)
    return home


def tiny_mnist(rng, n_train=5, n_test=3):
    return ((rng.integers(0, 256, (n_train, 28, 28), dtype=numpy.uint8),
             rng.integers(0, 10, n_train, dtype=numpy.uint8)),
            (rng.integers(0, 256, (n_test, 28, 28), dtype=numpy.uint8), rng.integers(0, 10, n_test, dtype=numpy.uint8)))


def idx_bytes(array, code=0x08):
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx_folder(folder, data, compress=True):
    (xtr, ytr), (xte, yte) = data
    folder.mkdir(parents=True, exist_ok=True)
    for stem, a in (("train-images-idx3-ubyte", xtr), ("train-labels-idx1-ubyte", ytr),
                    ("t10k-images-idx3-ubyte", xte), ("t10k-labels-idx1-ubyte", yte)):
        if compress:
            with gzip.open(folder / (stem + ".gz"), "wb") as f:
                f.write(idx_bytes(a))
        else:
            (folder / stem).write_bytes(idx_bytes(a))


def assert_same(loaded, data):
    for (x, y), (ex, ey) in zip(loaded, data):
        assert x.dtype == numpy.uint8 and y.dtype == numpy.uint8
        numpy.testing.assert_array_equal(x, ex)
        numpy.testing.assert_array_equal(y, ey)


@pytest.mark.parametrize("module", ["gpu_dl.data", "gpu_dl.callbacks", "gpu_dl.utils"])
def test_data_packages_import_first_in_a_fresh_interpreter(module):
    # gpu_dl.data.sequences and gpu_dl.utils import each other's packages; the cycle only shows when one of
    # them is the program's first gpu_dl import, so each is tried in its own interpreter.
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {repo!r}); import {module}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------ MNIST
def test_mnist_npz_file_and_folder(tmp_path, rng):
    data = tiny_mnist(rng)
    (xtr, ytr), (xte, yte) = data
    npz = tmp_path / "mnist.npz"
    numpy.savez(npz, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    assert_same(load_mnist(npz), data)
    assert_same(load_mnist(str(tmp_path)), data)


def test_mnist_idx_gz_and_plain(tmp_path, rng):
    data = tiny_mnist(rng)
    write_idx_folder(tmp_path / "gz", data)
    assert_same(load_mnist(tmp_path / "gz"), data)
    write_idx_folder(tmp_path / "plain", data, compress=False)
    assert_same(load_fashion_mnist(tmp_path / "plain"), data)


def test_default_locations(tmp_path, rng, isolated_home, monkeypatch):
    data = tiny_mnist(rng)
    (xtr, ytr), (xte, yte) = data
    keras_dir = isolated_home / ".keras" / "datasets"
    keras_dir.mkdir(parents=True)
    numpy.savez(keras_dir / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    assert_same(load_mnist(), data)
    write_idx_folder(isolated_home / ".keras" / "datasets" / "fashion-mnist", data)
    assert_same(load_fashion_mnist(), data)
    # $GPU_DL_DATA/<name> comes first.
    other = tiny_mnist(numpy.random.default_rng(7))
    write_idx_folder(tmp_path / "root" / "mnist", other)
    monkeypatch.setenv("GPU_DL_DATA", str(tmp_path / "root"))
    assert_same(load_mnist(), other)
    write_idx_folder(isolated_home / ".gpu_dl" / "datasets" / "fashion_mnist", other)
    assert_same(load_fashion_mnist(), other)


def test_mnist_missing_files_say_what_to_put_where(tmp_path, isolated_home):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist()
    text = str(info.value)
    for name in ("mnist.npz", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                 os.path.join(str(isolated_home), ".gpu_dl", "datasets", "mnist"),
                 os.path.join(str(isolated_home), ".keras", "datasets")):
        assert name in text
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_fashion_mnist(tmp_path / "nowhere")
    # Three of the four IDX files are not enough.
    write_idx_folder(tmp_path / "partial", tiny_mnist(numpy.random.default_rng(0)))
    os.remove(tmp_path / "partial" / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path / "partial")


def test_idx_header_checks(tmp_path, rng):
    good = idx_bytes(numpy.arange(12, dtype=numpy.uint8).reshape(3, 4))
    numpy.testing.assert_array_equal(parse_idx(good), numpy.arange(12).reshape(3, 4))
    # big-endian int16 payload
    ints = numpy.array([[-2, 300], [7, 40000 - 65536]], dtype=numpy.int16)
    numpy.testing.assert_array_equal(parse_idx(idx_bytes(ints, code=0x0B)), ints)
    with pytest.raises(ValueError, match="too short"):
        parse_idx(good[:3])
    with pytest.raises(ValueError, match="not an IDX file"):
        parse_idx(b"\x01\x00\x08\x02" + good[4:])
    with pytest.raises(ValueError, match="not an IDX file"):
        parse_idx(b"\x00\x00\x07\x02" + good[4:])
    with pytest.raises(ValueError, match="truncated IDX header"):
        parse_idx(good[:9])
    with pytest.raises(ValueError, match=r"shape \(3, 4\).*11 bytes"):
        parse_idx(good[:-1])
    with pytest.raises(ValueError, match="13 bytes"):
        parse_idx(good + b"\x00")
    huge = bytes([0, 0, 8, 3]) + struct.pack(">III", 2**31, 2**31, 2**31) + b"\x00" * 8
    with pytest.raises(ValueError, match="8 bytes after the header"):
        parse_idx(huge)
    # through the loader: the file is named, and a bad gzip stream is a clear error
    data = tiny_mnist(rng)
    write_idx_folder(tmp_path / "bad", data)
    target = tmp_path / "bad" / "train-images-idx3-ubyte.gz"
    with gzip.open(target, "wb") as f:
        f.write(idx_bytes(data[0][0])[:-10])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path / "bad")
    target.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(ValueError, match="gzip"):
        load_mnist(tmp_path / "bad")


def test_idx_count_mismatch_and_bad_npz(tmp_path, rng):
    (xtr, ytr), (xte, yte) = tiny_mnist(rng)
    write_idx_folder(tmp_path / "m", ((xtr, ytr[:-1]), (xte, yte)))
    with pytest.raises(ValueError, match="5 images but .* 4 labels"):
        load_mnist(tmp_path / "m")
    numpy.savez(tmp_path / "mnist.npz", x_train=xtr, y_train=ytr)
    with pytest.raises(ValueError, match="x_test"):
        load_mnist(tmp_path / "mnist.npz")
    numpy.savez(tmp_path / "obj.npz", x_train=numpy.array([{"a": 1}], dtype=object), y_train=ytr,
                x_test=xte, y_test=yte)
    with pytest.raises(ValueError, match="pickle"):
        load_mnist(tmp_path / "obj.npz")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="not a .npz"):
        load_mnist(tmp_path / "notes.txt")


def test_mnist_values_that_uint8_cannot_hold_are_refused(tmp_path, rng):
    # Casting them would wrap -1 to 255 and truncate 0.7 to 0 without a word.
    (xtr, ytr), (xte, yte) = tiny_mnist(rng)
    numpy.savez(tmp_path / "float.npz", x_train=xtr / 255.0, y_train=ytr, x_test=xte, y_test=yte)
    with pytest.raises(ValueError, match=r"float.npz: x_train must hold whole numbers 0..255 \(uint8\), got float64"):
        load_mnist(tmp_path / "float.npz")
    numpy.savez(tmp_path / "neg.npz", x_train=xtr, y_train=numpy.r_[numpy.int64(-1), ytr[1:]], x_test=xte, y_test=yte)
    with pytest.raises(ValueError, match="neg.npz: y_train must hold values 0..255.*from -1"):
        load_mnist(tmp_path / "neg.npz")
    numpy.savez(tmp_path / "wide.npz", x_train=xtr.astype(numpy.int32), y_train=ytr.astype(numpy.int64),
                x_test=xte, y_test=yte)
    (x, y), _ = load_mnist(tmp_path / "wide.npz")      # wider integer types holding 0..255 are fine
    assert x.dtype == y.dtype == numpy.uint8
    numpy.testing.assert_array_equal(x, xtr)
    write_idx_folder(tmp_path / "idx", ((xtr, ytr), (xte, yte)))
    with gzip.open(tmp_path / "idx" / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(idx_bytes(numpy.array([3, 1000, 2], numpy.int32), code=0x0C))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz: the labels must hold values 0..255"):
        load_mnist(tmp_path / "idx")


@pytest.mark.parametrize("content", [b"", b"plain text, not an archive", b"\x93NUMPY"])
def test_npz_that_is_not_a_zip_is_named_as_such(tmp_path, content):
    (tmp_path / "mnist.npz").write_bytes(content)
    with pytest.raises(ValueError, match=r"mnist.npz: not a .npz archive"):
        load_mnist(tmp_path / "mnist.npz")
    numpy.save(tmp_path / "lone.npy", numpy.zeros(3))
    os.replace(tmp_path / "lone.npy", tmp_path / "fashion_mnist.npz")
    with pytest.raises(ValueError, match="fashion_mnist.npz: not a .npz archive"):
        load_fashion_mnist(tmp_path)


# --------------------------------------------------------------- CIFAR-10
def tiny_cifar(rng, sizes=(2, 3, 1, 2, 2), n_test=3):
    batches = {}
    for i, n in enumerate(sizes, start=1):
        batches[f"data_batch_{i}"] = (rng.integers(0, 256, (n, 3072), dtype=numpy.uint8),
                                      rng.integers(0, 10, n).tolist())
    batches["test_batch"] = (rng.integers(0, 256, (n_test, 3072), dtype=numpy.uint8),
                             rng.integers(0, 10, n_test).tolist())
    return batches


def batch_pickle(data, labels, name, protocol=2):
    d = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
         b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))]}
    return pickle.dumps(d, protocol=protocol)


def write_cifar_folder(folder, batches, protocol=2):
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, labels) in batches.items():
        (folder / name).write_bytes(batch_pickle(data, labels, name, protocol))


def expected_cifar(batches):
    def images(rows):
        # pixel (r, c) of channel k sits at k * 1024 + r * 32 + c
        n = rows.shape[0]
        out = numpy.empty((n, 32, 32, 3), numpy.uint8)
        for i in range(n):
            for k in range(3):
                out[i, :, :, k] = rows[i, k * 1024:(k + 1) * 1024].reshape(32, 32)
        return out
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    x_train = numpy.concatenate([images(d) for d, _ in train])
    y_train = numpy.concatenate([numpy.array(lab, numpy.uint8) for _, lab in train]).reshape(-1, 1)
    d, lab = batches["test_batch"]
    return (x_train, y_train), (images(d), numpy.array(lab, numpy.uint8).reshape(-1, 1))


def assert_cifar(loaded, batches):
    (xtr, ytr), (xte, yte) = loaded
    (exr, eyr), (exe, eye) = expected_cifar(batches)
    assert xtr.shape == (10, 32, 32, 3) and ytr.shape == (10, 1) and xte.shape == (3, 32, 32, 3) and yte.shape == (3, 1)
    for a, b in ((xtr, exr), (ytr, eyr), (xte, exe), (yte, eye)):
        assert a.dtype == numpy.uint8
        numpy.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("protocol", [2, 4, 5])     # 5 rebuilds arrays with numpy's _frombuffer
def test_cifar_folder_round_trip(tmp_path, rng, protocol):
    batches = tiny_cifar(rng)
    write_cifar_folder(tmp_path / "cifar-10-batches-py", batches, protocol)
    assert_cifar(load_cifar10(tmp_path / "cifar-10-batches-py"), batches)
    assert_cifar(load_cifar10(tmp_path), batches)


def test_cifar_archive_is_read_without_extracting(tmp_path, rng):
    batches = tiny_cifar(rng)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, (data, labels) in batches.items():
            payload = batch_pickle(data, labels, name)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    before = sorted(os.listdir(tmp_path))
    assert_cifar(load_cifar10(archive), batches)
    assert_cifar(load_cifar10(tmp_path), batches)
    assert sorted(os.listdir(tmp_path)) == before


def test_cifar_default_location(tmp_path, rng, isolated_home, monkeypatch):
    batches = tiny_cifar(rng)
    write_cifar_folder(isolated_home / ".keras" / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py",
                       batches)
    assert_cifar(load_cifar10(), batches)
    other = tiny_cifar(numpy.random.default_rng(5))
    write_cifar_folder(tmp_path / "root" / "cifar10", other)
    monkeypatch.setenv("GPU_DL_DATA", str(tmp_path / "root"))
    assert_cifar(load_cifar10(), other)


class _System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Eval:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        import builtins
        return (builtins.eval, (self.code,))


@pytest.mark.parametrize("make", [
    lambda sentinel: {b"data": _System(f"touch {sentinel}"), b"labels": [1]},
    lambda sentinel: {b"data": _Eval(f"open({str(sentinel)!r}, 'w').close()"), b"labels": [1]},
])
def test_malicious_batch_is_refused_without_running(tmp_path, rng, make):
    sentinel = tmp_path / "sentinel"
    batches = tiny_cifar(rng)
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_folder(folder, batches)
    (folder / "data_batch_3").write_bytes(pickle.dumps(make(sentinel), protocol=2))
    with pytest.raises(pickle.UnpicklingError) as info:
        load_cifar10(folder)
    text = str(info.value)
    assert "refusing to load" in text and "data_batch_3" in text and "never contains" in text
    assert ("system" in text) or ("builtin__.eval" in text)
    assert not sentinel.exists()


@pytest.mark.parametrize("field,value,message", [
    ("labels", [1, 2, -1], r"'labels' must hold values 0..255.*from -1 to 2"),
    ("labels", [1, [2], 3], "'data' and 'labels' must be arrays or flat lists"),
    ("labels", ["a", "b", "c"], "'labels' must hold whole numbers"),
    ("data", numpy.full((3, 3072), 300), r"'data' must hold values 0..255.*300"),
    ("data", numpy.full((3, 3072), 0.5), "'data' must hold whole numbers 0..255.*float64"),
    ("data", numpy.ones((3, 3072), dtype=object), "'data' must hold whole numbers 0..255.*object"),
])
def test_cifar_batch_values_outside_uint8_are_refused(tmp_path, rng, field, value, message):
    batches = tiny_cifar(rng)
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_folder(folder, batches)
    d = {b"data": rng.integers(0, 256, (3, 3072), dtype=numpy.uint8), b"labels": [1, 2, 3]}
    d[field.encode()] = value
    (folder / "test_batch").write_bytes(pickle.dumps(d, protocol=2))
    with pytest.raises(ValueError, match="test_batch: " + message):
        load_cifar10(folder)


def test_restricted_unpickler_refuses_other_globals():
    for obj in (numpy.float64(1.5), numpy.ma.masked_array([1, 2]), set(), object):
        with pytest.raises(pickle.UnpicklingError, match="refusing"):
            restricted_loads(pickle.dumps(obj, protocol=2))
    value = restricted_loads(pickle.dumps({b"k": [numpy.arange(3), "s", b"b", 1.5, (1, 2)]}, protocol=4))
    numpy.testing.assert_array_equal(value[b"k"][0], numpy.arange(3))


def test_cifar_missing_and_malformed(tmp_path, rng, isolated_home):
    with pytest.raises(FileNotFoundError) as info:
        load_cifar10()
    text = str(info.value)
    for name in ("data_batch_1", "data_batch_5", "test_batch", "cifar-10-python.tar.gz", "cifar-10-batches-py",
                 os.path.join(str(isolated_home), ".gpu_dl", "datasets", "cifar10")):
        assert name in text
    batches = tiny_cifar(rng)
    folder = tmp_path / "c"
    write_cifar_folder(folder, batches)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": numpy.zeros((2, 100), numpy.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"test_batch.*\(N, 3072\)"):
        load_cifar10(folder)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="test_batch"):
        load_cifar10(folder)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="tar"):
        load_cifar10(tmp_path / "cifar-10-python.tar.gz")


# ------------------------------------------------- decompression limits
def _gzip_of(path, head, zeros):
    """A gzip file holding ``head`` then ``zeros`` zero bytes, written a MiB at a time (small on disk)."""
    import zlib
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(2**20)
    with open(path, "wb") as f:
        f.write(packer.compress(head))
        for _ in range(zeros // len(chunk)):
            f.write(packer.compress(chunk))
        f.write(packer.flush())


def test_idx_gzip_bomb_is_refused_once_past_its_declared_size(tmp_path, rng):
    data = tiny_mnist(rng)
    write_idx_folder(tmp_path / "bomb", data)
    target = tmp_path / "bomb" / "train-labels-idx1-ubyte.gz"
    # A valid header for 5 labels, then 32 MiB of zeros: the reader must stop one byte past the 5 labels.
    _gzip_of(target, idx_bytes(data[0][1]), 32 * 2**20)
    assert target.stat().st_size < 64 * 2**10
    raised, peak = peak_bytes(lambda: load_mnist(tmp_path / "bomb"))
    assert isinstance(raised, ValueError)
    assert "train-labels-idx1-ubyte.gz" in str(raised) and "more than that after the header" in str(raised)
    assert peak < 2**20


def test_idx_header_declaring_more_than_the_cap_is_refused_unread(tmp_path, rng):
    from gpu_dl.data import mnist
    data = tiny_mnist(rng)
    write_idx_folder(tmp_path / "big", data)
    target = tmp_path / "big" / "train-images-idx3-ubyte.gz"
    header = bytes([0, 0, 8, 3]) + struct.pack(">III", 2**16, 2**16, 2**4)      # 64 GiB of pixels
    _gzip_of(target, header, 4 * 2**20)
    raised, peak = peak_bytes(lambda: load_mnist(tmp_path / "big"))
    assert isinstance(raised, ValueError)
    assert str(raised).startswith(str(target))
    assert f"more than the {mnist.MAX_ARRAY_BYTES} bytes" in str(raised)
    assert peak < 2**20


def test_idx_trailing_bytes_and_truncation_are_refused_plain_too(tmp_path, rng):
    data = tiny_mnist(rng)
    write_idx_folder(tmp_path / "plain", data, compress=False)
    target = tmp_path / "plain" / "t10k-images-idx3-ubyte"
    good = target.read_bytes()
    target.write_bytes(good + b"\x00")
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte: .*more than that after the header"):
        load_mnist(tmp_path / "plain")
    target.write_bytes(good[:-1])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte: .*\(2352 bytes of data\).*2351 bytes"):
        load_mnist(tmp_path / "plain")
    # a gzip stream cut after its data but before its checksum is refused, not half-trusted
    gz = tmp_path / "gz"
    write_idx_folder(gz, data)
    member = gz / "t10k-labels-idx1-ubyte.gz"
    member.write_bytes(member.read_bytes()[:-4])
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz is not a readable gzip file"):
        load_mnist(gz)


def _npz_with(path, arrays, compression=0):
    """An .npz written member by member (numpy.savez's layout) so that a test can swap in other bytes."""
    import zipfile
    from numpy.lib import format as npy
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for key, value in arrays.items():
            if isinstance(value, bytes):
                archive.writestr(key + ".npy", value)
            else:
                buffer = io.BytesIO()
                npy.write_array(buffer, value)
                archive.writestr(key + ".npy", buffer.getvalue())


def test_npz_member_larger_than_the_cap_is_refused_before_it_is_inflated(tmp_path, rng, monkeypatch):
    import zipfile
    from gpu_dl.data import mnist
    (xtr, ytr), (xte, yte) = tiny_mnist(rng)
    monkeypatch.setattr(mnist, "MAX_ARRAY_BYTES", 2**20)      # 2 GiB scaled down to keep the test cheap
    big = numpy.zeros((8 * 2**20 // 784, 28, 28), numpy.uint8)
    path = tmp_path / "mnist.npz"
    _npz_with(path, {"x_train": big, "y_train": ytr, "x_test": xte, "y_test": yte}, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 64 * 2**10
    raised, peak = peak_bytes(lambda: load_mnist(path))
    assert isinstance(raised, ValueError)
    assert "mnist.npz: array x_train (x_train.npy) declares" in str(raised) and "more than the 1048576" in str(raised)
    assert peak < 2**19


def test_npz_header_that_disagrees_with_its_member_is_refused_unallocated(tmp_path, rng):
    (xtr, ytr), (xte, yte) = tiny_mnist(rng)
    from numpy.lib import format as npy
    buffer = io.BytesIO()
    # The header claims 10 million images (7.8 GB) over a member of a few bytes.
    npy.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": (10**7, 28, 28)})
    path = tmp_path / "mnist.npz"
    _npz_with(path, {"x_train": buffer.getvalue() + bytes(100), "y_train": ytr, "x_test": xte, "y_test": yte})
    raised, peak = peak_bytes(lambda: load_mnist(path))
    assert isinstance(raised, ValueError)
    assert "array x_train" in str(raised) and "(7840000000 bytes of data)" in str(raised)
    assert "100 bytes after the header" in str(raised)
    assert peak < 2**20
    # a Fortran-ordered array, as numpy.save writes one, still reads the same
    _npz_with(path, {"x_train": numpy.asfortranarray(xtr), "y_train": ytr, "x_test": xte, "y_test": yte})
    assert_same(load_mnist(path), ((xtr, ytr), (xte, yte)))


def _tar_gz(path, entries):
    """A .tar.gz of ``(TarInfo, payload or None)``; sizes and types are taken from the TarInfo as given."""
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        for info, payload in entries:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)


def _batch_entries(batches, folder="cifar-10-batches-py/"):
    out = []
    for name, (data, labels) in batches.items():
        payload = batch_pickle(data, labels, name)
        info = tarfile.TarInfo(folder + name)
        info.size = len(payload)
        out.append((info, payload))
    return out


def test_cifar_archive_member_above_the_cap_is_refused_from_its_header(tmp_path, rng):
    from gpu_dl.data import cifar10
    path = tmp_path / "cifar-10-python.tar.gz"
    entries = _batch_entries(tiny_cifar(rng))
    # A member whose header declares 10 GiB: its header alone is written (the archive is a few KiB), so the
    # reader must refuse it from the header, before skipping or reading anything it announces.
    huge = tarfile.TarInfo("cifar-10-batches-py/readme.html")
    huge.size = 10 * 2**30
    with gzip.open(path, "wb") as f:
        f.write(huge.tobuf(tarfile.GNU_FORMAT))
        for info, payload in entries:
            f.write(info.tobuf(tarfile.GNU_FORMAT) + payload + bytes(-len(payload) % 512))
    raised, peak = peak_bytes(lambda: load_cifar10(path))
    assert isinstance(raised, ValueError)
    assert "cifar-10-python.tar.gz: member 'cifar-10-batches-py/readme.html' declares 10737418240 bytes" in str(raised)
    assert f"more than the {cifar10.MAX_BATCH_BYTES}" in str(raised)
    assert peak < 2**20


def test_cifar_archive_batch_above_the_cap_is_refused(tmp_path, rng, monkeypatch):
    from gpu_dl.data import cifar10
    monkeypatch.setattr(cifar10, "MAX_BATCH_BYTES", 2**16)     # 64 MiB scaled down; the batch is ~200 KB
    batches = tiny_cifar(rng, sizes=(64, 1, 1, 1, 1))
    path = tmp_path / "cifar-10-python.tar.gz"
    _tar_gz(path, _batch_entries(batches))
    with pytest.raises(ValueError, match="member 'cifar-10-batches-py/data_batch_1' declares .* more than the 65536"):
        load_cifar10(path)
    write_cifar_folder(tmp_path / "folder", batches)
    with pytest.raises(ValueError, match=r"folder/data_batch_1: \d+ bytes, more than the 65536"):
        load_cifar10(tmp_path / "folder")


def test_cifar_archive_with_very_many_members_is_refused(tmp_path, rng):
    path = tmp_path / "cifar-10-python.tar.gz"
    filler = []
    for i in range(200):
        info = tarfile.TarInfo(f"cifar-10-batches-py/note_{i}")
        info.size = 1
        filler.append((info, b"x"))
    _tar_gz(path, filler + _batch_entries(tiny_cifar(rng)))
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz: more than 64 entries"):
        load_cifar10(path)


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "directory", "outside", "absolute", "twice"])
def test_cifar_archive_batches_must_be_regular_files_in_their_place(tmp_path, rng, kind):
    batches = tiny_cifar(rng)
    entries = _batch_entries(batches)
    name = "cifar-10-batches-py/data_batch_2"
    if kind in ("symlink", "hardlink", "directory"):
        info = tarfile.TarInfo(name)
        info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "directory": tarfile.DIRTYPE}[kind]
        info.linkname = "/dev/zero" if kind != "directory" else ""
        entries[1] = (info, None)
        message = "data_batch_2: not a regular file"
    elif kind in ("outside", "absolute"):
        entries[1][0].name = "../../data_batch_2" if kind == "outside" else "/etc/cifar/data_batch_2"
        message = "a batch's name outside its place"
    else:
        entries.insert(2, entries[1])       # before the set is complete (the reader stops once it is)
        message = "holds data_batch_2 twice"
    path = tmp_path / "cifar-10-python.tar.gz"
    _tar_gz(path, entries)
    with pytest.raises(ValueError, match=message):
        load_cifar10(path)


@pytest.mark.parametrize("header", ["pax", "sparse"])
def test_cifar_archive_pax_and_sparse_headers_are_refused(tmp_path, rng, header):
    entries = _batch_entries(tiny_cifar(rng))
    path = tmp_path / "cifar-10-python.tar.gz"
    if header == "pax":
        with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            for info, payload in entries:
                info.pax_headers = {"comment": "x"}
                tar.addfile(info, io.BytesIO(payload))
    else:
        entries[0][0].type = tarfile.GNUTYPE_SPARSE
        _tar_gz(path, entries)
    with pytest.raises(ValueError, match="pax or sparse header"):
        load_cifar10(path)


def test_cifar_archive_is_read_only_as_far_as_the_batches(tmp_path, rng):
    batches = tiny_cifar(rng)
    path = tmp_path / "cifar-10-python.tar.gz"
    meta = tarfile.TarInfo("cifar-10-batches-py/batches.meta")
    meta.size = 3
    with gzip.open(path, "wb") as f:
        for info, payload in [(meta, b"abc")] + _batch_entries(batches):
            f.write(info.tobuf(tarfile.GNU_FORMAT) + payload + bytes(-len(payload) % 512))
        f.write(b"\xff" * 4096)       # damaged past the last batch: never reached
    assert_cifar(load_cifar10(path), batches)


@pytest.mark.parametrize("field", ["data", "labels"])
def test_cifar_batch_repeating_one_list_by_reference_is_refused_before_numpy_expands_it(tmp_path, rng, field):
    batches = tiny_cifar(rng)
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_folder(folder, batches)
    row = [0] * 3072
    # pickle writes `row` once and then refers to it: 20,000 rows (61 M values) in about 50 KB.
    d = {b"data": [row] * 20000, b"labels": [0] * 20000} if field == "data" else \
        {b"data": rng.integers(0, 256, (2, 3072), dtype=numpy.uint8), b"labels": [row] * 20000}
    payload = pickle.dumps(d, protocol=2)
    assert len(payload) < 2**17
    (folder / "test_batch").write_bytes(payload)
    raised, peak = peak_bytes(lambda: load_cifar10(folder))
    assert isinstance(raised, ValueError) and "test_batch" in str(raised)
    assert peak < 16 * 2**20
    # honest lists still load
    d = {b"data": batches["test_batch"][0].tolist(), b"labels": batches["test_batch"][1]}
    (folder / "test_batch").write_bytes(pickle.dumps(d, protocol=2))
    assert_cifar(load_cifar10(folder), batches)


def test_cifar_batch_that_is_not_a_regular_file_is_refused_unopened(tmp_path, rng):
    batches = tiny_cifar(rng)
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_folder(folder, batches)
    os.remove(folder / "data_batch_4")
    os.mkfifo(folder / "data_batch_4")         # opening a pipe for reading would wait forever
    from gpu_dl.data.cifar10 import _from_folder
    with pytest.raises(ValueError, match="data_batch_4: not a regular file"):
        _from_folder(str(folder))
