"""Atomic file writes and PNG encoding shared by every module that writes files.

A crash must never leave a half-written file that a resumed run would trust, so every
file is written to a temporary name in the same folder, flushed, and renamed over the
target (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import secrets
import stat
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from .errors import NotAFileError

__all__ = [
    "WrittenFolder",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_json",
    "encode_png",
    "json_bytes",
    "non_regular_kind",
    "open_regular_file",
    "read_regular_file",
    "sha256_bytes",
    "sha256_file",
    "write_hashed",
    "write_png",
]

# the concrete Path class of this platform (PosixPath or WindowsPath): subclassable on
# every supported Python, where pathlib.Path itself is only from 3.12 on
_PlatformPath: Any = type(Path())


class WrittenFolder(_PlatformPath):
    """A folder (a :class:`pathlib.Path`) with the files just written into it.

    ``files`` maps each file's path relative to the folder (``/``-separated) to the
    SHA-256 of the bytes written, hashed while writing: nobody reads them back to
    learn their checksums. Paths derived from it (``folder / "x"``) are plain paths.

    Examples
    --------
    >>> import tempfile
    >>> out = WrittenFolder.of(tempfile.mkdtemp(), {"a.png": "00ff"})
    >>> out.is_dir(), dict(out.files)
    (True, {'a.png': '00ff'})
    """

    files: Mapping[str, str] = MappingProxyType({})

    @classmethod
    def of(cls, folder: str | os.PathLike[str], files: Mapping[str, str]) -> WrittenFolder:
        """The folder ``folder`` with its written ``files``."""
        out = cls(folder)
        out.files = MappingProxyType(dict(files))
        return out

    if sys.version_info >= (3, 12):

        def with_segments(self, *segments: Any) -> Path:
            return Path(*segments)


def sha256_bytes(data: bytes) -> str:
    """The lower-case hex SHA-256 of ``data``.

    Examples
    --------
    >>> sha256_bytes(b"")[:16]
    'e3b0c44298fc1c14'
    """
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks (the checksum of every manifest
    and ``result.json``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def json_bytes(obj: Any) -> bytes:
    """``obj`` as the indented UTF-8 JSON every JSON file of the package is written as."""
    return (json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n").encode("utf-8")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    If the block raises, the temporary file is removed and ``path`` is untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_open(d / "a.txt", "w") as f:
    ...     _ = f.write("hello")
    >>> (d / "a.txt").read_text()
    'hello'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(target)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# O_EXCL: never open a file someone else made (or a link planted) under the name;
# O_BINARY (Windows): bytes as written, text mode translates nothing twice
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def _create_temp(target: Path) -> tuple[int, str]:
    """Create a new temporary file beside ``target``; return (fd, path).

    The file is created with mode 0o666 and the process umask applies, as for any
    file the user writes (``tempfile.mkstemp`` would make it 0o600, and that mode
    would stay on the renamed result, unreadable to a web server or a colleague).
    """
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"No free temporary name beside {target}.")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON to ``path`` atomically."""
    atomic_write_bytes(path, json_bytes(obj))


def write_hashed(path: str | os.PathLike[str], data: bytes) -> str:
    """Write ``data`` to ``path`` atomically and return its SHA-256, hashed from memory."""
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


# O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a
# writer (it changes nothing for a regular file); O_NOCTTY: a terminal device named
# as an input never becomes the controlling terminal
_READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)
_LOOP = "a symbolic link that loops"


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def non_regular_kind(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` is when it is neither a regular file nor a link to one.

    ``"a FIFO (named pipe)"``, ``"a socket"``, ``"a character device"``, ``"a block
    device"``, ``"a folder"`` or ``"a symbolic link that loops"``; ``None`` for a
    regular file, and when nothing is there or it cannot be looked at (the reader
    then reports why).

    Examples
    --------
    >>> import tempfile
    >>> non_regular_kind(tempfile.mkdtemp())
    'a folder'
    """
    try:
        mode = os.stat(path).st_mode  # follows links: a link to a photo is a photo
    except OSError as exc:
        return _LOOP if exc.errno == errno.ELOOP else None
    return None if stat.S_ISREG(mode) else _kind(mode)


def open_regular_file(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open ``path`` for reading bytes, only if it is a regular file.

    The file is opened without blocking and checked on the open descriptor, so a
    FIFO, socket or device named like a photo is refused at once (reading a FIFO
    would wait for a writer forever; a device may never end), and so is a path that
    is swapped for one between a check and the open.

    Raises
    ------
    FileNotFoundError
        Nothing is there.
    NotAFileError
        A FIFO, socket, device, folder, or a symbolic link that loops; the message
        says which.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with open_regular_file(tempfile.mkdtemp()) as fh:
    ...     pass
    Traceback (most recent call last):
    ...
    clothseg_tools.errors.NotAFileError: ... is a folder, not a regular file; ...
    """
    name = os.fspath(path)
    try:
        fd = os.open(name, _READ_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotAFileError(
                f"{name} is {_LOOP} (it leads back to itself); point it at a photo or "
                "remove it."
            ) from None
        if exc.errno == errno.EISDIR:  # Windows and some systems refuse folders here
            raise NotAFileError(_not_regular(name, stat.S_IFDIR)) from None
        if exc.errno == errno.ENXIO:  # a socket cannot be opened
            raise NotAFileError(_not_regular(name, stat.S_IFSOCK)) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotAFileError(_not_regular(name, mode))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _not_regular(name: str, mode: int) -> str:
    return (
        f"{name} is {_kind(mode)}, not a regular file; only image files are read. "
        "Move it out of the input folder or name the photo itself."
    )


def read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of ``path``, only if it is a regular file (see :func:`open_regular_file`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
    >>> atomic_write_bytes(p, b"abc")
    >>> read_regular_file(p)
    b'abc'
    """
    with open_regular_file(path) as fh:
        return fh.read()


def encode_png(array: npt.NDArray[np.uint8], *, compress_level: int = 1) -> bytes:
    """Encode a uint8 (H, W), (H, W, 3) or (H, W, 4) array as PNG bytes.

    ``compress_level=1`` is the fast zlib level: masks are mostly runs of 0 and 255,
    so higher levels buy little size and cost several times the time.

    Examples
    --------
    >>> encode_png(np.zeros((2, 2), np.uint8))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(
        buf, format="PNG", compress_level=compress_level
    )
    return buf.getvalue()


def write_png(path: str | os.PathLike[str], array: npt.NDArray[np.uint8]) -> None:
    """Encode ``array`` as PNG and write it to ``path`` atomically."""
    atomic_write_bytes(path, encode_png(array))
