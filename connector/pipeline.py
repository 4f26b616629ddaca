"""inputs -> script -> outputs: scheduling, batching, backpressure, shutdown, summary.

One thread drives everything: it walks the merged schedule, calls produce(),
and hands batches to every output. Outputs acknowledge each event through their
`Acks`; the summary is read from those counters, never from "sent".
"""

from __future__ import annotations

import gc
import itertools
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from connector.config import Config, ConfigError, OutputEntry
from connector.events.script import Script, ScriptLoadError, ScriptStop, load_script
from connector.fields import resolve_time
from connector.inputs import INPUTS, merge
from connector.metrics import Histogram
from connector.outputs import OUTPUTS, Acks, Output, OutputError
from connector.spans import TraceChecker

__all__ = ["Pipeline", "RunOptions", "prepare", "schedule"]

log = logging.getLogger("connector")

LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass
class RunOptions:
    mode: str = "live"
    max_events: int | None = None
    duration: float | None = None
    batch_size: int = 1000
    worker: int = 0  # this process's index among `workers` (timestamps are split by it)
    workers: int = 1


def schedule(config: Config, mode: str, now: datetime) -> Iterator[tuple[datetime, int]]:
    """The merged (timestamp, input index) stream. Raises ConfigError for bad windows."""
    tz, streams, problems = config.tz, [], []
    for i, entry in enumerate(config.input):
        settings, where = entry.settings, f"input[{i}].{entry.plugin}"
        if settings.start == "never":
            problems.append(f"{where}.start: 'never' is for end (no end); start needs a time")
            continue
        start = resolve_time(settings.start, now, tz) if settings.start is not None else None
        end = resolve_time(settings.end, now, tz) if settings.end not in (None, "never") else None
        if mode == "backfill" and end is None:
            problems.append(f"{where}.end: required in backfill mode (where should it stop?)")
            continue
        if start is None or (mode == "live" and start < now):
            start = now.astimezone(tz)  # live: ticks already past are skipped
        if mode == "live" and end is not None and end <= start:
            problems.append(
                f"{where}.end: {end.isoformat()} has passed; nothing is left to run live "
                "(use --mode backfill to replay the window)"
            )
            continue
        if end is not None and end <= start:
            problems.append(
                f"{where}.end: {end.isoformat()} is not after start {start.isoformat()}"
            )
            continue
        ticks = INPUTS[entry.plugin].ticks(settings, start, end)
        if settings.count > 1:  # each timestamp, `count` times in a row
            ticks = _repeat_each(ticks, settings.count)
        streams.append(ticks)
    if problems:
        raise ConfigError(problems)
    return merge(streams)


def _repeat_each(ticks: Iterator[datetime], count: int) -> Iterator[datetime]:
    return itertools.chain.from_iterable(itertools.repeat(ts, count) for ts in ticks)


def prepare(config: Config, seed: int | None) -> Script:
    """Seed `random`, then load the script once (so the seed covers module-level draws)."""
    if seed is not None:
        random.seed(seed)
    try:
        return load_script(config.event.script)
    except ScriptLoadError as exc:
        raise ConfigError([f"event.script.path: {exc}"]) from None


def build_output(entry: OutputEntry, name: str) -> Output:
    settings = entry.settings
    acks = Acks(name, entry.plugin, settings.dead_letter)
    return OUTPUTS[entry.plugin].build(settings, acks)


@dataclass
class Pipeline:
    config: Config
    script: Script
    outputs: list[Output]
    options: RunOptions = field(default_factory=RunOptions)
    input_names: list[str] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)  # produce() calls, per input
    extra: list[int] = field(default_factory=list)  # per input: events - calls (see events)
    lag: Histogram = field(default_factory=lambda: Histogram(LAG_BUCKETS))
    broken: list[str] = field(default_factory=list)  # outputs that could not start
    stop_reason: str | None = None
    started: float = 0.0
    finished: float = 0.0
    alive: bool = True
    checker: TraceChecker | None = None
    deadline: float | None = None
    waiting: bool = False  # for the clock or for an output: not a stall
    _stop: list[str] = field(default_factory=list)
    _seen: tuple[int, float] = (0, 0.0)  # (calls, when) at the last stall check

    def __post_init__(self) -> None:
        if self.config.check_traces:
            self.checker = TraceChecker(self.config.span_mapping())
        self.input_names = self.input_names or self.config.input_names()
        self.calls = [0] * len(self.config.input)
        self.extra = [0] * len(self.config.input)

    @property
    def stopping(self) -> bool:
        return bool(self._stop)

    def request_stop(self, reason: str) -> None:
        """From a signal handler: stop scheduling; the run then flushes and summarises."""
        self.stop_reason = self.stop_reason or reason
        self._stop.append(reason)  # a list: the hot loop tests a local name, not an attribute

    def stalled_for(self) -> float:
        """Seconds without a produce() call, waits for the clock or an output not counted:
        a hung script shows here (read by /healthz, never by the hot loop)."""
        calls, now = sum(self.calls), time.monotonic()
        if calls != self._seen[0] or self.waiting or not self._seen[1]:
            self._seen = (calls, now)
            return 0.0
        return now - self._seen[1]

    @property
    def timestamps(self) -> list[int]:
        """Per input: `count` calls make one timestamp."""
        return [
            -(-c // e.settings.count) for c, e in zip(self.calls, self.config.input, strict=True)
        ]

    @property
    def events(self) -> list[int]:
        """Events produced, per input. The hot loop counts calls, and only for a call that
        does not return exactly one event does it note the difference in `extra`."""
        return [c + x for c, x in zip(self.calls, self.extra, strict=True)]

    @property
    def produced(self) -> int:
        return sum(self.events)

    def all_acks(self) -> list[Acks]:
        return [out.acks for out in self.outputs]

    def run(self, stream: Iterator[tuple[datetime, int]]) -> int:
        """Run to the end of the schedule (or a limit); return the exit code."""
        self.started = time.monotonic()
        if self.options.duration:
            self.deadline = self.started + self.options.duration
        try:
            self.waiting = True  # connecting (Kafka may take connect_timeout): no stall
            for out in self.outputs:
                try:
                    out.start()
                except OutputError as exc:
                    self.broken.append(f"{out.acks.name}: {exc}")
                    log.error("output %s cannot start: %s", out.acks.name, exc)
            self.waiting = False
            if self.broken:
                return self._shutdown()
            if self.options.workers > 1:
                w, n = self.options.worker, self.options.workers
                stream = itertools.islice(stream, w, None, n)
            if self.options.mode == "live":  # ticks that passed while outputs connected
                stream = itertools.dropwhile(lambda tick: tick[0].timestamp() < time.time(), stream)
            # Everything loaded so far (pydantic, grpc, the script's module) lives for the
            # whole run: keep the collector from walking it again on every full collection.
            gc.freeze()
            try:
                self._loop(stream)
            except ScriptStop as exc:
                self.stop_reason = f"script error (on_error: stop): {exc}"
                log.error("%s", self.stop_reason)
            except KeyboardInterrupt:  # a second signal while an output held us up
                self.stop_reason = (self.stop_reason or "") + "; interrupted"
                return self._shutdown(interrupted=True)
            except Exception as exc:  # a bug of ours or an output's: still flush and account
                self.stop_reason = f"pipeline error: {type(exc).__name__}: {exc}"
                self.broken.append(self.stop_reason)
                log.exception("the pipeline died; flushing what was produced")
            return self._shutdown()
        finally:
            self.alive = False
            self.finished = time.monotonic()

    def _loop(self, stream: Iterator[tuple[datetime, int]]) -> None:
        """The hot path: per call, only what the summary and metrics need, no method lookups."""
        live = self.options.mode == "live"
        tags = [e.settings.tags for e in self.config.input]
        calls, extra, stop = self.calls, self.extra, self._stop
        produce, checked, raised = self.script.produce, self.script.checked, self.script.raised
        batch: list[str] = []
        append, batch_size = batch.append, self._next_batch_size()
        try:
            for ts, i in stream:
                if stop:
                    break
                if live:
                    due = ts.timestamp()
                    if due > time.time():
                        if batch:  # nothing waits in a batch while the clock runs
                            self._hand_off(batch)
                            batch = []
                            append, batch_size = batch.append, self._next_batch_size()
                        if not self._wait_until(due):
                            break
                    lag = time.time() - due
                    self.lag.observe(lag if lag > 0 else 0.0)
                calls[i] += 1
                try:
                    result = produce({"timestamp": ts, "tags": tags[i]})
                except Exception as exc:
                    extra[i] -= 1  # no events (noted first: raised() may end the run)
                    raised(exc)
                    continue
                if type(result) is str:  # one event: counted by calls[i] alone
                    append(result)
                else:
                    extra[i] -= 1  # as above, until checked() has said how many
                    result = checked(result)
                    batch += result
                    extra[i] += len(result)
                if len(batch) >= batch_size:
                    self._trim_to_limit(batch, i)
                    self._hand_off(batch)
                    batch = []
                    append, batch_size = batch.append, self._next_batch_size()
                    if batch_size <= 0 or self._past_deadline():
                        break
        finally:  # what was produced is handed on, whatever ended the loop
            if batch:
                self._trim_to_limit(batch, i)
                self._hand_off(batch)

    def _next_batch_size(self) -> int:
        """Events until the next hand-off: the batch size, or fewer to stop at --max-events."""
        if self.options.max_events is None:
            return self.options.batch_size
        left = self.options.max_events - self.produced
        if left <= 0:
            self.stop_reason = f"--max-events {self.options.max_events} reached"
        return min(self.options.batch_size, left)

    def _trim_to_limit(self, batch: list[str], last_input: int) -> None:
        if self.options.max_events is not None and self.produced > self.options.max_events:
            excess = self.produced - self.options.max_events
            del batch[-excess:]
            self.extra[last_input] -= excess

    def _past_deadline(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.stop_reason = f"--duration {self.options.duration:g}s reached"
            return True
        return False

    def _hand_off(self, batch: list[str]) -> None:
        if self.checker is not None:
            self.checker.add(batch)
        self.waiting = True  # an output may hold us up (backpressure): that is no stall
        for out in self.outputs:
            out.acks.handed += len(batch)
            out.write_batch(batch)
        self.waiting = False

    def _wait_until(self, due: float) -> bool:
        """Sleep until `due` (wall clock), serving outputs; False when told to stop."""
        self.waiting = True
        try:
            while True:
                for out in self.outputs:
                    out.poll()
                if self._stop or self._past_deadline():
                    return False
                left = due - time.time()
                if left <= 0:
                    return True
                time.sleep(min(left, 0.1))
        finally:
            self.waiting = False

    def _shutdown(self, interrupted: bool = False) -> int:
        """Flush every output within its deadline, close, and settle the accounts."""
        for out in self.outputs:
            try:
                left = 0 if interrupted else out.flush(out.config.flush_timeout)
            except KeyboardInterrupt:  # a second signal: give up waiting, still account
                interrupted, left = True, out.acks.pending
                self.stop_reason = (self.stop_reason or "") + "; flush interrupted"
            if left:
                log.warning("output %s: %d events undelivered at shutdown", out.acks.name, left)
            out.close()
            out.acks.settle()
        failed = any(out.acks.failed for out in self.outputs)
        stopped_by_script = bool(self.stop_reason and self.stop_reason.startswith("script"))
        return 1 if failed or self.broken or stopped_by_script or interrupted else 0
