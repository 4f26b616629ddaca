""".proto files compiled at start, with the protoc that grpcio-tools ships as a Python
package (no separate install): imports resolve against the file's own folder, then the
well-known types (google/protobuf/*.proto). The result is a descriptor pool of its own,
the message the records are written as, and its Confluent message-index path."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["Compiled", "compile_file", "compile_proto"]

_WELL_KNOWN = "google/protobuf/"
# protoc's own log lines (abseil), not the file's errors
_LOG = re.compile(r"WARNING: All log messages before absl|[IWEF]\d{4} \d")


class Compiled:
    """One compiled schema: `descriptor` is the message written, `indexes` its path in the
    file (top-level index, then nested ones), `imports` the files it imports, directly or
    not (the well-known types aside), as (import name, text, their own imports), in the
    order they must be registered, and `references` the file's direct imports of them."""

    def __init__(self, descriptor, indexes: list[int], imports: list, references: list[str]):
        self.descriptor, self.indexes, self.imports = descriptor, indexes, imports
        self.references = references
        self.full_name: str = descriptor.full_name


def _well_known_root() -> str:
    import grpc_tools

    return str(Path(grpc_tools.__file__).parent / "_proto")


def compile_proto(text: str, source: str, folder: str, name: str, message: str | None) -> Compiled:
    """`text` compiled as the file `name` in `folder` (raises ValueError naming `source`)."""
    return _compile(text, source, str(Path(folder).resolve()), name, message)


@functools.lru_cache(maxsize=64)  # validate, preview and run each load a schema several times
def _compile(text: str, source: str, folder: str, name: str, message: str | None) -> Compiled:
    main, files = _file(text, source, folder, name)
    descriptor = _message(main, message, source)
    _no_groups(descriptor, source, set())
    imports = [
        (proto.name, Path(folder, proto.name).read_text(encoding="utf-8"), _own(proto.dependency))
        for proto in files.file
        if proto.name != name and not proto.name.startswith(_WELL_KNOWN)
    ]
    main_deps = next(proto.dependency for proto in files.file if proto.name == name)
    return Compiled(descriptor, _indexes(descriptor), imports, _own(main_deps))


def compile_file(text: str, source: str, folder: str, name: str):
    """`text` compiled as the file `name` in `folder`: its FileDescriptor (a reader picks
    the message by a record's message indexes). Raises ValueError naming `source`."""
    return _file(text, source, str(Path(folder).resolve()), name)[0]


def _file(text: str, source: str, folder: str, name: str):
    """(the file's descriptor, the FileDescriptorSet of it and its imports)."""
    from google.protobuf import descriptor_pb2, descriptor_pool

    with tempfile.TemporaryDirectory(prefix="connector-proto-") as tmp:
        # the text under its own name first, so that a registered version wins over the file
        Path(tmp, name).write_text(text, encoding="utf-8")
        out = Path(tmp, "set.pb")
        args = [
            sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp}", f"-I{folder}",
            f"-I{_well_known_root()}", f"--descriptor_set_out={out}", "--include_imports", name,
        ]
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=tmp)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ValueError(f"{source}: cannot run protoc: {exc}") from None
        if done.returncode != 0:
            said = (done.stderr or done.stdout).replace(f"{tmp}/", "")  # our copy: its name
            lines = [ln for ln in said.splitlines() if ln.strip() and not _LOG.match(ln)]
            why = "; ".join(lines[:5]) or f"protoc exited {done.returncode}"
            raise ValueError(f"{source}: not a valid .proto file: {why}")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:  # dependencies come first
        pool.Add(proto)
    return pool.FindFileByName(name), files


def _own(dependencies) -> list[str]:
    return [d for d in dependencies if not d.startswith(_WELL_KNOWN)]


def _message(main, message: str | None, source: str):
    tops = list(main.message_types_by_name.values())
    if message is None:
        if len(tops) != 1:
            names = ", ".join(m.full_name for m in tops) or "none"
            raise ValueError(
                f"{source}: set `message`: the file has {len(tops)} top-level messages ({names})"
            )
        return tops[0]
    package = main.package
    wanted = message.lstrip(".")
    for candidate in (wanted, f"{package}.{wanted}" if package else wanted):
        found = _find(tops, candidate)
        if found is not None:
            return found
    names = ", ".join(m.full_name for m in tops) or "none"
    raise ValueError(f"{source}: no message {message!r} in the file (it has {names})")


def _no_groups(descriptor, source: str, seen: set[str]) -> None:
    """proto2 groups have no JSON form here: refused at start, by name."""
    seen.add(descriptor.full_name)
    for f in descriptor.fields:
        if f.type == f.TYPE_GROUP:
            raise ValueError(f"{source}: field {f.full_name} is a group (not supported)")
        if f.message_type is not None and f.message_type.full_name not in seen:
            _no_groups(f.message_type, source, seen)


def _find(messages, full_name: str):
    for m in messages:
        if m.full_name == full_name:
            return m
        if full_name.startswith(m.full_name + "."):
            found = _find(m.nested_types, full_name)
            if found is not None:
                return found
    return None


def _indexes(descriptor) -> list[int]:
    """The message's path as Confluent writes it: the top-level index, then nested ones."""
    path = []
    node = descriptor
    while node is not None:
        parent = node.containing_type
        if parent is None:
            siblings = list(node.file.message_types_by_name.values())
        else:
            siblings = list(parent.nested_types)
        path.append(next(i for i, m in enumerate(siblings) if m.full_name == node.full_name))
        node = parent
    return path[::-1]
