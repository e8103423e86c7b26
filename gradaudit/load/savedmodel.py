"""SavedModel directories: the op scan, then ``tf.saved_model.load`` and the signature to audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

from gradaudit.errors import AuditError, first_line
from gradaudit.load import graph_scan
from gradaudit.model.signature import SignatureModel


def load_saved_model(path: Path, *, unsafe: bool, signature: str | None) -> SignatureModel:
    """Scan saved_model.pb, then load the directory and pick the signature to audit."""
    proto = graph_scan.read_saved_model(path)
    if not unsafe:
        graph_scan.refuse_unsafe(proto)
    try:
        root = tf.saved_model.load(str(path))
    except Exception as exc:  # TensorFlow raises many types for broken directories
        if not (path / "variables" / "variables.index").exists():
            raise AuditError("cannot load the SavedModel: variables/variables.index is "
                             "missing (the variables were not saved with it)") from None
        raise AuditError(f"TensorFlow could not load the SavedModel: {first_line(exc)}") from None
    name, function = choose_signature(dict(getattr(root, "signatures", {}) or {}), signature)
    return SignatureModel(name=path.resolve().name, signature=name, function=function, root=root)


def choose_signature(signatures: dict[str, Any], wanted: str | None) -> tuple[str, Any]:
    """``wanted``, else serving_default, else the only one, else 'serve'; AuditError otherwise."""
    listed = ", ".join(sorted(signatures)) or "none"
    if wanted is not None:
        if wanted not in signatures:
            raise AuditError(f"no signature '{wanted}' in the SavedModel (it has: {listed})")
        return wanted, signatures[wanted]
    for name in ("serving_default", *(signatures if len(signatures) == 1 else ()), "serve"):
        if name in signatures:
            return name, signatures[name]
    raise AuditError(
        f"cannot tell which signature to audit (it has: {listed}); choose one with --signature"
    )
