"""Which TensorFlow ops a SavedModel would run: refuse the ones that touch files or call Python.

A SavedModel runs no Python code of its own, but its graph is a TensorFlow program, and some
TensorFlow ops read and write files (`ReadFile`, `WriteFile`, the checkpoint ops), print, or call
back into Python. Loading a SavedModel runs its resource initializers; calling it runs its
signature. `unsafe_ops` reads `saved_model.pb` (a protocol buffer; nothing runs) and lists the
unsafe ops anywhere in it, except the checkpoint ops of the model's own saver (the functions
`saver_def` names and nothing else calls), which every SavedModel has: TensorFlow calls them with
the SavedModel's own `variables/` path.
"""

from __future__ import annotations

from collections.abc import Iterable

# Ops that touch files, print, or call back into Python.
UNSAFE_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "DeleteFile", "ImmutableConst", "PyFunc",
    "PyFuncStateless", "EagerPyFunc", "Print", "PrintV2", "Save", "SaveSlices", "SaveV2",
    "Restore", "RestoreSlice", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename",
    "InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2", "TextLineReader",
    "TextLineReaderV2", "WholeFileReader", "WholeFileReaderV2", "TFRecordDataset",
    "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2", "SaveDataset", "SaveDatasetV2", "LoadDataset",
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "WriteSummary",
    "CreateSummaryFileWriter",
})
# What a SavedModel's own saver functions may use.
SAVER_OPS = frozenset({"SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename"})


def _called(node) -> list[str]:
    """Names of the functions a node calls (its function-valued attributes, or its op)."""
    names = []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        names += [function.name for function in value.list.func]
    return names + [node.op]


def _reach(graph, roots: Iterable[str]) -> tuple[set[str], set[str]]:
    """Top-level nodes and library functions reachable from the tensors or nodes in `roots`."""
    nodes = {node.name: node for node in graph.graph_def.node}
    functions = {function.signature.name: function
                 for function in graph.graph_def.library.function}
    reached_nodes: set[str] = set()
    reached_functions: set[str] = set()
    pending = [("node", root) for root in roots if root]
    while pending:
        kind, name = pending.pop()
        if kind == "node":
            name = name.lstrip("^").split(":")[0]
            if name in reached_nodes or name not in nodes:
                continue
            reached_nodes.add(name)
            body = [nodes[name]]
            pending += [("node", source) for source in nodes[name].input]
        else:
            if name in reached_functions or name not in functions:
                continue
            reached_functions.add(name)
            body = list(functions[name].node_def)
        pending += [("function", called) for node in body for called in _called(node)]
    return reached_nodes, reached_functions


def unsafe_ops(saved_model_pb: bytes) -> list[str]:
    """The unsafe ops (`UNSAFE_OPS`) a SavedModel holds outside its own saver, sorted.

    Args:
        saved_model_pb: The bytes of `saved_model.pb`.

    Returns:
        Op names; empty for every SavedModel this project exports.

    Raises:
        google.protobuf.message.DecodeError: The bytes are not a SavedModel protocol buffer.
        ValueError: It holds no graph tagged `serve` with a `serve` signature.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    model.ParseFromString(saved_model_pb)
    if not any("serve" in graph.meta_info_def.tags and "serve" in graph.signature_def
               for graph in model.meta_graphs):
        raise ValueError("no graph tagged 'serve' with a 'serve' signature")
    found: set[str] = set()
    for graph in model.meta_graphs:
        signatures = [tensor.name for signature in graph.signature_def.values()
                      for tensor in signature.outputs.values()]
        served_nodes, served_functions = _reach(graph, signatures)
        saver_nodes, saver_functions = _reach(
            graph, [graph.saver_def.save_tensor_name, graph.saver_def.restore_op_name])
        for node in graph.graph_def.node:
            own = node.name in saver_nodes and node.name not in served_nodes
            found |= {node.op} & (UNSAFE_OPS - (SAVER_OPS if own else frozenset()))
        for function in graph.graph_def.library.function:
            name = function.signature.name
            own = name in saver_functions and name not in served_functions
            found |= {node.op for node in function.node_def} & (
                UNSAFE_OPS - (SAVER_OPS if own else frozenset()))
    return sorted(found)
