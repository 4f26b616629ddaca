"""Protobuf records in Confluent's wire format, read back for a replay: the writer's schema
fetched from the registry by id and compiled once, with its imports (by the references
the registry gives, else by the subject named as the import, as the connector and
confluent-kafka register them), and each record decoded into JSON values."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from connector.outputs.kafka.schema.proto_compile import compile_file

__all__ = ["ProtoRecords", "message_indexes"]

_IMPORT = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.M)
_WELL_KNOWN = "google/protobuf/"


def _varint(data: bytes, at: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated message indexes")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7


def message_indexes(body: bytes) -> tuple[list[int], bytes]:
    """(the message's index path, the payload) of what follows the schema id."""
    count, at = _varint(body, 0)
    count >>= 1  # zig-zag, never negative here
    if count == 0:
        return [0], body[at:]
    if count > 64:
        raise ValueError(f"{count} message indexes")
    indexes = []
    for _ in range(count):
        index, at = _varint(body, at)
        indexes.append(index >> 1)
    return indexes, body[at:]


class ProtoRecords:
    def __init__(self, registry: Any):
        self.registry = registry
        self._files: dict[int, Any] = {}  # schema id -> FileDescriptor
        self._classes: dict[tuple[int, tuple[int, ...]], Any] = {}

    def decode(self, schema_id: int, body: bytes) -> dict:
        from google.protobuf import json_format
        from google.protobuf.message import DecodeError

        indexes, payload = message_indexes(body)
        try:
            message = self._class(schema_id, indexes).FromString(payload)
        except DecodeError as exc:
            raise ValueError(f"not a protobuf message: {exc}") from None
        return json_format.MessageToDict(message, preserving_proto_field_name=True)

    def _class(self, schema_id: int, indexes: list[int]) -> Any:
        key = (schema_id, tuple(indexes))
        found = self._classes.get(key)
        if found is None:
            from google.protobuf.message_factory import GetMessageClass

            file = self._file(schema_id)
            try:
                node = list(file.message_types_by_name.values())[indexes[0]]
                for index in indexes[1:]:
                    node = node.nested_types[index]
            except IndexError:
                raise ValueError(f"schema id {schema_id} has no message {indexes}") from None
            found = self._classes[key] = GetMessageClass(node)
        return found

    def _file(self, schema_id: int) -> Any:
        file = self._files.get(schema_id)
        if file is None:
            schema = self._fetch(lambda: self.registry.get_schema(schema_id), schema_id)
            with tempfile.TemporaryDirectory(prefix="connector-replay-proto-") as folder:
                self._imports(schema, Path(folder), set())
                file = compile_file(schema.schema_str, f"schema id {schema_id}", folder,
                                    "schema.proto")
            self._files[schema_id] = file
        return file

    def _imports(self, schema: Any, folder: Path, seen: set[str]) -> None:
        """Each file `schema` imports, written into `folder` under its import name."""
        given = {ref.name: (ref.subject, ref.version) for ref in schema.references or []}
        for name in _IMPORT.findall(schema.schema_str):
            if name.startswith(_WELL_KNOWN) or name in seen:
                continue
            seen.add(name)
            subject, version = given.get(name, (name, None))
            if version is None:
                found = self._fetch(lambda s=subject: self.registry.get_latest_version(s), name)
            else:
                found = self._fetch(
                    lambda s=subject, v=version: self.registry.get_version(s, v), name)
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(found.schema.schema_str, encoding="utf-8")
            self._imports(found.schema, folder, seen)

    @staticmethod
    def _fetch(get, what: Any) -> Any:
        try:
            return get()
        except Exception as exc:  # the registry's errors have no one base class
            raise ValueError(f"schema {what}: {exc}") from None
