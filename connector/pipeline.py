"""inputs -> script -> outputs: the loop, stopping, and the snapshot.

One thread drives everything: it walks the schedule (inputs/schedule.py), calls
produce(), and hands each batch to the output handles (outputs/handle.py), which own
every output's routing, state and deadlines. Outputs acknowledge each event through
their `Acks`; the summary is read from those counters, never from "sent". Checkpoints
(checkpoint.py, settling.py) and the trace check (trace_check.py) are features the loop
calls into. The snapshot is built in snapshot.py, the schedule anchored in anchoring.py.
"""

from __future__ import annotations

import gc
import logging
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from connector.anchoring import Anchoring
from connector.checkpoint import Checkpointing, PositionStore
from connector.clock import SYSTEM, Clock
from connector.config import Config
from connector.events.script import ProduceHung, Script, ScriptStop
from connector.inputs.schedule import Schedule, schedule
from connector.limits import Limits
from connector.options import RunOptions, prepare
from connector.outputs.base import Batch, OutputError
from connector.outputs.fanout import Fanout
from connector.outputs.handle import OutputHandle
from connector.pacing import Pacer
from connector.settling import Settling
from connector.snapshot import Snapshot
from connector.trace_check import TraceCheck

__all__ = ["Pipeline", "RunOptions", "prepare"]

log = logging.getLogger("connector")


@dataclass
class Pipeline(Snapshot, Anchoring, Settling):
    config: Config
    script: Script
    outputs: list[OutputHandle]
    options: RunOptions = field(default_factory=RunOptions)
    # Under --workers: reports "ready" to the parent and returns its anchor (None: stop).
    anchor: Callable[[], datetime | None] | None = None
    positions: PositionStore | None = None  # --checkpoint: settled positions go here
    clock: Clock = SYSTEM  # every wait and every `now` of the run (a FakeClock in tests)

    def __post_init__(self) -> None:
        n = len(self.config.input)
        self.input_names = self.config.input_names()
        self.calls, self.extra = [0] * n, [0] * n  # per input: calls, and events - calls
        self.stop_reason: str | None = None
        self.script_stopped = self.interrupted = self.exhausted = False
        self.problems: list[str] = []
        self.bugs: list[str] = []  # tracebacks, shown after the summary
        self.started = self.finished = 0.0
        self.alive = self.starting = True
        self.waiting = False  # for the clock or for an output: not a stall
        o = self.options
        self.limits = Limits(o.max_events, o.duration, o.batch_size, self.clock)
        self.checker = TraceCheck(self.config) if self.config.check_traces else None
        self.schedule: Schedule | None = None  # anchored, once every output is ready
        self.checkpoints = None
        if self.positions is not None and o.checkpoint_every is not None:
            self.checkpoints = Checkpointing(
                self.positions, o.checkpoint_every, o.identity.worker, self.clock
            )
        self._stop: list[str] = []  # a list: the hot loop tests a local name
        self._fan = Fanout(self.outputs, self)
        self._pace = Pacer(self.clock, self._fan.poll, self._stop, self._past_deadline)
        self._seen = (0, 0.0)  # (calls, when) at the last stall check
        self._ticks0 = 0  # ticks before this run's first call (replayed)
        self._cut_call = False  # --max-events cut the last call: it is not handed whole
        self._handed_ticks = 0  # ticks whose events have all been handed to the outputs
        self._worker = o.identity.worker
        # --workers: told at each hand-off (its size) and after it (0), so that the parent
        # knows what a worker killed without a word had handed over (ledger.Ledger)
        self.ledger: Callable[[int], None] | None = None

    # -- stopping ----------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return bool(self._stop)

    def request_stop(self, reason: str) -> None:
        """From a signal handler: stop scheduling; the run then flushes and summarises.
        From the first request, each output has its flush_timeout in all (its handle)."""
        if not self._stop:
            self._fan.stop(self.clock.monotonic())
        self.stop_reason = self.stop_reason or reason
        self._stop.append(reason)

    def halt(self, reason: str) -> None:
        """The run cannot go on (an output fenced, every output broken): stop, exit 1."""
        self.stop_reason = self.stop_reason or reason
        self._stop.append(self.stop_reason)

    def interrupt(self, what: str) -> None:
        self.interrupted = True
        self.stop_reason = f"{self.stop_reason or 'stopped'}; {what}"

    # -- the snapshot ------------------------------------------------------------------
    def probe_ready(self) -> None:
        """Ask each started output whether it is connected (costly for some: on demand)."""
        if self.alive and not self.starting:
            self._fan.probe()

    # -- the run -----------------------------------------------------------------------
    def run(self, plan: Schedule | datetime) -> int:
        """Start the outputs, then run the schedule (a datetime: the config's, resolved
        then; live mode: from the moment every output is ready) to its end or a limit;
        flush; return the exit code."""
        if isinstance(plan, datetime):
            plan = schedule(self.config, self.options.mode, plan, self.options.identity)
        self.started = self.clock.monotonic()
        try:
            try:
                with self._waiting():  # connecting (Kafka may take connect_timeout): no stall
                    started = self._fan.start(self._stop)
                if not started:
                    self.stop_reason = "output could not start"
                elif (stream := self._anchored(plan)) is not None:
                    if self.checkpoints is not None:
                        self._resume(stream)
                    # Everything loaded so far (pydantic, grpc, the script's module) lives
                    # for the whole run: keep full collections from walking it again.
                    gc.freeze()
                    self._loop(stream)
                    self._linger_to_deadline()
            except ScriptStop as exc:
                self.script_stopped = True
                self.stop_reason = f"script error (on_error: stop): {exc}"
                log.error("%s", self.stop_reason)
            except KeyboardInterrupt:  # a second signal while an output held us up
                self.interrupt("interrupted")
            except OutputError as exc:  # a fatal output error outside the hand-off
                self.stop_reason = self.stop_reason or str(exc)
                self.problems.append(str(exc))
                log.error("%s", exc)
            except Exception as exc:  # a bug of ours: still flush and account
                self.stop_reason = f"internal error: {type(exc).__name__}: {exc}"
                self.bugs.append(traceback.format_exc())
            self.waiting = True  # flushing is no stall
            self._fan.shutdown(self.clock)
            if self.checker is not None:
                self._check_traces(self.checker.finish)
            if self.checkpoints is not None and self.checkpoints.next_at:
                if not self.interrupted:  # flushed: all settled now
                    self.checkpoints.save(self._handed_ticks)
                self.checkpoints.report(self.clock.monotonic() - self.started)
            return self.snapshot().exit_code()
        finally:
            self.alive = False
            self.finished = self.clock.monotonic()

    @contextmanager
    def _waiting(self) -> Iterator[None]:
        """For the clock or an output, for connecting or an anchor: not a stall."""
        self.waiting = True
        try:
            yield
        finally:
            self.waiting = False

    def _linger_to_deadline(self) -> None:
        """Live, with --duration: the run lasts until the deadline, not its last timestamp."""
        lingers = self.limits.cut and not self._stop and self.stop_reason is None
        if lingers and self._wait_until(self.limits.wall_deadline()):
            self.stop_reason = self.limits.duration_reached

    def _loop(self, stream: Iterator[tuple[datetime, int]]) -> None:
        """The hot path: per call, only what the summary and metrics need, no method lookups."""
        live = self.options.mode == "live"
        tags = [e.settings.tags for e in self.config.input]
        calls, extra, stop, pace = self.calls, self.extra, self._stop, self._pace
        observe = pace.lag.observe
        produce, checked, raised = self.script.produce, self.script.checked, self.script.raised
        batch: list[str] = []
        append, batch_size = batch.append, self._next_batch_size()
        # (index of the call's first event in the batch, its timestamp), per call: only
        # when an output stamps records with the scheduled time or keeps calls whole
        marks: list[tuple[int, datetime]] | None = [] if self._fan.marks else None
        checkpoints = self.checkpoints
        wall, monotonic = self.clock.time, self.clock.monotonic
        i = 0
        try:
            for ts, i in stream:
                if stop:
                    break
                if live:
                    due = ts.timestamp()
                    if due > wall():
                        if batch:  # nothing waits in a batch while the clock runs
                            full, batch = batch, []  # handed over once, whatever happens
                            append, batch_size = batch.append, self._next_batch_size()
                            self._hand_off(full, marks)
                            marks = None if marks is None else []
                        if not self._wait_until(due):
                            break
                    pace.due = due
                    lag = wall() - due
                    observe(lag if lag > 0 else 0.0)
                calls[i] += 1
                if marks is not None:
                    marks.append((len(batch), ts))
                try:
                    result = produce({"timestamp": ts, "tags": tags[i]})
                except BaseException as exc:  # SystemExit too: the script's, not the run's
                    extra[i] -= 1  # no events (noted first: raised() may end the run)
                    if isinstance(exc, KeyboardInterrupt):  # a second signal: stop waiting
                        raise
                    if isinstance(exc, ProduceHung):  # a stop's grace ran out in the call
                        self.stop_reason = exc.reason
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
                    self._trim_to_limit(batch, i, marks)
                    full, batch = batch, []  # handed over once, whatever happens
                    append, batch_size = batch.append, self._next_batch_size()
                    self._hand_off(full, marks)
                    marks = None if marks is None else []
                    if checkpoints is not None and monotonic() >= checkpoints.next_at:
                        self._settle()
                    if batch_size <= 0 or (not live and self._past_deadline()):
                        break
            else:
                self.exhausted = not stop
        finally:  # what was produced is handed on, whatever ended the loop
            if batch:
                self._trim_to_limit(batch, i, marks)
                full, batch = batch, []
                self._hand_off(full, marks)
            # every call made is handed now (a call without events needs no hand-off)
            self._handed_ticks = self._ticks0 + sum(self.calls) - self._cut_call

    def _next_batch_size(self) -> int:
        if self.limits.max_events is None:  # counting what was produced costs: not per batch
            return self.options.batch_size
        size = self.limits.next_batch(self.produced)
        if size <= 0:
            self.stop_reason = self.limits.events_reached
        return size

    def _trim_to_limit(self, batch: list[str], last_input: int, marks: list | None) -> None:
        if self.limits.max_events is None:
            return
        excess = self.limits.excess(self.produced)
        if excess:
            if self._fan.calls and marks:  # never half a call: all of the last one goes
                excess = len(batch) - marks.pop()[0]
            del batch[len(batch) - excess :]
            self.extra[last_input] -= excess
            self._cut_call = True  # the last call is not all handed: not in the position

    def _past_deadline(self) -> bool:
        if self.limits.past_deadline():
            self.stop_reason = self.stop_reason or self.limits.duration_reached
            return True
        return False

    def _hand_off(self, events: list[str], marks: list | None = None) -> None:
        """Each handle gets the batch once, or what its `when` rule selects of it."""
        fan, ticks = self._fan, self._ticks0 + sum(self.calls) - self._cut_call
        position = {"worker": self._worker, "ticks": ticks} if fan.positional else None
        ledger = self.ledger
        if ledger is not None:
            ledger(len(events))
        self.waiting = True  # an output may hold us up (backpressure): no stall
        try:
            fan.hand_off(events, marks, position, None if self.checker is None else self._trace)
        finally:
            self.waiting = False
        if ledger is not None:
            ledger(0)
        self._handed_ticks = ticks

    def _trace(self, batch: Batch, chosen: list[Batch] | None) -> None:
        self._check_traces(self.checker.add_selected, batch, chosen)

    def _wait_until(self, due: float) -> bool:
        with self._waiting():
            return self._pace.wait_until(due)

    def _check_traces(self, step: Callable[..., object], *args: object) -> None:
        """The trace check is a report, never a reason to lose the run: a bug in it is
        recorded (shown after the summary) and the check is dropped."""
        try:
            step(*args)
        except Exception:
            self.bugs.append(traceback.format_exc())
            self.checker = None
