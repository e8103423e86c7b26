"""The model format, told from the file's content, never from its name."""

from __future__ import annotations

from pathlib import Path

from gradaudit.errors import AuditError

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# HDF5 allows a user block before the superblock, at 0, 512, 1024, 2048 … bytes.
HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)

def detect_format(path: Path) -> str:
    """Tell a .keras zip from an HDF5 file by content; raise AuditError otherwise."""
    if not path.exists():
        raise AuditError("no such file or directory")
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            return "savedmodel"
        raise AuditError("is a directory, but not a SavedModel (no saved_model.pb)")
    if path.name in ("saved_model.pb", "saved_model.pbtxt"):
        raise AuditError(f"this is the graph of a SavedModel; audit its directory, "
                         f"{path.parent}")
    if not path.is_file():  # a device or a pipe: reading it could block or never end
        raise AuditError("not a regular file (a device, pipe or socket)")
    try:
        with path.open("rb") as handle:
            head = handle.read(max(HDF5_OFFSETS) + len(HDF5_MAGIC))
    except OSError as exc:
        raise AuditError(f"cannot read the file: {exc.strerror or exc}") from None
    if not head:
        raise AuditError("the file is empty")
    if head.startswith(ZIP_MAGIC):
        return "keras"
    if any(head[o : o + len(HDF5_MAGIC)] == HDF5_MAGIC for o in HDF5_OFFSETS):
        return "h5"
    raise AuditError(
        "not a Keras model file: neither a .keras zip archive nor an HDF5 (.h5) file"
    )


