"""Reading a manifest (a file, or a folder of parts) into one run: what each output
acknowledged, merged across replicas and workers by output name."""

from __future__ import annotations

import json
import struct
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from connector.manifest import format as fmt
from connector.manifest.format import ManifestError

__all__ = ["KafkaPart", "Manifest", "OutputRecord", "read_manifest"]

MAX_PARTS = 10_000


@dataclass
class KafkaPart:
    """One topic partition's recorded offsets, with each record's hash (unsorted)."""

    offsets: array = field(default_factory=lambda: array("q"))
    hashes: array = field(default_factory=lambda: array("Q"))

    def sorted_pairs(self) -> list[tuple[int, int]]:
        pairs = list(zip(self.offsets, self.hashes, strict=True))
        pairs.sort()
        return pairs


@dataclass
class OutputRecord:
    name: str
    plugin: str
    settings: dict
    kafka: dict[tuple[str, int], KafkaPart] = field(default_factory=lambda: defaultdict(KafkaPart))
    traces: dict[bytes, set[bytes]] = field(default_factory=lambda: defaultdict(set))
    lines: dict[str, list[tuple[int, int, int]]] = field(default_factory=lambda: defaultdict(list))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    signal: str = ""
    version: int = 2  # the format its parts were written in: how its records are hashed

    @property
    def transactional(self) -> bool:
        return bool(self.settings.get("transactional_id"))


@dataclass
class Manifest:
    parts: list[str] = field(default_factory=list)
    outputs: dict[str, OutputRecord] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)  # parts without their END chunk
    sample: int = 1


def read_manifest(path: Path, partial: bool = False) -> Manifest:
    """ManifestError for anything unreadable; a part a crash cut short is read up to its
    last whole chunk only with `partial` (else it is an error that says so)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix == ".manifest")
        if not files:
            raise ManifestError(f"{path}: a folder without any *.manifest part")
        if len(files) > MAX_PARTS:
            raise ManifestError(f"{path}: more than {MAX_PARTS} parts")
    elif path.is_file():
        files = [path]
    else:
        raise ManifestError(f"{path}: no such manifest file or folder")
    manifest = Manifest()
    for file in files:
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise ManifestError(f"{file}: cannot read it: {exc.strerror or exc}") from None
        _read_part(manifest, data, str(file), partial)
    return manifest


def _read_part(manifest: Manifest, data: bytes, name: str, partial: bool) -> None:
    chunks, torn, version = fmt.read_chunks(data, name)
    ended = any(c.kind == fmt.END for c in chunks)
    if not ended and not partial:
        how = "cut inside a chunk" if torn else "without its end"
        raise ManifestError(
            f"{name}: the manifest is incomplete ({how}: the run crashed or is still going); "
            "--partial verifies what it holds up to its last whole chunk"
        )
    if not ended:
        manifest.unfinished.append(name)
    manifest.parts.append(name)
    sections: dict[int, OutputRecord] = {}
    for chunk in chunks:
        try:
            _apply(manifest, sections, chunk, version)
        except (struct.error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise ManifestError(
                f"{name}: chunk at byte {chunk.at} cannot be read ({type(exc).__name__}: {exc})"
            ) from None


def _apply(
    manifest: Manifest, sections: dict[int, OutputRecord], chunk: fmt.Chunk, version: int
) -> None:
    kind, data = chunk.kind, chunk.payload
    if kind == fmt.META:
        meta = json.loads(data)
        manifest.sample = max(manifest.sample, int(meta.get("sample", 1)))
        return
    if kind == fmt.END:
        json.loads(data)
        return
    if kind == fmt.OUTPUT:
        doc = json.loads(data)
        name, plugin = str(doc["name"]), str(doc["plugin"])
        record = manifest.outputs.get(name)
        if record is None:
            record = manifest.outputs[name] = OutputRecord(
                name, plugin, dict(doc["settings"]), version=version
            )
        elif record.plugin != plugin:
            raise ValueError(f"output {name} is {record.plugin} in one part, {plugin} in another")
        elif record.version != version:
            raise ValueError(
                f"output {name} is in format {record.version} in one part, {version} in another"
            )
        sections[int(doc["id"])] = record
        return
    (oid,) = struct.unpack_from("<H", data)
    record = sections.get(oid)
    if record is None:
        raise ValueError(f"records of output section {oid}, which was never declared")
    if kind == fmt.KAFKA:
        _kafka(record, data)
    elif kind == fmt.TRACES:
        _traces(record, data)
    elif kind == fmt.LINES:
        _lines(record, data)
    elif kind == fmt.COUNTS:
        doc = json.loads(data[2:])
        record.signal = str(doc.get("signal", ""))
        for resource, count in dict(doc["resources"]).items():
            record.counts[str(resource)] += int(count)


def _kafka(record: OutputRecord, data: bytes) -> None:
    _, size = struct.unpack_from("<HH", data)
    at = 4
    topic = data[at : at + size].decode()
    at += size
    partition, n_ranges = struct.unpack_from("<iI", data, at)
    at += 8
    part = record.kafka[(topic, partition)]
    total = 0
    for first, count in struct.iter_unpack("<qI", data[at : at + 12 * n_ranges]):
        part.offsets.extend(range(first, first + count))
        total += count
    at += 12 * n_ranges
    hashes = array("Q", data[at : at + 8 * total])
    if len(hashes) != total or at + 8 * total != len(data):
        raise ValueError("offsets and hashes do not match in number")
    part.hashes.extend(hashes)


def _traces(record: OutputRecord, data: bytes) -> None:
    (n,) = struct.unpack_from("<I", data, 2)
    at = 6
    for _ in range(n):
        trace_id = data[at : at + 16]
        (spans,) = struct.unpack_from("<H", data, at + 16)
        at += 18
        ids = record.traces[trace_id]
        for i in range(spans):
            ids.add(data[at + 8 * i : at + 8 * i + 8])
        at += 8 * spans
        if at > len(data) or len(trace_id) != 16:
            raise ValueError("a trace runs past the chunk's end")


def _lines(record: OutputRecord, data: bytes) -> None:
    (size,) = struct.unpack_from("<H", data, 2)
    path = data[4 : 4 + size].decode()
    (n,) = struct.unpack_from("<I", data, 4 + size)
    at = 8 + size
    if at + 20 * n != len(data):
        raise ValueError("the line rows do not fill the chunk")
    record.lines[path].extend(struct.iter_unpack("<QIQ", data[at:]))
