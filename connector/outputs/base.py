"""The output contract, and the accounting every output shares.

Every output implements the same few methods (`Output`): `start()` connects (raising
OutputError if it cannot), `ready()` says whether it is connected, `write_batch(batch)`
hands a `Batch` over and returns quickly, `poll()` serves acknowledgements while the run
waits, `flush(timeout)` waits for them and returns how many EVENTS are still outstanding,
and `close()` gives up on the rest. Every event handed over is acknowledged exactly once
through the output's `Acks`: delivered, or failed with a reason. Counters, latency and the
dead-letter file live here once, not in each plugin.

What only some outputs do is a capability, a protocol of its own, checked once when the
output is built (outputs/handle.py); nothing probes an output afterwards:
- `TakesTimes`: stamps records with each event's scheduled time (`Batch.times`);
- `TakesCalls`: keeps produce() calls whole (`Batch.call_starts`);
- `Transactional`: commits whole calls in transactions, each with the position it reaches
  (`Batch.position`), and keeps its committed positions in a `PositionStore`;
- `WaitsForRoom`: may wait for room in a queue, and stops waiting at the stop deadline;
- `Recorded`: tells the run manifest (connector/manifest/) what it acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import Field, field_validator

from connector import values
from connector.delivery import NOT_SENT
from connector.fields import ConfigPath, Strict
from connector.identity import Identity
from connector.outputs.formatter import cut_torn_line, torn, write_all
from connector.stats import Histogram

if TYPE_CHECKING:
    from connector.checkpoint import PositionStore
    from connector.manifest import ManifestWriter
    from connector.otlp.mapping import SpanMapping

__all__ = [
    "NOT_SENT",
    "Acks",
    "Batch",
    "BuildContext",
    "Connecting",
    "Output",
    "OutputConfig",
    "OutputError",
    "OutputFatal",
    "OutputPlugin",
    "Recorded",
    "TakesCalls",
    "TakesTimes",
    "Transactional",
    "WaitsForRoom",
    "When",
    "parse_event",
]

connecting_log = logging.getLogger("connector.connecting")  # the CLI's --quiet silences it


_MISSING = object()


def parse_event(event: str) -> Any:
    """An event as JSON for a `when` rule; None when it is not JSON (it then matches no
    rule). Numbers are read exactly (integers of any size: connector/values.py)."""
    try:
        return values.loads(event)
    except (ValueError, TypeError):
        return None


class When(Strict):
    """Route by a field: the output gets only the events whose `field` equals `equals`."""

    field: str = Field(min_length=1, description="JSON field of the event (dots for nested: a.b)")
    equals: str | bool | int | float | None = Field(
        description="the value it must hold (a JSON scalar; true is not 1, '1' is not 1)"
    )

    @field_validator("field")
    @classmethod
    def _parts(cls, value: str) -> str:
        if "" in value.split(".") and "." in value:
            raise ValueError(f"'{value}': an empty part between dots")
        return value

    @property
    def key(self) -> tuple:
        """Rules with equal keys select the same events (computed once per batch)."""
        return (self.field, type(self.equals) is bool, self.equals)

    def matcher(self) -> Callable[[Any], bool]:
        """doc (a parsed event, None when not JSON) -> bool. The field is looked up as
        written first, then as a dotted path; a missing field or non-object never matches."""
        name, parts, want = self.field, tuple(self.field.split(".")), self.equals
        want_bool = type(want) is bool

        def match(doc: Any) -> bool:
            if type(doc) is not dict:
                return False
            value = doc.get(name, _MISSING)
            if value is _MISSING and len(parts) > 1:
                value = doc
                for part in parts:
                    if type(value) is not dict:
                        return False
                    value = value.get(part, _MISSING)
            if value is _MISSING or (type(value) is bool) != want_bool:
                return False
            return value == want  # an object or list never equals a scalar

        return match


class OutputConfig(Strict):
    when: When | None = Field(
        None, description="only events whose field equals a value go to this output"
    )
    dead_letter: ConfigPath | None = Field(
        None, description="JSONL file that receives every event that failed for good"
    )
    flush_timeout: float = Field(
        30.0, gt=0, description="seconds to wait for acknowledgements at shutdown"
    )

    def spans(self) -> SpanMapping | None:
        """The span field names, when this output sends spans (the trace check reads them)."""
        return None


class OutputError(Exception):
    """An output cannot work (unreachable, misconfigured); the message says what to change."""


class OutputFatal(OutputError):
    """A started output can never work again (a transactional producer fenced by another with
    its id): the run stops. The output has accounted the events concerned itself."""


class Acks:
    """Delivery accounting of one output. Callbacks may come from a client's thread."""

    LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
    TX_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

    def __init__(
        self, name: str, plugin: str, dead_letter: Path | None = None, routed: bool = False
    ):
        self.name = name
        self.plugin = plugin
        self.routed = routed  # the output has a `when` rule
        self.handed = 0  # events given to write_batch
        self.filtered = 0  # events its `when` rule kept from it: never handed over
        self.delivered = 0
        self.failed = 0
        self.reasons: Counter[str] = Counter()
        self.latency = Histogram(self.LATENCY_BUCKETS)
        # transactional outputs only (zero elsewhere): outcomes, and begin -> commit seconds
        self.transactions: Counter[str] = Counter()
        self.transaction_seconds = Histogram(self.TX_BUCKETS)
        # the live canary's (connector/canary/), when the output has one: checks by result,
        # and seconds from acknowledgement until readable
        self.canary: Counter[str] | None = None
        self.canary_seconds: Histogram | None = None
        self._dead_letter_path = dead_letter
        self._dead_letter: int | None = None  # its fd, opened at the first failure
        self.dead_letter_lost = 0  # records the dead letter could not take (disk full...)
        self._dead_letter_error: str | None = None
        self._lock = threading.Lock()  # failures only: the delivered path stays lock-free

    @property
    def pending(self) -> int:
        return self.handed - self.delivered - self.failed

    def ok(self, count: int = 1) -> None:
        """Delivered on the spot (stdout, file): zero latency, observed once per batch."""
        self.delivered += count
        self.latency.observe_many(0.0, count)

    def fail(
        self, reason: str, value: str | bytes | None, detail: str | None = None, **where: object
    ) -> None:
        """One event failed for good: counted by `reason`, which must come from a bounded
        set (it is a metric label); `detail` (the offending value...) goes to the dead letter."""
        with self._lock:
            self.failed += 1
            self.reasons[reason] += 1
            if self._dead_letter_path is None:
                return
            if self._dead_letter_error is not None:
                self.dead_letter_lost += 1
                return
            try:
                if self._dead_letter is None:
                    self._dead_letter_path.parent.mkdir(parents=True, exist_ok=True)
                    # unbuffered, O_APPEND, one write() a record: workers' records never
                    # interleave, and a failed write can be cut back to the last whole line
                    self._dead_letter = os.open(
                        self._dead_letter_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666
                    )
                if isinstance(value, bytes):
                    value = value.decode("utf-8", "backslashreplace")
                error = f"{reason}: {detail}" if detail else reason
                record = {"output": self.name, **where, "value": value, "error": error}
                data = (json.dumps(record, default=str) + "\n").encode("utf-8")
                written, exc = write_all(self._dead_letter, data)
                if isinstance(exc, OSError):  # first the file: whole lines only
                    cut_torn_line(self._dead_letter, torn(data, written))
                    raise exc
                if exc is not None:  # a second signal mid-record: finish the line, then stop
                    more, error = write_all(self._dead_letter, data[written:])
                    if error is not None:
                        cut_torn_line(self._dead_letter, torn(data, written + more))
                        self.dead_letter_lost += 1
                    raise exc
            except (OSError, ValueError) as exc:  # the failure still counts; say so once
                self._dead_letter_error = getattr(exc, "strerror", None) or str(exc)
                self.dead_letter_lost += 1
                logging.getLogger("connector").error(
                    "output %s: the dead letter %s cannot be written (%s); failures are "
                    "still counted, their records are lost",
                    self.name,
                    self._dead_letter_path,
                    self._dead_letter_error,
                )

    def fail_all(self, reason: str, values, detail: str | None = None, **where: object) -> None:
        for value in values:
            self.fail(reason, value, detail, **where)

    def settle(self, cut: list | None = None) -> None:
        """After close(): anything never acknowledged is counted as failed, never lost.
        Outputs keep the values of what is in flight and fail it themselves at close(), so
        this is a last resort. `cut`: the events of a batch a second signal stopped before
        write_batch took any of them (see OutputHandle.write): still unaccounted, they fail
        as not sent, with their values; other lines here carry no value, but they keep the
        dead letter's count equal to the failures."""
        missing = self.pending
        if missing > 0 and cut:
            unsent = cut[max(0, len(cut) - missing) :]  # an output accounts in order
            missing -= len(unsent)
            self.fail_all(NOT_SENT, unsent)
        if missing > 0:
            for _ in range(missing):
                self.fail("never acknowledged by the output", None)
        if self._dead_letter is not None:
            with contextlib.suppress(OSError):
                os.close(self._dead_letter)
            self._dead_letter = None


class Connecting:
    """While start() waits for its endpoint: a line every 5 s saying so, and the deadline."""

    EVERY = 5.0

    def __init__(self, acks: Acks, address: str, timeout: float):
        self.name, self.address, self.timeout = acks.name, address, timeout
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self._next = self.started + self.EVERY

    @property
    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def tick(self) -> bool:
        """Log the waiting line when it is due; False once the deadline has passed."""
        now = time.monotonic()
        if now >= self._next and now < self.deadline:
            connecting_log.info(
                "connecting to %s at %s (%d s of %g s)",
                self.name,
                self.address,
                int(now - self.started),
                self.timeout,
            )
            self._next += self.EVERY
        return now < self.deadline


@dataclass(slots=True)
class Batch:
    """What one hand-off gives an output. `times` and `call_starts` are there only for an
    output that takes them (TakesTimes, TakesCalls), `position` only for a transactional one."""

    events: list[str]
    # each event's scheduled time, epoch milliseconds (Kafka's `timestamp: scheduled`)
    times: list[int] | None = None
    # the indices in `events` where each produce() call begins (a transaction holds whole calls)
    call_starts: list[int] | None = None
    # how far the run has handed over once this batch is: {"worker": k, "ticks": n}, every
    # produce() call up to tick n (written into the transaction that holds those calls)
    position: dict | None = None
    # each event parsed (parse_event; None when not JSON), when a `when` rule parsed them:
    # an output that reads the events' fields may take these instead of parsing again
    docs: list | None = None


@dataclass(frozen=True)
class BuildContext:
    """What an output is built with besides its config: which process this is (a
    transactional id per replica and worker), whether it writes positions (--checkpoint),
    and the lock file --workers share stdout through."""

    identity: Identity = field(default_factory=Identity)
    positions: bool = False
    stdout_lock: str | None = None
    manifest: ManifestWriter | None = None  # --manifest: this process's part


class Output(Protocol):
    config: OutputConfig
    acks: Acks

    def start(self) -> None: ...
    def ready(self) -> bool: ...
    def write_batch(self, batch: Batch) -> None: ...
    def poll(self) -> None: ...  # serve acknowledgements while the pipeline waits
    def flush(self, timeout: float) -> int: ...
    def close(self) -> None: ...


@runtime_checkable
class TakesTimes(Protocol):
    """Gets `Batch.times` when `wants_times` (it may depend on the config)."""

    wants_times: bool


@runtime_checkable
class TakesCalls(Protocol):
    """Gets `Batch.call_starts` when `wants_calls`: it never takes part of a call."""

    wants_calls: bool


@runtime_checkable
class Transactional(Protocol):
    """Commits whole calls in transactions (counted in `Acks.transactions`) when
    `transactional`; each batch brings the position it reaches (`Batch.position`)."""

    transactional: bool

    def positions(self) -> PositionStore | None:
        """Its committed positions (built with positions), read to resume; else None."""
        ...


@runtime_checkable
class WaitsForRoom(Protocol):
    """May wait in write_batch for room in a queue (backpressure)."""

    def stop_within(self, seconds: float) -> None:
        """The run is stopping: from now on it has `seconds` in all, waiting for room and
        the final flush together; past that, a batch that finds no room fails as not sent."""
        ...


@runtime_checkable
class Recorded(Protocol):
    """Records what it acknowledged in the run manifest (--manifest)."""

    def record_to(self, writer: ManifestWriter, name: str) -> None:
        """Called once, before start(): from then on every acknowledged record goes to
        `writer` under the output `name` (off the per-event path as far as it can)."""
        ...


class OutputPlugin(Protocol):
    Config: type[OutputConfig]

    @staticmethod
    def build(config: OutputConfig, acks: Acks, context: BuildContext | None = None) -> Output: ...
