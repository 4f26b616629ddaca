"""What each output acknowledged, held per output until it becomes a chunk: Kafka
reports (hashed in bulk), trace and span ids, file lines, and OTLP counts per resource.

A recorder writes a chunk through its ManifestWriter when it holds CHUNK_RECORDS, when
FLUSH_SECONDS have passed since its last one (the writer's ticker), and at close().
"""

from __future__ import annotations

import json
import os
import struct
import sys
import threading
import time
from array import array
from collections import defaultdict
from itertools import groupby, islice, repeat
from operator import lt
from typing import Protocol

from connector.manifest import format as fmt
from connector.manifest.hashing import KEYED, KEYLESS, record_hash, sampled, xxh3

__all__ = [
    "CHUNK_RECORDS",
    "DRAIN",
    "FLUSH_SECONDS",
    "Chunks",
    "CountRecorder",
    "KafkaRecorder",
    "LineRecorder",
    "TraceRecorder",
]

CHUNK_RECORDS = 65_536
FLUSH_SECONDS = 2.0
DRAIN = 4096
_LINE = struct.Struct("<QIQ")  # a line written: its offset, length and hash


class Chunks(Protocol):
    """Where a recorder's chunks go (the ManifestWriter)."""

    def chunk(self, kind: int, payload: bytes) -> None: ...


class _Recorder:
    periodic = True  # the writer's ticker writes what it holds every FLUSH_SECONDS

    def __init__(self, writer: Chunks, oid: int):
        self.writer, self.oid = writer, oid
        self.recorded = 0
        self.lock = threading.RLock()  # the ticker's flush against the adding thread's
        self._due = time.monotonic() + FLUSH_SECONDS

    def _maybe_flush(self, held: int) -> None:
        if held >= CHUNK_RECORDS or time.monotonic() >= self._due:
            self.flush()

    def flush(self) -> None:
        """What it holds becomes chunks (the ticker's thread, or the adding one)."""
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        raise NotImplementedError


class KafkaRecorder(_Recorder):
    """Kafka delivery reports: each one delivered is kept as it comes (on the hot path: an
    append); every DRAIN of them are hashed in bulk into (topic, partition) -> offsets and
    hashes, with C loops (map) rather than Python ones a record."""

    def __init__(
        self, writer: Chunks, oid: int, headers: bytes, topic: str | None, keyed: bool
    ):
        super().__init__(writer, oid)
        self.headers = headers
        self.topic = topic  # fixed: the reports' topics are not read
        self.keyed = keyed  # False: no record has a key, the reports' keys are not read
        self.reports: list = []
        self.parts: dict[tuple[str, int], _Part] = defaultdict(_Part)
        self.held = 0

    def add(self, msg) -> None:
        reports = self.reports
        reports.append(msg)
        if len(reports) >= DRAIN:
            self.drain()

    def callback(self, plain):
        """`plain` (a delivery callback), recording each delivered report (the transactional
        path; the sink has a callback of its own that appends in the same frame)."""
        add = self.add

        def on_delivery(err, msg) -> None:
            plain(err, msg)
            if err is None:
                add(msg)

        return on_delivery

    def _hash_reports(self) -> None:
        held = self.reports  # the same list: callback() holds it and appends meanwhile
        n = len(held)
        if not n:
            return
        reports = held[:n]
        del held[:n]
        message = type(reports[0])  # its methods, unbound: map() calls them without a frame
        offsets = list(map(message.offset, reports))
        hashes = _hashes(
            list(map(message.key, reports)) if self.keyed else None,
            list(map(message.value, reports)),
            self.headers,
        )
        partitions = list(map(message.partition, reports))
        topic, parts, start = self.topic, self.parts, 0
        # librdkafka reports a partition's messages in runs: one group a run, not a record
        if topic is not None:
            runs = groupby(partitions)
        else:
            runs = groupby(zip(map(message.topic, reports), partitions, strict=True))
        for where, run in runs:
            end = start + len(list(run))
            part = parts[(topic, where) if topic is not None else where]
            part.offsets += offsets[start:end]
            part.hashes += hashes[start:end]
            start = end
        self.held += n

    def drain(self) -> None:
        with self.lock:
            self._hash_reports()
            self._maybe_flush(self.held)

    def _flush(self) -> None:
        self._hash_reports()
        parts, self.parts = self.parts, defaultdict(_Part)
        self.recorded += self.held
        self.held = 0
        self._due = time.monotonic() + FLUSH_SECONDS
        for (topic, partition), part in parts.items():
            self.writer.chunk(fmt.KAFKA, kafka_payload(self.oid, topic, partition, part))


class _Part:
    """One partition's reports so far: offsets, and each record's hash."""

    __slots__ = ("hashes", "offsets")

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self.hashes: list[int] = []

    def hash_bytes(self, order: list[int] | None) -> bytes:
        """The u64 hashes (little-endian) in `order` (None: as they came)."""
        hashes = self.hashes if order is None else [self.hashes[i] for i in order]
        packed = array("Q", hashes)
        if sys.byteorder != "little":
            packed.byteswap()
        return packed.tobytes()


def _hashes(keys: list | None, values: list, headers: bytes) -> list[int]:
    """record_hash of each record (keys None: none has a key), in C loops where the records
    are alike (values present; keys all absent or all present)."""
    n = len(values)
    try:
        if keys is None or (keys[0] is None and keys.count(None) == n):
            hashes = list(map(xxh3, values, repeat(KEYLESS, n)))
        else:  # the key's hash seeds the value's; a key or value of None raises TypeError
            hashes = list(map(xxh3, values, map(xxh3, keys, repeat(KEYED, n))))
    except TypeError:  # a tombstone or a mixed batch: one at a time
        keys = keys or [None] * n
        hashes = [record_hash(key, value) for key, value in zip(keys, values, strict=True)]
    if headers:
        hashes = list(map(xxh3, repeat(headers, n), hashes))
    return hashes


def kafka_payload(oid: int, topic: str, partition: int, part: _Part) -> bytes:
    offsets = part.offsets
    n = len(offsets)
    if n and offsets[-1] - offsets[0] == n - 1 and all(map(lt, offsets, islice(offsets, 1, None))):
        ranges, order = [(offsets[0], n)], None  # as they nearly always come: one run
    else:
        order = sorted(range(n), key=offsets.__getitem__)
        ranges = []
        for i in order:
            offset = offsets[i]
            if ranges and ranges[-1][0] + ranges[-1][1] == offset:
                ranges[-1] = (ranges[-1][0], ranges[-1][1] + 1)
            else:
                ranges.append((offset, 1))
    name = topic.encode()
    head = struct.pack(f"<HH{len(name)}siI", oid, len(name), name, partition, len(ranges))
    body = b"".join(struct.pack("<qI", first, count) for first, count in ranges)
    return head + body + part.hash_bytes(order)


class TraceRecorder(_Recorder):
    """Spans an endpoint accepted: trace id -> span ids (one trace in `sample`)."""

    def __init__(self, writer: Chunks, oid: int, sample: int):
        super().__init__(writer, oid)
        self.sample = sample
        self.traces: dict[bytes, list[bytes]] = defaultdict(list)
        self.held = 0

    def add(self, spans: list[tuple[bytes, bytes]]) -> None:
        """(trace id, span id) of each accepted span (a batch at a time)."""
        with self.lock:
            traces, every = self.traces, self.sample
            for trace_id, span_id in spans:
                if every == 1 or sampled(trace_id, every):
                    traces[trace_id].append(span_id)
                    self.held += 1
            self._maybe_flush(self.held)

    def _flush(self) -> None:
        traces, self.traces = self.traces, defaultdict(list)
        self.recorded += self.held
        self.held = 0
        self._due = time.monotonic() + FLUSH_SECONDS
        if not traces:
            return
        out = [struct.pack("<HI", self.oid, len(traces))]
        for trace_id, spans in traces.items():
            out.append(trace_id + struct.pack("<H", len(spans)) + b"".join(spans))
        self.writer.chunk(fmt.TRACES, b"".join(out))


class LineRecorder(_Recorder):
    """Lines a file output wrote: byte offset, length and hash of each."""

    def __init__(self, writer: Chunks, oid: int, path: str):
        super().__init__(writer, oid)
        self.path = path
        self.rows: list[bytes] = []

    def add_written(self, fd: int, data: bytes) -> None:
        """`data` was just written to `fd` (a regular file): its whole lines are recorded,
        each as (offset, length with its newline, hash of the line)."""
        try:
            end = os.lseek(fd, 0, os.SEEK_CUR)  # O_APPEND: just past what we wrote
        except OSError:
            return  # a pipe: nothing to read back
        offset = end - len(data)
        with self.lock:
            pack, rows = _LINE.pack, self.rows
            for line in data.split(b"\n")[:-1]:
                rows.append(pack(offset, len(line) + 1, record_hash(None, line)))
                offset += len(line) + 1
            self._maybe_flush(len(rows))

    def _flush(self) -> None:
        rows, self.rows = self.rows, []
        self.recorded += len(rows)
        self._due = time.monotonic() + FLUSH_SECONDS
        if rows:
            name = self.path.encode()
            head = struct.pack(f"<HH{len(name)}sI", self.oid, len(name), name, len(rows))
            self.writer.chunk(fmt.LINES, head + b"".join(rows))


class CountRecorder(_Recorder):
    """Logs and metrics over OTLP: counts per resource, not read back (written at the end:
    the counts are totals)."""

    periodic = False

    def __init__(self, writer: Chunks, oid: int, signal: str):
        super().__init__(writer, oid)
        self.signal = signal
        self.resources: dict[str, int] = defaultdict(int)

    def add(self, resources: list[str]) -> None:
        with self.lock:
            for name in resources:
                self.resources[name] += 1
            self.recorded += len(resources)

    def _flush(self) -> None:
        doc = {"signal": self.signal, "resources": dict(self.resources), "read_back": False}
        self.writer.chunk(fmt.COUNTS, struct.pack("<H", self.oid) + json.dumps(doc).encode())
