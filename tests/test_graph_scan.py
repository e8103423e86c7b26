"""The unsafe-op scan of saved_model.pb: every graph and function, before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gradaudit.errors import AuditError
from gradaudit.load.graph_scan import read_saved_model, refuse_unsafe, unsafe_ops
from tests.conftest import FIXTURES

SAVEDMODELS = FIXTURES / "savedmodels"


def _save(path: Path, body: Any) -> Path:
    """A one-signature SavedModel whose serving function runs ``body(x)``."""
    import tensorflow as tf

    class Module(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.ones((2, 2)), name="dense/kernel")

        @tf.function(input_signature=[tf.TensorSpec((None, 2), tf.float32)])
        def serve(self, x):
            return {"y": body(tf.matmul(x, self.w))}

    module = Module()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def _found(path: Path) -> list[tuple[str, str]]:
    return [(u.op, u.why) for u in unsafe_ops(read_saved_model(path))]


@pytest.mark.parametrize("writer", ["tf_save", "export", "keras2"])
def test_keras_savedmodels_are_clean_including_their_saver_functions(writer: str) -> None:
    # Every one holds SaveV2/RestoreV2/MergeV2Checkpoints in its saver functions.
    proto = read_saved_model(SAVEDMODELS / writer)
    ops = {n.op for f in proto.meta_graphs[0].graph_def.library.function for n in f.node_def}
    assert {"SaveV2", "RestoreV2", "MergeV2Checkpoints"} <= ops
    assert unsafe_ops(proto) == []


def test_write_file_fixture_is_found_in_its_serving_function() -> None:
    (found,) = unsafe_ops(read_saved_model(SAVEDMODELS / "write_file"))
    assert (found.op, found.node, found.why) == ("WriteFile", "WriteFile", "touches files")
    assert found.where.startswith("function __inference_serve_")
    with pytest.raises(AuditError, match=r"unsafe ops: WriteFile \(touches files\) at node"):
        refuse_unsafe(read_saved_model(SAVEDMODELS / "write_file"))


def test_python_functions_are_refused(tmp_path: Path) -> None:
    import tensorflow as tf

    path = _save(tmp_path / "py", lambda y: tf.py_function(lambda t: t, [y], tf.float32))
    assert _found(path) == [("EagerPyFunc", "runs Python code")]


def test_print_to_a_file_is_refused_but_print_to_stderr_is_not(tmp_path: Path) -> None:
    import tensorflow as tf

    def to_file(y):
        with tf.control_dependencies([tf.print(y, output_stream=f"file://{tmp_path}/log")]):
            return tf.identity(y)

    def to_stderr(y):
        with tf.control_dependencies([tf.print(y)]):
            return tf.identity(y)

    assert _found(_save(tmp_path / "file", to_file)) == [("PrintV2", "prints to a file")]
    assert _found(_save(tmp_path / "stderr", to_stderr)) == []


def test_checkpoint_ops_outside_the_saver_are_refused(tmp_path: Path) -> None:
    import tensorflow as tf

    def save(y):
        written = tf.raw_ops.SaveV2(prefix=str(tmp_path / "ckpt"), tensor_names=["y"],
                                    shape_and_slices=[""], tensors=[y])
        with tf.control_dependencies([written]):
            return tf.identity(y)

    assert _found(_save(tmp_path / "save", save)) == [
        ("SaveV2", "reads or writes checkpoint files outside the saver")]


def _edited(tmp_path: Path, op: str) -> Any:
    """The tf_save fixture's proto with its StopGradient node turned into ``op``."""
    proto = read_saved_model(SAVEDMODELS / "tf_save")
    for function in proto.meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.op == "StopGradient":
                node.op = op
    return proto


@pytest.mark.parametrize(("op", "why"), [
    ("NoSuchOp", "not an op registered in this TensorFlow"),
    ("DebugIdentityV2", "debug op that can write to files or URLs"),
    ("ReadFile", "touches files"),
])
def test_edited_protos_are_refused(tmp_path: Path, op: str, why: str) -> None:
    (found,) = unsafe_ops(_edited(tmp_path, op))
    assert (found.op, found.why) == (op, why)
    assert found.where.startswith("function __inference_")


def test_damaged_proto_is_an_audit_error(tmp_path: Path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(b"")
    with pytest.raises(AuditError, match="holds no MetaGraph"):
        read_saved_model(tmp_path)
    (tmp_path / "saved_model.pb").write_bytes(b"\xff\xff\xff")
    with pytest.raises(AuditError, match=r"damaged saved_model.pb \(DecodeError\)"):
        read_saved_model(tmp_path)
