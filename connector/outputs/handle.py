"""Output handles: one wraps each output and owns what the run tracks about it.

In the style of the Collector's exporterhelper, a handle sits between the pipeline and
one output. It owns the output's `when` rule, its state (started, ready, could not
start, broken), its stop deadline and flush budget, and what the output can do beyond
the contract: its `Capabilities`, read once here when the output is built
(`build_output`). The pipeline holds a list of handles and never looks inside an output.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from connector.outputs import OUTPUTS
from connector.outputs.base import (
    NOT_SENT,
    Acks,
    Batch,
    BuildContext,
    Output,
    OutputError,
    OutputFatal,
    Recorded,
    TakesCalls,
    TakesTimes,
    Transactional,
    WaitsForRoom,
)
from connector.stats import OutputStats

if TYPE_CHECKING:
    from connector.checkpoint import PositionStore
    from connector.clock import Clock
    from connector.config import OutputEntry

__all__ = ["BROKEN", "Capabilities", "OutputHandle", "RunLog", "build_output"]

log = logging.getLogger("connector")

BROKEN = "output broken"  # events handed to an output after its write_batch raised


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an output does beyond the contract (see outputs/base.py), read once."""

    times: bool = False  # takes Batch.times
    calls: bool = False  # takes Batch.call_starts
    transactional: bool = False  # takes Batch.position; counts transactions
    waits: bool = False  # learns the stop deadline (stop_within)

    @classmethod
    def of(cls, output: Output) -> Capabilities:
        return cls(
            times=isinstance(output, TakesTimes) and bool(output.wants_times),
            calls=isinstance(output, TakesCalls) and bool(output.wants_calls),
            transactional=isinstance(output, Transactional) and bool(output.transactional),
            waits=isinstance(output, WaitsForRoom),
        )


class RunLog(Protocol):
    """What a handle tells the run it belongs to (the pipeline)."""

    interrupted: bool
    problems: list[str]
    bugs: list[str]

    def halt(self, reason: str) -> None: ...
    def interrupt(self, what: str) -> None: ...


def build_output(
    entry: OutputEntry,
    name: str,
    context: BuildContext = BuildContext(),  # noqa: B008 - a frozen value
) -> OutputHandle:
    settings = entry.settings
    acks = Acks(name, entry.plugin, settings.dead_letter, routed=settings.when is not None)
    output = OUTPUTS[entry.plugin].build(settings, acks, context)
    if context.manifest is not None and isinstance(output, Recorded):
        output.record_to(context.manifest, name)
    handle = OutputHandle(output)
    # under --workers every worker meets the same start failure: one of them says it (the
    # summary names each worker's reason)
    handle.says_start_errors = context.identity.worker == 0
    return handle


class OutputHandle:
    def __init__(self, output: Output):
        self.output = output
        self.caps = Capabilities.of(output)
        self.acks = output.acks
        self.name = output.acks.name
        when = output.config.when
        # (key, matcher) of its `when` rule; None: every event, nothing parsed
        self.rule: tuple[tuple, Callable[[Any], bool]] | None = (
            None if when is None else (when.key, when.matcher())
        )
        self.started = False
        self.ready = False  # started, and the last ready() said so
        self.could_not_start: str | None = None
        self.says_start_errors = True  # False in workers other than the first
        self.broken: str | None = None
        self.fatal: str | None = None  # the run must stop for it (fenced)
        self.flush_by: float | None = None  # clock.monotonic(), from the first stop request
        self.seen: list[str] | None = None  # the events of the last batch write() began on
        self.cut: list[str] | None = None  # a batch a second signal stopped in write_batch

    # -- starting and probing ----------------------------------------------------------
    def start(self, run: RunLog) -> None:
        """Start the output; a failure is named, never a traceback (unless it is a bug)."""
        try:
            self.output.start()
        except OutputError as exc:
            self.could_not_start = str(exc)
            level = logging.ERROR if self.says_start_errors else logging.DEBUG
            log.log(level, "output %s could not start: %s", self.name, exc)
        except Exception as exc:
            self.could_not_start = f"{type(exc).__name__}: {exc}"
            run.bugs.append(traceback.format_exc())
        else:
            self.started = self.ready = True

    def probe(self) -> None:
        """Ask a started output whether it is connected (costly for some: on demand)."""
        if self.started and self.broken is None:
            try:
                self.ready = bool(self.output.ready())
            except Exception:  # a probe never takes the run down
                self.ready = False

    def positions(self) -> PositionStore | None:
        """Where a transactional output keeps its committed positions (resume reads it)."""
        return self.output.positions() if self.caps.transactional else None

    # -- the hot path ------------------------------------------------------------------
    def write(self, batch: Batch, total: int) -> bool:
        """Hand over `batch` (what its rule selected of `total` events, as `view` has it).
        An output that raises has failed what it had not accepted; it is broken from then
        on. False: it broke or was fenced just now (the pipeline then looks at every handle)."""
        acks, events = self.acks, batch.events
        n = len(events)
        # No call from here to write_batch: a second signal (raised where Python runs
        # handlers: calls, a function's entry) comes before `seen`, and the caller knows
        # this output never saw the batch, or after `handed`, inside the try below.
        self.seen = events
        if self.rule is not None:
            acks.filtered += total - n
        if not n and (batch.position is None or self.broken is not None):
            return True  # nothing for it (a transactional one still learns the position)
        acks.handed += n
        if self.broken is not None:
            acks.fail_all(BROKEN, events)
            return True
        try:
            self.output.write_batch(batch)
        except KeyboardInterrupt:
            # A second signal, maybe at write_batch's entry, before it took any event: the
            # batch is failed as not sent with its values at shutdown, unless it was taken.
            self.cut = events
            raise
        except OutputFatal as exc:  # the output has accounted for its events
            self._fence(exc)
            return False
        except Exception as exc:
            self.broken = f"{type(exc).__name__}: {exc}"
            log.error(
                "output %s broke, a bug, please report: %s; its later events fail as '%s'",
                self.name,
                self.broken,
                BROKEN,
                exc_info=exc,
            )
            return False
        return True

    def view(self, batch: Batch) -> Batch:
        """The batch without what this output does not take (times, call starts, position)."""
        caps = self.caps
        return Batch(
            batch.events,
            batch.times if caps.times else None,
            batch.call_starts if caps.calls else None,
            batch.position if caps.transactional else None,
            batch.docs,
        )

    def not_sent(self, batch: Batch, total: int) -> None:
        """A second signal stopped the hand-off before this output: it never sees the batch."""
        self.acks.filtered += total - len(batch.events)
        self.acks.handed += len(batch.events)
        self.acks.fail_all(NOT_SENT, batch.events)

    def poll(self) -> bool:
        """Serve acknowledgements while the run waits; False: fenced."""
        try:
            self.output.poll()
        except OutputFatal as exc:
            self._fence(exc)
            return False
        return True

    # -- checkpoints, stopping, shutdown -----------------------------------------------
    def settle(self, timeout: float) -> bool:
        """Wait (up to `timeout`) for what it was handed; False: fenced meanwhile."""
        if self.broken is None and self.acks.pending > 0:
            try:
                self.output.flush(timeout)
            except OutputFatal as exc:
                self._fence(exc)
                return False
        return True

    def stop(self, now: float) -> None:
        """The first stop request: from `now`, the output has flush_timeout in all, waiting
        for room in its queue and the final flush together."""
        budget = self.output.config.flush_timeout
        self.flush_by = now + budget
        if self.caps.waits:
            self.output.stop_within(budget)

    def shutdown(self, run: RunLog, clock: Clock) -> None:
        """Flush within the budget left, close, and settle the accounts."""
        output, name = self.output, self.name
        try:
            if run.interrupted:
                left = self.acks.pending
            else:
                by = self.flush_by
                budget = output.config.flush_timeout
                left = output.flush(budget if by is None else max(0.0, by - clock.monotonic()))
            if left:
                log.warning("output %s: %d events undelivered at shutdown", name, left)
        except KeyboardInterrupt:  # a second signal: give up waiting, still account
            run.interrupt("flush interrupted")
        except OutputFatal as exc:
            self._fence(exc)
            run.halt(self.fatal or "")
        except Exception as exc:
            self._bug(run, "flush", exc)
        try:
            output.close()
        except KeyboardInterrupt:
            run.interrupt("close interrupted")
        except Exception as exc:
            self._bug(run, "close", exc)
        self.acks.settle(self.cut)

    def stats(self) -> OutputStats:
        return OutputStats.of(
            self.acks,
            transactional=self.caps.transactional,
            started=self.started,
            ready=self.ready and self.broken is None,
            could_not_start=self.could_not_start,
            broken=self.broken,
        )

    def _fence(self, exc: Exception) -> None:
        """It cannot go on (fenced): the run stops and exits 1, naming why."""
        if self.broken is None:
            self.broken = str(exc)
            log.error("output %s: %s; stopping", self.name, exc)
        self.fatal = f"output {self.name}: {exc}"

    def _bug(self, run: RunLog, step: str, exc: Exception) -> None:
        run.problems.append(f"output {self.name}: {step} failed: {type(exc).__name__}: {exc}")
        run.bugs.append(traceback.format_exc())
