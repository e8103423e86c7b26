""".keras zip archives checked member by member before Keras opens them.

Keras reads ``config.json`` and ``model.weights.h5`` into memory, and extracts
the whole archive to a temporary directory when it holds more than three
members. So before Keras sees the file, every member name must be a plain
relative path (no ``..``, no absolute path, no symlink), every member must
declare a size the parameter limit can account for, must not expand more than
a deflate stream of real weights would, and must really decompress to its
declared size and checksum (read in bounded chunks, never held whole).
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

from gradaudit.errors import AuditError

# Room for config.json, metadata.json and HDF5 bookkeeping on top of the weights.
OVERHEAD_BYTES = 64 * 1024 * 1024
# Keras stores members uncompressed; DEFLATE of real float weights gains ~1.1x.
# Past this ratio a member larger than RATIO_FLOOR_BYTES is a decompression bomb.
MAX_RATIO = 100
RATIO_FLOOR_BYTES = 1024 * 1024
CHUNK_BYTES = 1024 * 1024
BYTES_PER_PARAM = 8  # float64, the widest weight dtype Keras writes


def max_member_bytes(max_params: int) -> int:
    """The largest archive (declared, uncompressed) that ``max_params`` weights explain."""
    return max_params * BYTES_PER_PARAM + OVERHEAD_BYTES


def check_archive(path: Path, max_params: int) -> None:
    """Refuse a .keras archive with unsafe names, bomb members or damaged data."""
    limit = max_member_bytes(max_params)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            for info in members:
                _check_name(info)
                _check_declared_size(info, limit)
            total = sum(info.file_size for info in members)
            if total > limit:
                raise AuditError(
                    f"archive members declare {total} bytes in all, more than the "
                    f"{limit} bytes that --max-params {max_params} allows"
                )
            for info in members:
                _check_observed_size(archive, info)
    except AuditError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError) as exc:
        raise AuditError(f"damaged .keras archive ({exc})") from None


def _check_name(info: zipfile.ZipInfo) -> None:
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if (not name or name.startswith(("/", "\\")) or "\\" in name or ".." in parts
            or (parts and ":" in parts[0])):
        raise AuditError(f"refused archive member name {name!r}: it points outside the archive")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise AuditError(f"refused archive member {name!r}: it is a symbolic link")


def _check_declared_size(info: zipfile.ZipInfo, limit: int) -> None:
    if info.file_size > limit:
        raise AuditError(
            f"archive member {info.filename!r} declares {info.file_size} bytes, more than "
            f"the {limit} bytes that --max-params allows (a zip bomb or a model too large)"
        )
    ratio_limit = MAX_RATIO * max(info.compress_size, 1)
    if info.file_size > RATIO_FLOOR_BYTES and info.file_size > ratio_limit:
        raise AuditError(
            f"archive member {info.filename!r} expands {info.compress_size} bytes to "
            f"{info.file_size}: refusing a decompression bomb"
        )


def _check_observed_size(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Decompress in chunks: the data must end at the declared size with a valid CRC."""
    seen = 0
    with archive.open(info) as member:
        while chunk := member.read(CHUNK_BYTES):
            seen += len(chunk)
            if seen > info.file_size:
                raise AuditError(
                    f"archive member {info.filename!r} expands past its declared "
                    f"{info.file_size} bytes: refusing a decompression bomb"
                )
