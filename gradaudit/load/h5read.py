"""HDF5 read from an untrusted file: hard links only, text attributes checked,
numbers read in bounded blocks.

An HDF5 file can link to other files (external links, external storage,
virtual datasets): following one could read ``/dev/zero`` or a FIFO and never
end, so only objects reached through hard links and stored in the file itself
are read. A dataset is read a block of rows at a time, so a large slot never
sits whole in memory.
"""

from __future__ import annotations

import contextlib
import io
import struct
import zipfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

WEIGHTS_MEMBER = "model.weights.h5"
"""The member of a ``.keras`` archive that holds the weights (and optimizer state)."""

BLOCK_ELEMENTS = 1 << 20
"""Values per block read from a dataset (8 MB as float64)."""
MAX_TEXT_ITEMS = 1_000_000
"""Entries of a name list attribute (``weight_names``) accepted; more is hostile."""
NUMERIC_KINDS = "fiu"


def child(group: Any, path: str) -> Any | None:
    """The object at ``path`` under ``group``, reached through hard links only."""
    import h5py

    node = group
    for part in path.split("/"):
        if not part:
            continue
        if not isinstance(node, h5py.Group):
            return None
        try:
            link = node.get(part, getlink=True)
            if not isinstance(link, h5py.HardLink):
                return None
            node = node.get(part)
        except (KeyError, ValueError, TypeError, OSError, RuntimeError):
            return None
    return node


def group(parent: Any, path: str) -> Any | None:
    import h5py

    found = child(parent, path)
    return found if isinstance(found, h5py.Group) else None


def dataset(parent: Any, path: str) -> Any | None:
    """A numeric dataset stored in this file, or None."""
    import h5py

    found = child(parent, path)
    if not isinstance(found, h5py.Dataset):
        return None
    try:
        if found.is_virtual or found.external or found.dtype.kind not in NUMERIC_KINDS:
            return None
    except (ValueError, TypeError, OSError, RuntimeError):
        return None
    return found


def members(parent: Any) -> list[str]:
    """Names of a group's members (hard links or not: :func:`child` checks)."""
    if parent is None:
        return []
    try:
        return [str(name) for name in parent]
    except (ValueError, TypeError, OSError, RuntimeError, UnicodeDecodeError):
        return []


def text(value: Any) -> str | None:
    """An attribute value that is one string, or None."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def attr(node: Any, name: str) -> Any:
    try:
        return node.attrs.get(name)
    except (ValueError, TypeError, OSError, RuntimeError, KeyError):
        return None


def texts(node: Any, name: str) -> list[str] | None:
    """A list-of-strings attribute, as Keras writes it: whole, or in chunks
    ``name0``, ``name1`` … when it exceeds HDF5's 64 kB attribute limit."""
    value = attr(node, name)
    if value is None:
        chunks: list[Any] = []
        while (part := attr(node, f"{name}{len(chunks)}")) is not None:
            chunks.append(part)
        if not chunks:
            return None
        value = np.concatenate([np.atleast_1d(np.asarray(c, dtype=object)) for c in chunks])
    if not isinstance(value, np.ndarray) or value.ndim != 1 or value.size > MAX_TEXT_ITEMS:
        return None
    items = [text(item) for item in value]
    return None if any(item is None for item in items) else [str(item) for item in items]


def shape(data: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in data.shape)


def blocks(data: Any) -> Iterator[np.ndarray]:
    """A dataset as float64 blocks of whole rows (a scalar: one block of shape (1,))."""
    dims = shape(data)
    if not dims:
        yield np.asarray(data[()], dtype=np.float64).reshape(1)
        return
    row = max(1, int(np.prod(dims[1:], dtype=np.int64)))
    step = max(1, BLOCK_ELEMENTS // row)
    for start in range(0, dims[0], step):
        yield np.asarray(data[start : start + step], dtype=np.float64)


def scalar(data: Any) -> float | None:
    """The value of a one-element dataset, or None."""
    if data is None or int(np.prod(shape(data), dtype=np.int64)) != 1:
        return None
    try:
        return float(np.asarray(data[()], dtype=np.float64).reshape(()))
    except (ValueError, TypeError, OSError, RuntimeError):
        return None


class _Window(io.RawIOBase):
    """A stored (uncompressed) zip member read in place: seeks are free, where a
    ``ZipExtFile`` re-reads from the member's start at every backward seek."""

    def __init__(self, handle: io.BufferedReader, start: int, size: int) -> None:
        super().__init__()
        self._handle, self._start, self._size, self._pos = handle, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = max(0, min(len(view), self._size - self._pos))
        self._handle.seek(self._start + self._pos)
        got = self._handle.readinto(view[:count])
        self._pos += got
        return got


@contextlib.contextmanager
def zip_member(path: Path, name: str) -> Iterator[Any | None]:
    """An open HDF5 file for the zip member ``name`` (None when there is none)."""
    import h5py

    with zipfile.ZipFile(path) as archive:
        try:
            info = archive.getinfo(name)
        except KeyError:
            yield None
            return
        if info.compress_type == zipfile.ZIP_STORED:
            with path.open("rb") as handle:
                handle.seek(info.header_offset)
                header = handle.read(30)
                if len(header) != 30 or header[:4] != b"PK\x03\x04":
                    raise zipfile.BadZipFile(f"bad local header for {name!r}")
                name_len, extra_len = struct.unpack("<HH", header[26:30])
                start = info.header_offset + 30 + name_len + extra_len
                with _Window(handle, start, info.file_size) as window, \
                        h5py.File(window, "r") as weights:
                    yield weights
            return
        with archive.open(info) as member, h5py.File(member, "r") as weights:
            yield weights


def weights_file(path: Path, fmt: str) -> AbstractContextManager[Any | None]:
    """The open HDF5 file that holds a model's weights: a ``.keras`` archive's
    ``model.weights.h5`` member (None when it has none), or the ``.h5`` file itself."""
    if fmt == "keras":
        return zip_member(path, WEIGHTS_MEMBER)
    import h5py

    handle: AbstractContextManager[Any] = h5py.File(path, "r")
    return handle
