"""Writing a manifest part as the run goes: one file per process, chunks appended.

Each recorder buffers what its output acknowledged and writes a chunk when it holds
CHUNK_RECORDS, when FLUSH_SECONDS have passed since its last one, and at close(): memory
stays bounded, and a crash loses at most the last seconds. The file is written with one
write() per chunk under a lock (the OTLP sender reports from its own thread).
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
from collections import defaultdict
from pathlib import Path
from zlib import adler32, crc32

from connector import __version__
from connector.identity import Identity
from connector.manifest import format as fmt
from connector.manifest.format import ManifestError
from connector.manifest.hashing import KEYLESS as _KEYLESS
from connector.manifest.hashing import record_hash, sampled

__all__ = ["CHUNK_RECORDS", "KafkaRecorder", "LineRecorder", "ManifestWriter", "TraceRecorder"]

log = logging.getLogger("connector")

CHUNK_RECORDS = 65_536
FLUSH_SECONDS = 2.0
_DRAIN = 4096
_LINE = struct.Struct("<QIQ")  # delivery reports kept as they come before they are hashed


def part_path(path: Path, identity: Identity) -> Path:
    """One process: `path` itself; replicas or workers: a part in the folder `path`."""
    if identity.replicas == 1 and identity.workers == 1 and not path.is_dir():
        return path
    return path / f"replica-{identity.replica}-worker-{identity.worker}.manifest"


class ManifestWriter:
    def __init__(self, path: Path, identity: Identity, sample: int = 1):
        self.path = part_path(path, identity)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sample = sample
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._lock = threading.Lock()
        self._recorders: list = []
        self._closed = False
        self.error: str | None = None  # the first write that failed
        meta = {
            "connector": __version__,
            "replica": identity.replica,
            "replicas": identity.replicas,
            "worker": identity.worker,
            "workers": identity.workers,
            "sample": sample,
            "started": time.time(),
        }
        self._write(fmt.header_bytes() + fmt.chunk_bytes(fmt.META, fmt.json_payload(meta)))
        self._done = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="manifest", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        """Every FLUSH_SECONDS, what each recorder holds becomes chunks: a slow live run's
        manifest grows as it goes, and a crash loses at most the last seconds."""
        while not self._done.wait(FLUSH_SECONDS):
            for recorder in list(self._recorders):
                if recorder is not None and recorder.periodic:
                    recorder.flush()

    def _write(self, data: bytes) -> None:
        """Append whole chunks. A write that fails (a full disk) is logged once and the
        manifest stops there: it never raises into a delivery callback or the run."""
        with self._lock:
            if self._closed or self.error is not None:
                return
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as exc:
                self.error = exc.strerror or str(exc)
                log.error(
                    "manifest %s cannot be written (%s): it ends at its last whole chunk; "
                    "verify it with --partial",
                    self.path,
                    self.error,
                )

    def chunk(self, kind: int, payload: bytes) -> None:
        self._write(fmt.chunk_bytes(kind, payload))

    def section(self, name: str, plugin: str, settings: dict) -> int:
        """Declare an output; its id for the chunks that follow."""
        oid = len(self._recorders)
        self._recorders.append(None)
        doc = {"id": oid, "name": name, "plugin": plugin, "settings": settings}
        self.chunk(fmt.OUTPUT, fmt.json_payload(doc))
        return oid

    def kafka(self, name: str, settings: dict, headers: bytes | None) -> KafkaRecorder:
        oid = self.section(name, "kafka", {**settings, "headers_hashed": headers is not None})
        recorder = KafkaRecorder(self, oid, headers or b"")
        self._recorders[oid] = recorder
        return recorder

    def traces(self, name: str, plugin: str, settings: dict) -> TraceRecorder:
        oid = self.section(name, plugin, settings)
        recorder = TraceRecorder(self, oid, self.sample)
        self._recorders[oid] = recorder
        return recorder

    def lines(self, name: str, settings: dict) -> LineRecorder:
        oid = self.section(name, "file", settings)
        recorder = LineRecorder(self, oid, str(settings["path"]))
        self._recorders[oid] = recorder
        return recorder

    def counts(self, name: str, plugin: str, settings: dict) -> CountRecorder:
        oid = self.section(name, plugin, settings)
        recorder = CountRecorder(self, oid, settings.get("signal", ""))
        self._recorders[oid] = recorder
        return recorder

    def close(self) -> None:
        """Write what the recorders hold and the END chunk: the manifest is complete."""
        self._done.set()
        self._ticker.join(timeout=10)
        totals = {}
        for recorder in self._recorders:
            if recorder is not None:
                recorder.flush()
                totals[recorder.oid] = recorder.recorded
        self.chunk(fmt.END, fmt.json_payload({"recorded": totals}))
        with self._lock:
            self._closed = True
            os.close(self._fd)


class _Recorder:
    periodic = True  # the writer's ticker writes what it holds every FLUSH_SECONDS

    def __init__(self, writer: ManifestWriter, oid: int):
        self.writer, self.oid = writer, oid
        self.recorded = 0
        self.lock = threading.RLock()  # the ticker's flush against the adding thread's
        self._due = time.monotonic() + FLUSH_SECONDS

    def _maybe_flush(self, held: int) -> None:
        if held >= CHUNK_RECORDS or time.monotonic() >= self._due:
            self.flush()

    def flush(self) -> None:
        raise NotImplementedError


class KafkaRecorder(_Recorder):
    """Kafka delivery reports: `add(msg)` keeps the message (on the hot path: an append);
    every _DRAIN of them are hashed into (topic, partition) -> offsets and hashes."""

    def __init__(self, writer: ManifestWriter, oid: int, headers: bytes):
        super().__init__(writer, oid)
        self.headers = headers
        self.reports: list = []
        self.parts: dict[tuple[str, int], tuple[list[int], list[int]]] = defaultdict(
            lambda: ([], [])
        )
        self.held = 0

    def add(self, msg) -> None:
        reports = self.reports
        reports.append(msg)
        if len(reports) >= _DRAIN:
            self._drain()

    def callback(self, plain):
        """`plain` (a delivery callback), recording each delivered report: one frame and
        an append a report on the produce path; the hashing waits for _DRAIN of them."""
        reports, drain = self.reports, self._drain

        def on_delivery(err, msg) -> None:
            plain(err, msg)
            if err is None:
                reports.append(msg)
                if len(reports) >= _DRAIN:
                    drain()

        return on_delivery

    def _hash_reports(self) -> None:
        held = self.reports  # the same list: callback() holds it and appends meanwhile
        n = len(held)
        reports = held[:n]
        del held[:n]
        parts, headers = self.parts, self.headers
        h0, l0 = _KEYLESS
        for msg in reports:
            offsets, hashes = parts[(msg.topic(), msg.partition())]
            offsets.append(msg.offset())
            key, value = msg.key(), msg.value()
            if value is None or headers:
                hashes.append(record_hash(key, value, headers))
            elif key is None:  # record_hash, inline: this runs once a record
                hashes.append((crc32(value, h0) << 32) | adler32(value, l0))
            else:
                prefix = b"\x01" + key + b"\x02"
                high, low = crc32(value, crc32(prefix)), adler32(value, adler32(prefix))
                hashes.append((high << 32) | low)
        self.held += len(reports)

    def _drain(self) -> None:
        with self.lock:
            self._hash_reports()
            self._maybe_flush(self.held)

    def flush(self) -> None:
        with self.lock:
            self._hash_reports()
            self._write_parts()

    def _write_parts(self) -> None:
        parts, self.parts = self.parts, defaultdict(lambda: ([], []))
        self.recorded += self.held
        self.held = 0
        self._due = time.monotonic() + FLUSH_SECONDS
        for (topic, partition), (offsets, hashes) in parts.items():
            self.writer.chunk(fmt.KAFKA, kafka_payload(self.oid, topic, partition, offsets, hashes))


def kafka_payload(oid: int, topic: str, partition: int, offsets: list, hashes: list) -> bytes:
    order = sorted(range(len(offsets)), key=offsets.__getitem__)
    ranges: list[list[int]] = []
    for i in order:
        offset = offsets[i]
        if ranges and ranges[-1][0] + ranges[-1][1] == offset:
            ranges[-1][1] += 1
        else:
            ranges.append([offset, 1])
    name = topic.encode()
    head = struct.pack(f"<HH{len(name)}siI", oid, len(name), name, partition, len(ranges))
    body = b"".join(struct.pack("<qI", first, count) for first, count in ranges)
    return head + body + struct.pack(f"<{len(order)}Q", *(hashes[i] for i in order))


class TraceRecorder(_Recorder):
    """Spans an endpoint accepted: trace id -> span ids (one trace in `sample`)."""

    def __init__(self, writer: ManifestWriter, oid: int, sample: int):
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

    def flush(self) -> None:
        with self.lock:
            self._flush()

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

    def __init__(self, writer: ManifestWriter, oid: int, path: str):
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

    def flush(self) -> None:
        with self.lock:
            self._flush()

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

    def __init__(self, writer: ManifestWriter, oid: int, signal: str):
        super().__init__(writer, oid)
        self.signal = signal
        self.resources: dict[str, int] = defaultdict(int)

    def add(self, resources: list[str]) -> None:
        with self.lock:
            for name in resources:
                self.resources[name] += 1
            self.recorded += len(resources)

    def flush(self) -> None:
        doc = {"signal": self.signal, "resources": dict(self.resources), "read_back": False}
        self.writer.chunk(fmt.COUNTS, struct.pack("<H", self.oid) + json.dumps(doc).encode())


def manifest_path(args, config) -> Path | None:
    """--manifest, else the config's `manifest:` key."""
    return getattr(args, "manifest", None) or config.manifest


def open_manifest(options) -> ManifestWriter | None:
    """This process's manifest part (RunOptions.manifest); ManifestError when it cannot be
    written (the run does not start)."""
    if options.manifest is None:
        return None
    try:
        return ManifestWriter(options.manifest, options.identity, options.manifest_sample)
    except OSError as exc:
        raise ManifestError(
            f"--manifest {options.manifest}: cannot write it: {exc.strerror or exc}"
        ) from None
