"""Refuse a SavedModel whose graphs touch files, processes or Python, before anything runs.

``tf.saved_model.load`` runs the restore function and the serving function
runs whatever ops it holds, so ``saved_model.pb`` is read with TensorFlow's
protobufs and every node of the top-level graph and of every library function
is checked first. Checkpoint ops (SaveV2, RestoreV2 …) are legitimate in the
saver's own functions, the ones ``saver_def`` names; anywhere else (reached
from a serving function) they read or write arbitrary files and are refused.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradaudit.errors import AuditError

MAX_PROTO_BYTES = 1 << 30

FILE_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "DeleteFile", "ImmutableConst",
    "CreateSummaryFileWriter", "CreateSummaryDbWriter",
})
PYTHON_OPS = frozenset({"PyFunc", "EagerPyFunc", "PyFuncStateless"})
CHECKPOINT_OPS = frozenset({
    "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice",
    "MergeV2Checkpoints",
})


@dataclass(frozen=True)
class UnsafeOp:
    """One refused node: its op, where it sits, and why it is refused."""

    op: str
    node: str
    where: str  # "graph" or "function <name>"
    why: str

    def __str__(self) -> str:
        return f"{self.op} ({self.why}) at node '{self.node}' in {self.where}"


def read_saved_model(directory: Path) -> Any:
    """Parse ``saved_model.pb`` (or ``.pbtxt``); AuditError when it is damaged."""
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    binary, text = directory / "saved_model.pb", directory / "saved_model.pbtxt"
    source = binary if binary.exists() else text
    try:
        if source.stat().st_size > MAX_PROTO_BYTES:
            raise AuditError(f"{source.name} is larger than {MAX_PROTO_BYTES} bytes")
        data = source.read_bytes()
        if source is binary:
            proto.ParseFromString(data)
        else:
            text_format.Parse(data.decode("utf-8"), proto)
    except (OSError, message.DecodeError, text_format.ParseError, UnicodeDecodeError) as exc:
        raise AuditError(f"damaged {source.name} ({type(exc).__name__})") from None
    if not proto.meta_graphs:
        raise AuditError(f"{source.name} holds no MetaGraph: not a usable SavedModel")
    return proto


def unsafe_ops(saved_model: Any) -> list[UnsafeOp]:
    """Every node in every MetaGraph that would touch files, processes or Python."""
    from tensorflow.python.framework import op_def_registry

    found: list[UnsafeOp] = []
    for meta_graph in saved_model.meta_graphs:
        graph = meta_graph.graph_def
        functions = {f.signature.name: f for f in graph.library.function}
        saver_nodes = _saver_region(meta_graph)
        saver_only = _saver_functions(meta_graph, functions, saver_nodes)
        found += _judge(graph.node, "graph", functions, op_def_registry, saver_nodes)
        for name, function in sorted(functions.items()):
            nodes = function.node_def
            saver = {node.name for node in nodes} if name in saver_only else set()
            found += _judge(nodes, f"function {name}", functions, op_def_registry, saver)
    return sorted(set(found), key=lambda u: (u.where, u.node, u.op))


def _judge(nodes: Iterable[Any], where: str, functions: dict[str, Any], registry: Any,
           saver: Container[str]) -> Iterator[UnsafeOp]:
    """The unsafe nodes among ``nodes``; those named in ``saver`` only save or restore."""
    for node in nodes:
        why = _why_unsafe(node, functions, registry, node.name in saver)
        if why:
            yield UnsafeOp(node.op, node.name, where, why)


def _why_unsafe(node: Any, functions: dict[str, Any], registry: Any, in_saver: bool) -> str | None:
    op = node.op
    if op in FILE_OPS:
        return "touches files"
    if op in PYTHON_OPS:
        return "runs Python code"
    if op.startswith("Debug"):
        return "debug op that can write to files or URLs"
    if op == "PrintV2" and node.attr["output_stream"].s.decode(errors="replace").startswith("file://"):
        return "prints to a file"
    if op in CHECKPOINT_OPS and not in_saver:
        return "reads or writes checkpoint files outside the saver"
    if op not in functions and registry.get(op) is None:
        return "not an op registered in this TensorFlow"
    return None


def _called(nodes: Iterable[Any], functions: dict[str, Any]) -> set[str]:
    """Names of the library functions that ``nodes`` call (as op or as a func attr)."""
    names = set()
    for node in nodes:
        if node.op in functions:
            names.add(node.op)
        for value in node.attr.values():
            if value.func.name:
                names.add(value.func.name)
            names.update(f.name for f in value.list.func)
    return names & set(functions)


def _closure(roots: set[str], functions: dict[str, Any]) -> set[str]:
    seen, frontier = set(), list(roots)
    while frontier:
        name = frontier.pop()
        if name in seen:
            continue
        seen.add(name)
        frontier += _called(functions[name].node_def, functions)
    return seen


def _saver_region(meta_graph: Any) -> set[str]:
    """Top-level nodes that only exist to save or restore: ancestors of saver_def's nodes."""
    saver = meta_graph.saver_def
    by_name = {node.name: node for node in meta_graph.graph_def.node}
    frontier = [
        name.split(":")[0].lstrip("^")
        for name in (saver.save_tensor_name, saver.restore_op_name)
        if name
    ]
    region: set[str] = set()
    while frontier:
        name = frontier.pop()
        if name in region or name not in by_name:
            continue
        region.add(name)
        frontier += [i.split(":")[0].lstrip("^") for i in by_name[name].input]
    return region


def _saver_functions(meta_graph: Any, functions: dict[str, Any], region: set[str]) -> set[str]:
    """Functions reached only from the saver's nodes, never from anything that serves."""
    nodes = meta_graph.graph_def.node
    saver = _closure(_called([n for n in nodes if n.name in region], functions), functions)
    served = _closure(
        _called([n for n in nodes if n.name not in region], functions)
        | set(meta_graph.object_graph_def.concrete_functions),
        functions,
    )
    return saver - served


def refuse_unsafe(saved_model: Any) -> None:
    """AuditError naming the refused ops and where they are, if there are any."""
    found = unsafe_ops(saved_model)
    if not found:
        return
    shown = "; ".join(str(u) for u in found[:5])
    more = f"; and {len(found) - 5} more" if len(found) > 5 else ""
    raise AuditError(
        f"refused to load: the SavedModel contains unsafe ops: {shown}{more}. "
        "Pass --unsafe only if you trust this file"
    )
