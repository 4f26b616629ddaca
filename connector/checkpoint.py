"""`--checkpoint FILE`: where a backfill resumes after a crash, and what it was run with.

Checkpointing has one home, here. A position is `{"worker": k, "ticks": n}`: every
produce() call of worker k's schedule up to tick n has all its events acknowledged. The
run talks to a `PositionStore` only: the file store below, the worker's link to its
parent (workers.py), or a transactional output's own store (Kafka's marker topic), which
commits the position with the events. `Checkpointing` is the feature inside one run:
every few seconds it settles (waits for every acknowledgement) and saves the position.

The file holds the run's fingerprint (what makes the schedule and the events: the config
after interpolation, the script's contents, --seed, --workers, the replica index and
count), the moment relative times were resolved against (so a resumed `start: -1h` is the
same window), and each worker's position: the schedule ticks whose events have all been
acknowledged (delivered or failed). Without transactions the file IS the position; with
them the outputs' committed position wins and the file only caches it.

The config is fingerprinted key by key as short hashes, never as values, and credentials
(Kafka client passwords, tokens and keys, OTLP request headers) are left out: they do not
change the events, rotating one must not invalidate a checkpoint, and they must not land
in a file even hashed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from connector.clock import Clock

__all__ = [
    "SETTLE_TIMEOUT",
    "Checkpoint",
    "CheckpointError",
    "Checkpointing",
    "FileStore",
    "PositionStore",
    "fingerprint",
    "resume_ticks",
]

SETTLE_TIMEOUT = 5.0  # seconds a checkpoint waits for acknowledgements before trying later

VERSION = 1
# config paths of credentials: librdkafka's secret properties, and OTLP's request headers
CREDENTIAL = re.compile(
    r"\.producer\..*(password|secret|token|\.key$|key\.pem|jaas|oauthbearer)"
    r"|\.otlp\.headers\."
)

log = logging.getLogger("connector")


class CheckpointError(Exception):
    """The checkpoint cannot be used for this run (usage: exit 2); the message says why."""


class PositionStore(Protocol):
    def load(self) -> dict | None: ...  # the last position saved (None: none yet)
    def save(self, position: dict) -> None: ...


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _leaves(value: Any, path: str, out: dict[str, str]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _leaves(item, f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list) and value:
        for n, item in enumerate(value):
            _leaves(item, f"{path}[{n}]", out)
    else:
        out[path] = _digest(json.dumps(value, sort_keys=True, default=str).encode())


def fingerprint(
    config_data: dict, script: Path, seed: int | None, workers: int, replica: tuple[int, int]
) -> dict[str, Any]:
    """What the events depend on. Config keys become `config:<path>` -> hash of the value."""
    leaves: dict[str, str] = {}
    _leaves(config_data, "", leaves)
    return {
        **{f"config:{k}": v for k, v in sorted(leaves.items()) if not CREDENTIAL.search(k)},
        "script": _digest(script.read_bytes()),
        "seed": seed,
        "workers": workers,
        "replica": f"{replica[0]} of {replica[1]}",
    }


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Each difference named: config keys by path, the others with both values."""
    changed = []
    for key in sorted(old.keys() | new.keys(), key=lambda k: (k.startswith("config:"), k)):
        if old.get(key) == new.get(key):
            continue
        if key.startswith("config:"):
            what = key.removeprefix("config:")
            if key not in old:
                changed.append(f"config key {what} was added")
            elif key not in new:
                changed.append(f"config key {what} was removed")
            else:
                changed.append(f"config key {what} changed")
        elif key == "script":
            changed.append("the script's contents changed")
        else:
            flag = {"seed": "--seed", "workers": "--workers"}.get(key, key)
            changed.append(f"{flag}: {old.get(key)} then, {new.get(key)} now")
    return changed


@dataclass
class Checkpoint:
    path: Path
    fingerprint: dict[str, Any]
    anchor: datetime  # relative times resolve against this, on every resume too
    workers: int = 1
    positions: dict[int, dict] = field(default_factory=dict)  # worker -> position
    complete: bool = False
    resumed: bool = False  # the file existed: this run resumes
    unwritable: str | None = None  # the write error, once logged

    @classmethod
    def open(cls, path: Path, fingerprint: dict[str, Any], now: datetime) -> Checkpoint:
        """The checkpoint for this run: read and checked when the file exists, else new
        (and written at once, so a crash before the first position keeps the anchor)."""
        workers = int(fingerprint["workers"])
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            made = cls(path, fingerprint, now, workers)
            made.save()
            return made
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
        try:
            data = json.loads(text)
            if data.get("version") != VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {VERSION}")
            old = data["fingerprint"]
            anchor = datetime.fromisoformat(data["anchor"])
            positions = {int(w): dict(p) for w, p in data["positions"].items()}
            complete = bool(data["complete"])
            if not isinstance(old, dict) or any(
                not isinstance(p.get("ticks"), int) or p["ticks"] < 0 for p in positions.values()
            ):
                raise ValueError("unexpected content")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"checkpoint {path} is not a checkpoint this connector wrote ({exc}); "
                "delete it to start the backfill over"
            ) from None
        if complete:
            raise CheckpointError(
                f"checkpoint {path} belongs to a backfill that has finished; nothing is left "
                "to resume. Delete the file to run the backfill again"
            )
        if old.get("workers") != fingerprint["workers"]:
            raise CheckpointError(
                f"checkpoint {path} was written by a run with --workers {old.get('workers')}, "
                f"this one has --workers {fingerprint['workers']}: each worker resumes its "
                f"own share, so resume with --workers {old.get('workers')} "
                "(or delete the file to start over)"
            )
        changed = _changes(old, fingerprint)
        if changed:
            raise CheckpointError(
                f"checkpoint {path} was written for a different run: {'; '.join(changed)}. "
                "Resume with what it was written for, or delete the file to start over"
            )
        return cls(path, fingerprint, anchor, workers, positions, False, resumed=True)

    def ticks(self, worker: int) -> int:
        """Schedule ticks of `worker` already settled: the resume skips (replays) them."""
        return int(self.positions.get(worker, {}).get("ticks", 0))

    def keep(self, position: dict | None) -> None:
        """Record a settled position (None: the schedule is done). A failed write loses
        only progress: the run goes on, and a resume starts from the last one written."""
        try:
            if position is None:
                self.finish()
            else:
                self.update(int(position["worker"]), position)
        except OSError as exc:
            if self.unwritable is None:
                self.unwritable = exc.strerror or str(exc)
                log.error(
                    "checkpoint %s cannot be written (%s); a resume starts from the last "
                    "position written",
                    self.path,
                    self.unwritable,
                )

    def update(self, worker: int, position: dict) -> None:
        if self.positions.get(worker) != position:
            self.positions[worker] = dict(position)
            self.save()

    def finish(self) -> None:
        self.complete = True
        self.save()

    def save(self) -> None:
        """Atomically: a crash at any moment leaves the old file or the new one, whole."""
        data = {
            "version": VERSION,
            "complete": self.complete,
            "anchor": self.anchor.isoformat(),
            "workers": self.workers,
            "positions": {str(w): p for w, p in sorted(self.positions.items())},
            "fingerprint": self.fingerprint,
        }
        folder = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(folder, os.O_RDONLY)
        try:  # the rename itself survives a power cut only once the folder is synced
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class FileStore:
    """One worker's positions in the checkpoint file."""

    def __init__(self, checkpoint: Checkpoint, worker: int = 0):
        self.checkpoint, self.worker = checkpoint, worker

    def load(self) -> dict | None:
        position = self.checkpoint.positions.get(self.worker)
        return None if position is None else dict(position)

    def save(self, position: dict) -> None:
        self.checkpoint.keep(position)


def resume_ticks(store: PositionStore, committed: list[PositionStore | None], outputs: int) -> int:
    """Ticks an earlier run settled, to skip (replay) now. Transactional outputs say
    themselves what they committed, and their word wins; the store only caches it, and
    counts alone for the other outputs."""
    ticks = _ticks(store.load())
    done = [_ticks(c.load()) for c in committed if c is not None]
    if not done:
        return ticks
    return min([*done, ticks] if len(done) < outputs else done)


def _ticks(position: dict | None) -> int:
    return 0 if position is None else int(position.get("ticks", 0))


class Checkpointing:
    """--checkpoint inside one run: resume where an earlier run settled, then every
    `every` seconds settle and save the position."""

    def __init__(self, store: PositionStore, every: float, worker: int, clock: Clock):
        self.store, self.every, self.worker, self.clock = store, every, worker, clock
        self.next_at = 0.0  # clock.monotonic() of the next settle; 0 until the schedule runs
        self.taken = 0
        self.spent = 0.0  # seconds the settles waited: what checkpoints cost
        self.position: dict | None = None  # the last position saved
        self.replayed = 0  # produce() calls replayed, not sent, to resume

    def resume(
        self,
        stream: Iterator[tuple[datetime, int]],
        ticks: int,
        produce: Callable[[dict], Any],
        tags: list[tuple[str, ...]],
        stop: list[str],
    ) -> None:
        """Skip the `ticks` settled calls of the stream, calling produce() for each without
        sending (to rebuild the script's state and its --seed random stream)."""
        for ts, i in itertools.islice(stream, ticks):
            if stop:
                break
            self.replayed += 1
            try:
                produce({"timestamp": ts, "tags": tags[i]})
            except KeyboardInterrupt:
                raise
            except BaseException:  # counted by the run that first made this call
                pass
        if self.replayed:
            log.info("resumed after %d settled produce() call(s), replayed unsent", ticks)
        self.next_at = self.clock.monotonic() + self.every

    def settle(self, flushed: bool, began: float, ticks: int) -> None:
        """After the run waited (from `began`) for acknowledgements: save the position when
        nothing is pending any more (`flushed`), and plan the next settle."""
        if flushed:
            self.save(ticks)
        now = self.clock.monotonic()
        self.taken += 1
        self.spent += now - began
        self.next_at = now + self.every

    def save(self, ticks: int) -> None:
        self.position = {"worker": self.worker, "ticks": ticks}
        self.store.save(dict(self.position))

    def report(self, elapsed: float) -> None:
        log.info(
            "checkpoints: %d taken, %.3f s of %.3f s spent on them", self.taken, self.spent, elapsed
        )
