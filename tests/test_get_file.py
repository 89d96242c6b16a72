"""gpu_dl.utils.get_file: downloads from a local HTTP server (and file:// URLs) into a temporary cache, never the
internet. Caching and request counts, hashes, names, extraction and the folder it returns, refused archive members,
interrupted downloads and errors; where Keras is installed, Keras's get_file against the same server gives the same
paths."""
import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading
import uuid
import zipfile

import pytest

from gpu_dl import utils
from gpu_dl.utils import file_utils
from gpu_dl.utils.file_utils import get_file, hash_file, validate_file


# ---------------------------------------------------------------------------------------------------------------
# A local server

class Server:
    """Serves ``files`` (path -> bytes) on 127.0.0.1; ``modes`` (path -> "short" | "no-length" | "drop") misbehave."""

    def __init__(self):
        self.files = {}
        self.modes = {}
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                server.requests.append(path)
                body = server.files.get(path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                mode = server.modes.get(path)
                self.send_response(200)
                if mode == "short":         # announces more than it sends, then closes
                    self.send_header("Content-Length", str(len(body) + 1000))
                elif mode != "no-length":
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if mode == "short" else body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def count(self, path):
        return self.requests.count(path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def payload(n=50_000, seed=0):
    return bytes((i * 31 + seed * 7 + i // 251) % 256 for i in range(n))


def leftovers(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".part"))


# ---------------------------------------------------------------------------------------------------------------
# Archives

def tar_bytes(entries, mode="w:gz"):
    """``entries``: (name, bytes) for a file, (name, None) for a folder, (name, ("sym"|"lnk", target)) for a link."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, tuple):
                info.type = tarfile.SYMTYPE if content[0] == "sym" else tarfile.LNKTYPE
                info.linkname = content[1]
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def zip_bytes(entries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries:
            archive.writestr(zipfile.ZipInfo(name), content)
    return buffer.getvalue()


GOOD = [("data", None), ("data/a.txt", b"alpha"), ("data/sub", None), ("data/sub/b.txt", b"beta")]


def files_under(folder):
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, folder)] = f.read()
    return out


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Downloading and the cache

def test_downloads_into_the_cache_and_uses_it_the_second_time(server, tmp_path, capsys):
    data = payload()
    server.files["/files/a.bin"] = data
    url = server.url("/files/a.bin")
    path = get_file("a.bin", origin=url, cache_dir=str(tmp_path))
    assert path == os.path.join(str(tmp_path), "datasets", "a.bin")
    assert open(path, "rb").read() == data
    out = capsys.readouterr().out
    assert f"Downloading data from {url}" in out
    assert f"{len(data)}/{len(data)}" in out          # the progress bar's final line
    assert leftovers(tmp_path / "datasets") == []
    assert get_file("a.bin", origin=url, cache_dir=str(tmp_path)) == path
    assert server.count("/files/a.bin") == 1
    assert "Downloading" not in capsys.readouterr().out


def test_exported_from_utils():
    assert utils.get_file is get_file and "get_file" in utils.__all__


def test_fname_comes_from_the_url_path(server, tmp_path):
    server.files["/deep/dir/weights.h5"] = b"w" * 10
    path = get_file(origin=server.url("/deep/dir/weights.h5?download=1&x=2"), cache_dir=tmp_path)
    assert path == os.path.join(str(tmp_path), "datasets", "weights.h5")
    with pytest.raises(ValueError, match="Can't parse the file name"):
        get_file(origin=server.url("/"), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="fname"):
        get_file("sub/x.bin", origin=server.url("/deep/dir/weights.h5"), cache_dir=tmp_path)


def test_cache_subdir_relative_and_absolute(server, tmp_path):
    server.files["/f.txt"] = b"hello"
    assert get_file("f.txt", origin=server.url("/f.txt"), cache_dir=tmp_path, cache_subdir="models") == \
        os.path.join(str(tmp_path), "models", "f.txt")
    elsewhere = tmp_path / "elsewhere"
    assert get_file("f.txt", origin=server.url("/f.txt"), cache_dir=tmp_path / "unused", cache_subdir=str(elsewhere)) \
        == os.path.join(str(elsewhere), "f.txt")


def test_default_cache_is_keras_home(server, tmp_path, monkeypatch):
    server.files["/k.txt"] = b"k"
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert get_file(origin=server.url("/k.txt")) == os.path.join(str(tmp_path / "kh"), "datasets", "k.txt")
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    os.makedirs(tmp_path / "home")
    assert file_utils.keras_home() == os.path.join(str(tmp_path / "home"), ".keras")
    write(tmp_path / "a_file", b"")
    monkeypatch.setenv("HOME", str(tmp_path / "a_file" / "home"))      # not a writable folder
    assert file_utils.keras_home() == os.path.join("/tmp", ".keras")


def test_unwritable_cache_dir_falls_back_to_tmp_keras(server, tmp_path):
    server.files["/t.txt"] = b"t"
    write(tmp_path / "a_file", b"")
    subdir = f"gpu_dl-get-file-test-{uuid.uuid4().hex}"
    path = get_file("t.txt", origin=server.url("/t.txt"), cache_dir=tmp_path / "a_file" / "cache", cache_subdir=subdir)
    try:
        assert path == os.path.join("/tmp", ".keras", subdir, "t.txt") and open(path, "rb").read() == b"t"
    finally:
        os.remove(path)
        os.rmdir(os.path.dirname(path))
        try:
            os.rmdir(os.path.join("/tmp", ".keras"))       # only if the test made it and it is empty again
        except OSError:
            pass


def test_missing_cache_dir_is_created(server, tmp_path):
    server.files["/m.txt"] = b"m"
    assert get_file(origin=server.url("/m.txt"), cache_dir=tmp_path / "new" / "cache") == \
        os.path.join(str(tmp_path / "new" / "cache"), "datasets", "m.txt")


def test_force_download(server, tmp_path):
    server.files["/v.txt"] = b"version 1"
    url = server.url("/v.txt")
    path = get_file(origin=url, cache_dir=tmp_path)
    server.files["/v.txt"] = b"version 2"
    assert open(get_file(origin=url, cache_dir=tmp_path), "rb").read() == b"version 1"
    assert open(get_file(origin=url, cache_dir=tmp_path, force_download=True), "rb").read() == b"version 2"
    assert server.count("/v.txt") == 2 and path.endswith("v.txt")


def test_unknown_length_downloads(server, tmp_path, capsys):
    data = payload(70_000, seed=3)
    server.files["/n.bin"] = data
    server.modes["/n.bin"] = "no-length"
    path = get_file(origin=server.url("/n.bin"), cache_dir=tmp_path)
    assert open(path, "rb").read() == data
    assert f"{len(data)}/Unknown" in capsys.readouterr().out


def test_file_urls(tmp_path):
    source = write(tmp_path / "source.bin", payload(1000))
    path = get_file(origin=source.as_uri(), cache_dir=tmp_path / "cache")
    assert path == os.path.join(str(tmp_path / "cache"), "datasets", "source.bin")
    assert open(path, "rb").read() == payload(1000)


# ---------------------------------------------------------------------------------------------------------------
# Hashes

def test_hash_file_and_validate_file(tmp_path):
    data = payload(200_000)
    path = write(tmp_path / "h.bin", data)
    sha, md5 = hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()
    assert hash_file(path) == sha and hash_file(path, "md5") == md5
    assert hash_file(path, "auto") == md5                      # Keras's "auto" without a hash to look at
    assert hash_file(path, hashlib.sha256(), chunk_size=1000) == sha
    assert validate_file(path, sha) and validate_file(path, md5) and validate_file(path, sha.upper())
    assert validate_file(path, sha, "sha256") and validate_file(path, md5, "md5")
    assert not validate_file(path, sha, "md5") and not validate_file(path, "0" * 64)
    with pytest.raises(ValueError, match="sha1"):
        validate_file(path, sha, "sha1")
    assert not hasattr(utils, "validate_file") and not hasattr(utils, "hash_file")   # as keras.utils


@pytest.mark.parametrize("how", ["sha256", "md5", "sha256-auto", "md5-auto", "md5_hash"])
def test_hash_checked_on_download(server, tmp_path, how):
    data = payload()
    server.files["/h.bin"] = data
    digest = (hashlib.sha256 if how.startswith("sha256") else hashlib.md5)(data).hexdigest()
    kwargs = {"md5_hash": digest} if how == "md5_hash" else \
        {"file_hash": digest, "hash_algorithm": "auto" if how.endswith("auto") else how}
    path = get_file(origin=server.url("/h.bin"), cache_dir=tmp_path, **kwargs)
    assert open(path, "rb").read() == data
    assert get_file(origin=server.url("/h.bin"), cache_dir=tmp_path, **kwargs) == path
    assert server.count("/h.bin") == 1


@pytest.mark.parametrize("wrong", ["0" * 64, "0" * 32])
def test_hash_mismatch_is_an_error_and_caches_nothing(server, tmp_path, wrong):
    server.files["/h.bin"] = payload()
    url = server.url("/h.bin")
    with pytest.raises(ValueError, match="hash") as info:
        get_file(origin=url, file_hash=wrong, cache_dir=tmp_path)
    assert url in str(info.value) and wrong in str(info.value)
    assert ("sha256" if len(wrong) == 64 else "md5") in str(info.value)
    assert os.listdir(tmp_path / "datasets") == []


def test_corrupted_cache_is_downloaded_again(server, tmp_path, capsys):
    data = payload()
    server.files["/c.bin"] = data
    url = server.url("/c.bin")
    path = get_file(origin=url, cache_dir=tmp_path)
    write(path, b"truncated")
    assert open(get_file(origin=url, cache_dir=tmp_path), "rb").read() == b"truncated"   # no hash: kept
    assert server.count("/c.bin") == 1
    capsys.readouterr()
    assert open(get_file(origin=url, cache_dir=tmp_path, file_hash=hashlib.sha256(data).hexdigest()), "rb").read() \
        == data
    assert server.count("/c.bin") == 2
    assert "re-download" in capsys.readouterr().out


def test_unknown_hash_algorithm_fails_before_downloading(server, tmp_path):
    server.files["/u.bin"] = b"u"
    with pytest.raises(ValueError, match="hash_algorithm"):
        get_file(origin=server.url("/u.bin"), cache_dir=tmp_path, file_hash="ab", hash_algorithm="sha1")
    assert server.count("/u.bin") == 0


# ---------------------------------------------------------------------------------------------------------------
# Failures

def test_server_closing_early_leaves_no_file(server, tmp_path):
    server.files["/s.bin"] = payload()
    server.modes["/s.bin"] = "short"
    url = server.url("/s.bin")
    with pytest.raises(OSError, match="incomplete") as info:
        get_file(origin=url, cache_dir=tmp_path)
    assert url in str(info.value)
    assert os.listdir(tmp_path / "datasets") == []


def test_failed_download_keeps_the_cached_file(server, tmp_path):
    server.files["/k.bin"] = b"good"
    url = server.url("/k.bin")
    path = get_file(origin=url, cache_dir=tmp_path)
    server.files["/k.bin"] = payload()
    server.modes["/k.bin"] = "short"
    with pytest.raises(OSError, match="incomplete"):
        get_file(origin=url, cache_dir=tmp_path, force_download=True)
    assert open(path, "rb").read() == b"good" and leftovers(tmp_path / "datasets") == []


def test_interrupted_download_leaves_no_file(server, tmp_path, monkeypatch):
    server.files["/i.bin"] = payload(300_000)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(file_utils.Progbar, "update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        get_file(origin=server.url("/i.bin"), cache_dir=tmp_path)
    assert os.listdir(tmp_path / "datasets") == []


def test_http_error_names_the_url(server, tmp_path):
    url = server.url("/missing.bin")
    with pytest.raises(OSError, match="404") as info:
        get_file(origin=url, cache_dir=tmp_path)
    assert url in str(info.value)
    assert os.listdir(tmp_path / "datasets") == []


def test_unreachable_host_names_the_url(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/x.bin"
    with pytest.raises(OSError) as info:
        get_file(origin=url, cache_dir=tmp_path)
    assert url in str(info.value)
    assert os.listdir(tmp_path / "datasets") == []


def test_missing_file_url_and_missing_origin(tmp_path):
    url = (tmp_path / "nowhere.bin").as_uri()
    with pytest.raises(OSError) as info:
        get_file(origin=url, cache_dir=tmp_path / "cache")
    assert url in str(info.value)
    with pytest.raises(ValueError, match="origin"):
        get_file("x.bin", cache_dir=tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# Extraction

@pytest.mark.parametrize("mode,suffix", [("w:gz", ".tar.gz"), ("w:bz2", ".tar.bz2"), ("w:xz", ".tar.xz"),
                                         ("w", ".tar")])
def test_extract_tar_names_as_keras(server, tmp_path, mode, suffix):
    server.files["/arc/data" + suffix] = tar_bytes(GOOD, mode)
    url = server.url("/arc/data" + suffix)
    datasets = os.path.join(str(tmp_path), "datasets")
    expected = {os.path.join("data", "a.txt"): b"alpha", os.path.join("data", "sub", "b.txt"): b"beta"}
    # no fname: the folder is named after the URL's file, the archive kept beside it
    path = get_file(origin=url, extract=True, cache_dir=tmp_path)
    assert path == os.path.join(datasets, "data" + suffix)
    assert files_under(path) == expected and os.path.isfile(path + "_archive")
    # fname with an extension: <name before the first dot>_extracted
    path = get_file("stuff" + suffix, origin=url, extract=True, cache_dir=tmp_path)
    assert path == os.path.join(datasets, "stuff_extracted") and files_under(path) == expected
    assert os.path.isfile(os.path.join(datasets, "stuff" + suffix))
    # fname without one: that folder, the archive as <fname>_archive
    path = get_file("plain", origin=url, untar=True, cache_dir=tmp_path)
    assert path == os.path.join(datasets, "plain") and files_under(path) == expected
    assert os.path.isfile(os.path.join(datasets, "plain_archive"))
    assert server.count("/arc/data" + suffix) == 3


def test_extract_zip_and_again_from_the_cache(server, tmp_path):
    server.files["/z/pack.zip"] = zip_bytes([("pack/", b""), ("pack/x.txt", b"x"), ("pack/d/y.txt", b"y")])
    url = server.url("/z/pack.zip")
    path = get_file("pack.zip", origin=url, extract=True, cache_dir=tmp_path)
    assert path == os.path.join(str(tmp_path), "datasets", "pack_extracted")
    expected = {os.path.join("pack", "x.txt"): b"x", os.path.join("pack", "d", "y.txt"): b"y"}
    assert files_under(path) == expected
    assert get_file("pack.zip", origin=url, extract=True, cache_dir=tmp_path) == path
    assert files_under(path) == expected and server.count("/z/pack.zip") == 1


def test_untar_of_a_zip_warns(server, tmp_path):
    server.files["/z/pack.zip"] = zip_bytes([("x.txt", b"x")])
    with pytest.warns(UserWarning, match="Could not extract"):
        path = get_file("pack", origin=server.url("/z/pack.zip"), untar=True, cache_dir=tmp_path)
    assert not os.path.exists(path)


def test_links_inside_the_archive_are_extracted(tmp_path):
    archive = write(tmp_path / "links.tar", tar_bytes(GOOD + [("data/link", ("sym", "sub/b.txt")),
                                                              ("data/hard", ("lnk", "data/a.txt")),
                                                              ("data/up", ("sym", "..")),
                                                              ("data/up/c.txt", b"gamma")], "w"))
    for _ in range(2):     # extracting over an earlier extraction works too
        path = get_file("links", origin=archive.as_uri(), extract=True, cache_dir=tmp_path / "cache")
        assert open(os.path.join(path, "data", "link"), "rb").read() == b"beta"
        assert open(os.path.join(path, "data", "hard"), "rb").read() == b"alpha"
        assert open(os.path.join(path, "c.txt"), "rb").read() == b"gamma"


def test_archive_of_a_folder_made_with_dot_names(tmp_path):
    source = tmp_path / "src"
    (source / "inner").mkdir(parents=True)
    write(source / "inner" / "f.txt", b"f")
    os.symlink("inner/f.txt", source / "alias")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source, arcname=".")          # members "./", "./inner/f.txt", ...
    archive = write(tmp_path / "dot.tgz", buffer.getvalue())
    path = get_file("dot.tgz", origin=archive.as_uri(), extract=True, cache_dir=tmp_path / "cache")
    assert path == os.path.join(str(tmp_path / "cache"), "datasets", "dot_extracted")
    assert files_under(path) == {os.path.join("inner", "f.txt"): b"f", "alias": b"f"}


def escaping_archives(outside):
    """(archive bytes, format, the member to be named) for archives whose extraction would write outside."""
    evil = os.path.join(outside, "evil.txt")
    return [
        (tar_bytes([("ok.txt", b"ok"), ("../evil.txt", b"x")]), "tar", "../evil.txt"),
        (tar_bytes([("ok.txt", b"ok"), ("a/../../evil.txt", b"x")]), "tar", "a/../../evil.txt"),
        (tar_bytes([("ok.txt", b"ok"), (evil, b"x")]), "tar", evil),
        (tar_bytes([("esc", ("sym", outside)), ("esc/evil.txt", b"x")]), "tar", "esc"),
        (tar_bytes([("esc", ("sym", "../outside")), ("esc/evil.txt", b"x")]), "tar", "esc"),
        (tar_bytes([("d", None), ("d/esc", ("sym", "../../outside/evil.txt")), ("d/esc", b"x")]), "tar", "d/esc"),
        # a chain: "b" is the folder itself, so "a" -> "b/.." is its parent
        (tar_bytes([("b", ("sym", ".")), ("a", ("sym", "b/..")), ("a/outside/evil.txt", b"x")]), "tar", "'a'"),
        (tar_bytes([("h", ("lnk", "../outside/secret.txt"))]), "tar", "h"),
        (zip_bytes([("ok.txt", b"ok"), ("../evil.txt", b"x")]), "zip", "../evil.txt"),
        (zip_bytes([("ok.txt", b"ok"), (evil, b"x")]), "zip", evil),
    ]


@pytest.mark.parametrize("case", range(10))
def test_escaping_members_are_refused(server, tmp_path, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    write(outside / "secret.txt", b"secret")
    data, kind, member = escaping_archives(str(outside))[case]
    server.files["/evil.arc"] = data
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="Refusing to extract archive member") as info:
        get_file("evil", origin=server.url("/evil.arc"), extract=True, cache_dir=cache, archive_format=kind)
    assert member in str(info.value)
    assert sorted(os.listdir(outside)) == ["secret.txt"] and open(outside / "secret.txt", "rb").read() == b"secret"
    assert sorted(os.listdir(tmp_path)) == ["cache", "outside"]
    assert os.listdir(cache / "datasets" / "evil") == []       # nothing written, inside either


def test_special_files_are_refused(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("fifo")
        info.type = tarfile.FIFOTYPE
        tar.addfile(info)
    archive = write(tmp_path / "fifo.tar", buffer.getvalue())
    with pytest.raises(ValueError, match="'fifo'"):
        get_file("fifo", origin=archive.as_uri(), extract=True, cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------------------------------------------------
# Against Keras's own get_file

ORACLE_CASES = [
    ("/o/plain.bin", dict(fname="plain.bin")),
    ("/o/deep/named.bin", dict()),
    ("/o/data.tar.gz", dict(extract=True)),
    ("/o/data.tar.gz", dict(fname="data.tar.gz", extract=True)),
    ("/o/data.tar.gz", dict(fname="dataset", extract=True)),
    ("/o/data.tar.gz", dict(fname="legacy", untar=True)),
    ("/o/pack.zip", dict(fname="pack.zip", extract=True, cache_subdir="zips")),
]


@pytest.mark.parametrize("case", range(len(ORACLE_CASES)))
def test_same_paths_and_files_as_keras(server, tmp_path, case):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    server.files["/o/plain.bin"] = payload(1000)
    server.files["/o/deep/named.bin"] = payload(2000)
    server.files["/o/data.tar.gz"] = tar_bytes(GOOD)
    server.files["/o/pack.zip"] = zip_bytes([("x.txt", b"x"), ("d/y.txt", b"y")])
    path, kwargs = ORACLE_CASES[case]
    data = server.files[path]
    (tmp_path / "ours").mkdir()
    (tmp_path / "keras").mkdir()        # Keras caches in /tmp/.keras when cache_dir does not exist yet
    ours = get_file(origin=server.url(path), cache_dir=str(tmp_path / "ours"),
                    file_hash=hashlib.sha256(data).hexdigest(), **kwargs)
    theirs = keras.utils.get_file(origin=server.url(path), cache_dir=str(tmp_path / "keras"),
                                  file_hash=hashlib.sha256(data).hexdigest(), **kwargs)
    assert os.path.relpath(ours, tmp_path / "ours") == os.path.relpath(theirs, tmp_path / "keras")
    assert files_under(tmp_path / "ours") == files_under(tmp_path / "keras")


def test_hash_mismatch_is_a_value_error_in_keras_too(server, tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    server.files["/h.bin"] = b"data"
    for fn in (get_file, keras.utils.get_file):
        with pytest.raises(ValueError, match="hash"):
            fn(origin=server.url("/h.bin"), cache_dir=str(tmp_path), cache_subdir=fn.__module__, file_hash="0" * 64)
