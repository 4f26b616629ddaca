"""Writing a manifest part as the run goes: one file per process, chunks appended.

Each recorder buffers what its output acknowledged and writes a chunk when it holds
CHUNK_RECORDS, when FLUSH_SECONDS have passed since its last one, and at close(): memory
stays bounded, and a crash loses at most the last seconds. The file is written with one
write() per chunk under a lock (the OTLP sender reports from its own thread).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from connector import __version__
from connector.identity import Identity
from connector.manifest import format as fmt
from connector.manifest.format import ManifestError
from connector.manifest.recorders import (
    FLUSH_SECONDS,
    CountRecorder,
    KafkaRecorder,
    LineRecorder,
    TraceRecorder,
)

__all__ = ["ManifestWriter", "manifest_path", "open_manifest"]

log = logging.getLogger("connector")


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

    def kafka(
        self,
        name: str,
        settings: dict,
        headers: bytes | None,
        topic: str | None = None,
        keyed: bool = True,
    ) -> KafkaRecorder:
        """`topic`: the one topic every record goes to, when it is not templated; `keyed`:
        whether a record may have a key."""
        oid = self.section(name, "kafka", {**settings, "headers_hashed": headers is not None})
        recorder = KafkaRecorder(self, oid, headers or b"", topic, keyed)
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
