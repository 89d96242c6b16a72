"""``get_file``: Keras 3's download-and-cache helper, with ``hash_file`` and ``validate_file``.

Where files go, what they are called and what is returned follow Keras 3.15:

- the cache is ``cache_dir`` (default ``$KERAS_HOME``, else ``~/.keras``, else
  ``/tmp/.keras`` where the home folder is not writable), and the file lands
  in ``cache_dir/cache_subdir/fname`` (``cache_subdir`` defaults to
  ``"datasets"``; an absolute one is used as it is). A ``cache_dir`` that
  cannot be written falls back to ``/tmp/.keras``. Unlike Keras, a
  ``cache_dir`` that does not exist yet is created rather than treated as
  not writable (Keras then caches in ``/tmp/.keras`` instead);
- without ``fname`` the name is the last part of the URL's path (no query);
- ``file_hash`` is checked with sha256 or md5 (``"auto"``: sha256 for a
  64-character hash, md5 otherwise); a cached file whose hash is wrong is
  downloaded again, a download whose hash is wrong is a ValueError;
- with ``extract=True`` (or ``untar=True``) the archive is extracted and the
  folder returned, named as Keras 3.15 names it: ``fname`` without an
  extension -> the folder ``fname`` (archive kept as ``fname_archive``);
  ``fname`` with one (``"data.tar.gz"``) -> ``data_extracted``; no ``fname``
  -> the folder is named after the URL's file (``data.tar.gz``), the archive
  kept as ``data.tar.gz_archive``.

What is stricter than Keras, on purpose:

- a download is written to a temporary file beside the target and renamed
  into place only when it is complete (as many bytes as Content-Length said)
  and its hash, if given, matches: an interrupted or corrupted download never
  leaves a cached file, and a failed re-download keeps the file that was
  there;
- an archive member that would land outside the extraction folder (an
  absolute path, ``..``, a symbolic or hard link pointing outside, a path
  through such a link) or that is not a file, folder or link (a device, a
  FIFO) makes the whole extraction a ValueError naming the member, raised
  before anything is written; Keras skips such members with a warning.
  Nothing in an archive is ever executed;
- ``hash_algorithm`` other than ``"auto"``, ``"sha256"`` or ``"md5"`` is a
  ValueError (Keras quietly uses md5), and hashes compare without regard to
  case.

Keras exports only ``get_file`` in ``keras.utils``; ``hash_file`` and
``validate_file`` live here, as in Keras's ``file_utils`` module.
"""
from __future__ import annotations

import hashlib
import http.client
import inspect
import os
import secrets
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from ..backend.user_warnings import warn
from . import io_utils
from .progbar import Progbar

_CHUNK = 1 << 16
_MAX_LINK_DEPTH = 40


def keras_home():
    """Keras's home folder: ``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras`` where the home is not writable)."""
    if "KERAS_HOME" in os.environ:
        return os.environ["KERAS_HOME"]
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):
        base = "/tmp"
    return os.path.join(base, ".keras")


# ---------------------------------------------------------------------------------------------------------------
# Hashes

def resolve_hasher(algorithm, file_hash=None):
    """A fresh hashlib object for ``algorithm`` (``"auto"`` picks sha256 for a 64-character ``file_hash``, else md5,
    as Keras does)."""
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "md5":
        return hashlib.md5()
    if algorithm == "auto":
        if file_hash is not None and len(str(file_hash)) == 64:
            return hashlib.sha256()
        return hashlib.md5()
    raise ValueError(f"hash_algorithm must be 'auto', 'sha256' or 'md5', got {algorithm!r}.")


def hash_file(fpath, algorithm="sha256", chunk_size=65535):
    """The hex digest of the file at ``fpath``: ``algorithm`` is ``"sha256"``, ``"md5"``, ``"auto"`` (md5 here, as in
    Keras, having no hash to look at) or a hashlib object."""
    hasher = resolve_hasher(algorithm) if isinstance(algorithm, str) else algorithm
    with open(fpath, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def validate_file(fpath, file_hash, algorithm="auto", chunk_size=65535):
    """Whether the file at ``fpath`` has the sha256 or md5 hash ``file_hash`` (``"auto"``: sha256 for a 64-character
    hash, md5 otherwise)."""
    hasher = resolve_hasher(algorithm, file_hash)
    return hash_file(fpath, hasher, chunk_size).lower() == str(file_hash).strip().lower()


def _algorithm_name(algorithm, file_hash):
    return resolve_hasher(algorithm, file_hash).name


# ---------------------------------------------------------------------------------------------------------------
# Archives

def _inside(path, base):
    try:
        return os.path.commonpath([path, base]) == base
    except ValueError:      # different drives
        return False


class _ArchiveTree:
    """Where each member of an archive would land, following the archive's own symbolic links (those already
    checked) and the ones already on disk in the target folder, as the extraction would."""

    def __init__(self, base):
        self.base = base
        self.links = {}     # relative path -> link text, for the archive's symbolic links seen so far

    def _link_text(self, parts):
        key = "/".join(parts)
        if key in self.links:
            return self.links[key]
        full = os.path.join(self.base, *parts)
        if os.path.islink(full):
            return os.readlink(full)
        return None

    def resolve(self, parts, follow_last=True, depth=0):
        """The components, relative to the base, of where ``parts`` leads; None if outside the base."""
        if depth > _MAX_LINK_DEPTH:
            return None
        out = []
        for i, part in enumerate(parts):
            if part in ("", "."):
                continue
            if part == "..":
                if not out:
                    return None
                out.pop()
                continue
            out.append(part)
            if not follow_last and i == len(parts) - 1:
                break
            text = self._link_text(out)
            if text is None:
                continue
            if os.path.isabs(text) or text.startswith(("/", "\\")):
                full = os.path.realpath(text)      # an absolute link on disk: allowed only where it stays inside
                if not _inside(full, self.base):
                    return None
                out = [p for p in os.path.relpath(full, self.base).split(os.sep) if p not in ("", ".")]
                continue
            out.pop()
            resolved = self.resolve(out + _split(text), True, depth + 1)
            if resolved is None:
                return None
            out = resolved
        return out


def _split(name):
    return name.replace("\\", "/").split("/")


def _is_absolute(name):
    return name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or os.path.isabs(name)


def _check_tar_members(archive, base):
    """Raise a ValueError naming the first member of the tar ``archive`` that would land outside ``base``."""
    tree = _ArchiveTree(base)
    for info in archive.getmembers():
        name = info.name
        if _is_absolute(name):
            raise ValueError(f"Refusing to extract archive member {name!r}: it has an absolute path.")
        if not (info.isfile() or info.isdir() or info.issym() or info.islnk()):
            raise ValueError(f"Refusing to extract archive member {name!r}: it is not a file, folder or link "
                             "(a device or FIFO).")
        parts = _split(name)
        if tree.resolve(parts, follow_last=False) is None or tree.resolve(parts) is None:
            raise ValueError(f"Refusing to extract archive member {name!r}: it would be written outside the "
                             f"extraction folder {base!r}.")
        if info.issym():
            target = info.linkname
            if _is_absolute(target):
                raise ValueError(f"Refusing to extract archive member {name!r}: it is a symbolic link to the "
                                 f"absolute path {target!r}.")
            where = tree.resolve(parts[:-1])
            if where is None or tree.resolve(where + _split(target)) is None:
                raise ValueError(f"Refusing to extract archive member {name!r}: it is a symbolic link to "
                                 f"{target!r}, outside the extraction folder {base!r}.")
            tree.links["/".join(tree.resolve(parts, follow_last=False))] = target
        elif info.islnk():
            target = info.linkname
            if _is_absolute(target) or tree.resolve(_split(target)) is None:
                raise ValueError(f"Refusing to extract archive member {name!r}: it is a hard link to {target!r}, "
                                 f"outside the extraction folder {base!r}.")


def _check_zip_members(archive, base):
    """Raise a ValueError naming the first member of the zip ``archive`` that would land outside ``base``."""
    tree = _ArchiveTree(base)
    for info in archive.infolist():
        name = info.filename
        if _is_absolute(name):
            raise ValueError(f"Refusing to extract archive member {name!r}: it has an absolute path.")
        if tree.resolve(_split(name)) is None:
            raise ValueError(f"Refusing to extract archive member {name!r}: it would be written outside the "
                             f"extraction folder {base!r}.")


def _tar_extract_kwargs(archive):
    # Python's "data" filter (3.10.12+, 3.11.4+, 3.12+; the default from 3.14) refuses the same members again while
    # extracting and drops set-uid bits and the like.
    if "filter" in inspect.signature(archive.extractall).parameters:
        return {"filter": "data"}
    return {}


def extract_archive(file_path, path=".", archive_format="auto"):
    """Extract the tar (plain, gz, bz2, xz) or zip archive ``file_path`` into ``path``, as Keras's ``extract_archive``
    does (``archive_format``: ``"auto"`` = ``["tar", "zip"]``, ``"tar"``, ``"zip"``, a list of those, or None).
    Returns whether an archive of one of those formats was found and extracted. Every member is checked first: one
    that would land outside ``path`` is a ValueError naming it, and nothing is written."""
    if archive_format is None:
        return False
    if archive_format == "auto":
        archive_format = ["tar", "zip"]
    if isinstance(archive_format, str):
        archive_format = [archive_format]
    file_path = os.fspath(file_path)
    path = os.fspath(path)
    for kind in archive_format:
        if kind == "tar":
            if not tarfile.is_tarfile(file_path):
                continue
            with tarfile.open(file_path) as archive:
                os.makedirs(path, exist_ok=True)
                base = os.path.realpath(path)
                _check_tar_members(archive, base)
                try:
                    archive.extractall(base, **_tar_extract_kwargs(archive))
                except getattr(tarfile, "FilterError", ()) as e:      # a backstop: the checks above refuse these first
                    member = getattr(e, "tarinfo", None)
                    raise ValueError(f"Refusing to extract archive member "
                                     f"{getattr(member, 'name', '?')!r}: {e}") from e
            return True
        if kind == "zip":
            if not zipfile.is_zipfile(file_path):
                continue
            with zipfile.ZipFile(file_path) as archive:
                os.makedirs(path, exist_ok=True)
                base = os.path.realpath(path)
                _check_zip_members(archive, base)
                archive.extractall(base)
            return True
        raise NotImplementedError(f"archive_format {kind!r} is not supported: use 'auto', 'tar', 'zip', a list of "
                                  "those, or None.")
    return False


# ---------------------------------------------------------------------------------------------------------------
# Downloads

def _download(origin, target, file_hash, hash_algorithm):
    """Fetch ``origin`` into a temporary file beside ``target`` and rename it into place once complete and verified."""
    folder, name = os.path.split(target)
    partial = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.part")
    failure = f"URL fetch failure on {origin}"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(origin)
            except urllib.error.HTTPError as e:
                raise OSError(f"{failure}: HTTP {e.code} {e.reason}. Check the URL, or pass a working `origin`.") \
                    from e
            except urllib.error.URLError as e:
                raise OSError(f"{failure}: {e.reason}. Check the URL and the network connection.") from e
            except ValueError as e:      # not a URL at all
                raise ValueError(f"{failure}: {e}. `origin` must be a URL such as https://... or file://...") from e
            with response:
                length = response.headers.get("Content-Length")
                try:
                    expected = int(length) if length is not None else None
                except ValueError:
                    expected = None
                bar = Progbar(expected, unit_name="step")
                received = 0
                try:
                    while True:
                        chunk = response.read(_CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        received += len(chunk)
                        if expected is None or received < expected:
                            bar.update(received)
                except (http.client.HTTPException, OSError) as e:
                    raise OSError(f"{failure}: the connection broke after {received} bytes ({e!r}).") from e
                if expected is not None and received != expected:
                    raise OSError(f"{failure}: the download is incomplete: {received} bytes received of the "
                                  f"{expected} the server announced.")
                bar.update(received, finalize=True)
        if file_hash is not None and not validate_file(partial, file_hash, algorithm=hash_algorithm):
            raise ValueError(f"Incomplete or corrupted file detected. The {_algorithm_name(hash_algorithm, file_hash)} "
                             f"file hash of the file downloaded from {origin} does not match the provided value of "
                             f"{file_hash}.")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _cache_folder(cache_dir):
    base = os.path.expanduser(os.fspath(cache_dir))
    try:
        os.makedirs(base, exist_ok=True)
    except OSError:
        pass
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return base


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None, cache_subdir="datasets",
             hash_algorithm="auto", extract=False, archive_format="auto", cache_dir=None, force_download=False):
    """Download ``origin`` into the cache unless it is there already (with the right hash); return its path, or with
    ``extract=True`` the folder it was extracted into. See the module docstring for names and rules."""
    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    origin = os.fspath(origin)
    if cache_dir is None:
        cache_dir = keras_home()
    if md5_hash is not None and file_hash is None:
        file_hash = md5_hash
        hash_algorithm = "md5"
    resolve_hasher(hash_algorithm, file_hash)          # an unknown algorithm fails before any download
    datadir = os.path.join(_cache_folder(cache_dir), os.fspath(cache_subdir))
    os.makedirs(datadir, exist_ok=True)

    provided_fname = fname
    fname = os.fspath(fname) if fname is not None else None
    if not fname:
        fname = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not fname or fname in (".", ".."):
            raise ValueError(f"Can't parse the file name from the origin provided: '{origin}'. Please specify the "
                             "`fname` argument.")
    elif os.sep in fname or (os.altsep and os.altsep in fname) or fname in (".", ".."):
        raise ValueError("Paths are no longer accepted as the `fname` argument. To specify the file's parent "
                         f"directory, use the `cache_dir` argument. Received: fname={fname}")

    if extract or untar:
        if provided_fname:
            if "." in fname:
                download_target = os.path.join(datadir, fname)
                fname = fname[:fname.find(".")]
                extraction_dir = os.path.join(datadir, f"{fname}_extracted")
            else:
                extraction_dir = os.path.join(datadir, fname)
                download_target = os.path.join(datadir, f"{fname}_archive")
        else:
            extraction_dir = os.path.join(datadir, fname)
            download_target = os.path.join(datadir, f"{fname}_archive")
    else:
        download_target = os.path.join(datadir, fname)

    if force_download:
        download = True
    elif os.path.exists(download_target):
        download = False
        if file_hash is not None and not validate_file(download_target, file_hash, algorithm=hash_algorithm):
            io_utils.print_msg(f"A local file was found, but it seems to be incomplete or outdated because the "
                               f"{_algorithm_name(hash_algorithm, file_hash)} file hash does not match the original "
                               f"value of {file_hash} so we will re-download the data.")
            download = True
    else:
        download = True

    if download:
        io_utils.print_msg(f"Downloading data from {origin}")
        _download(origin, download_target, file_hash, hash_algorithm)

    if extract or untar:
        if untar:
            archive_format = "tar"
        if not extract_archive(download_target, extraction_dir, archive_format):
            warn(f"Could not extract archive {download_target}: it is not a {archive_format} archive.")
        return extraction_dir
    return download_target


__all__ = ["get_file", "hash_file", "validate_file", "extract_archive"]
