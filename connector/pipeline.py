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
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from connector.clock import SYSTEM, Clock
from connector.clock import now as clock_now
from connector.config import Config, ConfigError, OutputEntry
from connector.events.script import (
    ProduceHung,
    Script,
    ScriptLoadError,
    ScriptStop,
    load_script,
)
from connector.fields import resolve_time
from connector.inputs import INPUTS, merge, rate
from connector.otlp.check import TraceChecker
from connector.outputs import OUTPUTS, Acks, Output, OutputError
from connector.outputs.base import NOT_SENT, OutputFatal, parse_event
from connector.stats import LAG_BUCKETS, Histogram, OutputStats, RunStats

__all__ = ["Pipeline", "RunOptions", "prepare", "schedule"]

log = logging.getLogger("connector")

BROKEN = "output broken"  # events handed to an output after its write_batch raised
SETTLE_TIMEOUT = 5.0  # seconds a checkpoint waits for acknowledgements before trying later


def _fatal(exc: BaseException) -> bool:
    """An output's error that ends the run (a fenced transactional producer)."""
    return isinstance(exc, OutputFatal)


@dataclass
class RunOptions:
    mode: str = "live"
    max_events: int | None = None
    duration: float | None = None
    batch_size: int = 1000
    worker: int = 0  # this process's index among `workers` (timestamps are split by it)
    workers: int = 1
    # --checkpoint: settle and report the position this often (seconds; None: never), and
    # the ticks of this worker's schedule already settled by an earlier run (replayed)
    checkpoint_every: float | None = None
    resume: int | None = None


def schedule(
    config: Config,
    mode: str,
    now: datetime,
    origins: list[datetime | None] | None = None,
    ends: list[datetime | None] | None = None,
) -> Iterator[tuple[datetime, int]]:
    """The merged (timestamp, input index) stream. Raises ConfigError for bad windows.
    `origins` and `ends`, when given, receive where each input's schedule counts from
    and where it ends (None: no end)."""
    tz, streams, problems = config.tz, [], []
    origins = [] if origins is None else origins
    ends = [] if ends is None else ends
    origins[:] = ends[:] = [None] * len(config.input)
    for i, entry in enumerate(config.input):
        settings, where = entry.settings, f"input[{i}].{entry.plugin}"
        if settings.start == "never":
            problems.append(f"{where}.start: 'never' is for end (no end); start needs a time")
            continue
        start = resolve_time(settings.start, now, tz) if settings.start is not None else None
        end = resolve_time(settings.end, now, tz) if settings.end not in (None, "never") else None
        plugin = INPUTS[entry.plugin]
        origin = start or now.astimezone(tz)  # where the input's own shape counts from
        implied = plugin.implied_end(settings, origin) if hasattr(plugin, "implied_end") else None
        if end is not None and implied is not None and end != implied:
            problems.append(
                f"{where}.end: {end.isoformat()} disagrees with the end of the stages, "
                f"{implied.isoformat()} (start + {implied - origin}); drop end, "
                "or set repeat: true to run the stages again until end"
            )
            continue
        end = end or implied
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
        ticks = plugin.ticks(settings, start, end, origin)
        origins[i], ends[i] = origin, end
        if settings.count > 1:  # each timestamp, `count` times in a row
            ticks = _repeat_each(ticks, settings.count)
        streams.append(ticks)
    if problems:
        raise ConfigError(problems)
    return merge(streams)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _event_times(marks: list[tuple[int, datetime]], n: int) -> list[int]:
    """Each event's scheduled time in epoch milliseconds, from the calls' marks."""
    times: list[int] = []
    for (first, ts), (following, _) in zip(marks, [*marks[1:], (n, None)], strict=False):
        times += [(ts - _EPOCH) // _MS] * (min(following, n) - first)
    return times


_Selection = tuple[list[str], list[int] | None, list[int] | None]


def _starts_of(keep: list[int], starts: list[int] | None) -> list[int] | None:
    """The call starts among the kept events: where a kept event's call differs from the
    previous kept event's."""
    if starts is None:
        return None
    out, call, last = [], -1, None
    for j, i in enumerate(keep):
        while call + 1 < len(starts) and starts[call + 1] <= i:
            call += 1
        if call != last:
            out.append(j)
            last = call
    return out


def _repeat_each(ticks: Iterator[datetime], count: int) -> Iterator[datetime]:
    return itertools.chain.from_iterable(itertools.repeat(ts, count) for ts in ticks)


def traced_output(config: Config) -> int | None:
    """The output whose spans the trace check reads (as Config.span_mapping() picks it):
    the first one sending traces over OTLP. None: none does."""
    for k, entry in enumerate(config.output):
        settings = entry.settings
        traces = getattr(settings, "signal", None) == "traces"
        if traces and getattr(settings, "encoding", "otlp") != "raw":
            return k
    return None


def trace_events(config: Config, events: list[str]) -> list[str]:
    """The events the trace check reads: with a `when` on the traced output, only those it
    selects (logs routed elsewhere are no spans)."""
    k = traced_output(config)
    when = None if k is None else config.output[k].settings.when
    if when is None:
        return events
    match = when.matcher()
    return [e for e in events if match(parse_event(e))]


def _route(out: Output) -> tuple[tuple, Callable[[object], bool]] | None:
    when = getattr(out.config, "when", None)
    return None if when is None else (when.key, when.matcher())


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
    acks = Acks(name, entry.plugin, settings.dead_letter, routed=settings.when is not None)
    return OUTPUTS[entry.plugin].build(settings, acks)


@dataclass
class Pipeline:
    config: Config
    script: Script
    outputs: list[Output]
    options: RunOptions = field(default_factory=RunOptions)
    # Under --workers: reports "ready" to the parent and returns its anchor (None: stop).
    anchor: Callable[[], datetime | None] | None = None
    input_names: list[str] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)  # produce() calls, per input
    extra: list[int] = field(default_factory=list)  # per input: events - calls (see events)
    lag: Histogram = field(default_factory=lambda: Histogram(LAG_BUCKETS))
    stop_reason: str | None = None
    script_stopped: bool = False
    interrupted: bool = False
    problems: list[str] = field(default_factory=list)
    bugs: list[str] = field(default_factory=list)  # tracebacks, shown after the summary
    started: float = 0.0
    finished: float = 0.0
    alive: bool = True
    starting: bool = True
    checker: TraceChecker | None = None
    deadline: float | None = None
    waiting: bool = False  # for the clock or for an output: not a stall
    # --checkpoint: called with each settled position ({"worker": k, "ticks": n}: every
    # call up to tick n has all its events acknowledged by every output)
    on_position: Callable[[dict], None] | None = None
    replayed: int = 0  # produce() calls replayed (not sent) to resume after a checkpoint
    position: dict | None = None  # the last settled position
    exhausted: bool = False  # the schedule ran to its end (not cut by a limit or a stop)
    clock: Clock = SYSTEM  # every wait and every `now` of the run (a FakeClock in tests)
    _stop: list[str] = field(default_factory=list)
    _cut: list[bool] = field(default_factory=list)  # live --duration cut the schedule
    _seen: tuple[int, float] = (0, 0.0)  # (calls, when) at the last stall check
    _origins: list[datetime | None] = field(default_factory=list)  # per input (schedule())
    _due: list[float] = field(default_factory=lambda: [0.0])  # live: the last tick's due time
    _sleeping: bool = False  # waiting for the clock: on schedule, not behind

    def __post_init__(self) -> None:
        if self.config.check_traces:
            self.checker = TraceChecker(self.config.span_mapping())
        self.input_names = self.input_names or self.config.input_names()
        self.calls = [0] * len(self.config.input)
        self.extra = [0] * len(self.config.input)
        n = len(self.outputs)
        # an output with `wants_times` gets each event's scheduled time (record timestamps)
        self._wants_times = any(getattr(o, "wants_times", False) for o in self.outputs)
        # transactional outputs take whole calls (`calls`: where each begins) and are told
        # the position each hand-off reaches (`mark`), to commit it with the events
        self._wants_calls = any(getattr(o, "wants_calls", False) for o in self.outputs)
        self._marking = [o for o in self.outputs if getattr(o, "transactional", False)]
        for out in self._marking:  # write the position into each transaction
            out.positions = self.options.checkpoint_every is not None
        self._ticks0 = 0  # ticks before this run's first call (replayed)
        self._cut_call = False  # --max-events cut the last call: it is not handed whole
        self._handed_ticks = 0  # ticks whose events have all been handed to the outputs
        self._next_checkpoint = 0.0
        self._settled = [0, 0.0]  # checkpoints taken, seconds they waited (what they cost)
        self._started = [False] * n
        self._ready = [False] * n
        self._could_not_start: list[str | None] = [None] * n
        self._broken: list[str | None] = [None] * n
        self._flush_by: list[float | None] = [None] * n  # monotonic, from the first stop
        # per output: its `when` rule as (key, matcher), or None (every event, no parsing)
        self._routes = [_route(out) for out in self.outputs]
        self._routing = any(r is not None for r in self._routes)
        self._traced = traced_output(self.config)  # its selection feeds the trace check

    @property
    def stopping(self) -> bool:
        return bool(self._stop)

    def request_stop(self, reason: str) -> None:
        """From a signal handler: stop scheduling; the run then flushes and summarises.
        From the first request, each output has flush_timeout in all to finish: waiting
        for room in its queue and the final flush together."""
        if not self._stop:
            now = self.clock.monotonic()
            for k, out in enumerate(self.outputs):
                self._flush_by[k] = now + out.config.flush_timeout
                out.acks.stop_deadline = self._flush_by[k]
        self.stop_reason = self.stop_reason or reason
        self._stop.append(reason)  # a list: the hot loop tests a local name, not an attribute

    def _stalled_for(self) -> float:
        """Seconds without a produce() call, waits for the clock or an output not counted:
        a hung script shows here (read by /healthz, never by the hot loop)."""
        calls, now = sum(self.calls) + self.replayed, self.clock.monotonic()
        if calls != self._seen[0] or self.waiting or not self._seen[1]:
            self._seen = (calls, now)
            return 0.0
        return now - self._seen[1]

    @property
    def events(self) -> list[int]:
        """Events produced, per input. The hot loop counts calls, and only for a call that
        does not return exactly one event does it note the difference in `extra`."""
        return [c + x for c, x in zip(self.calls, self.extra, strict=True)]

    @property
    def produced(self) -> int:
        return sum(self.events)

    def probe_ready(self) -> None:
        """Ask each started output whether it is connected (costly for some: on demand)."""
        if not self.alive or self.starting:
            return
        for k, out in enumerate(self.outputs):
            if self._started[k] and self._broken[k] is None:
                try:
                    self._ready[k] = bool(out.ready())
                except Exception:  # a probe never takes the run down
                    self._ready[k] = False

    def snapshot(self) -> RunStats:
        """This run's RunStats, copied (safe from any thread)."""
        outputs = [
            OutputStats.of(
                out.acks,
                transactional=getattr(out, "transactional", False),
                started=self._started[k],
                ready=self._ready[k] and self._broken[k] is None,
                could_not_start=self._could_not_start[k],
                broken=self._broken[k],
            )
            for k, out in enumerate(self.outputs)
        ]
        checker = self.checker
        return RunStats(
            mode=self.options.mode,
            input_names=list(self.input_names),
            counts=[e.settings.count for e in self.config.input],
            lag=self.lag.copy(),
            outputs=outputs,
            calls=list(self.calls),
            events=self.events,
            script_errors=Counter(dict(self.script.errors)),
            script_stopped=self.script_stopped,
            started=self.started,
            finished=self.finished,
            alive=self.alive,
            starting=self.starting,
            stalled=self._stalled_for() if self.alive else 0.0,
            stop_reason=self.stop_reason,
            interrupted=self.interrupted,
            problems=list(self.problems),
            bugs=list(self.bugs),
            traces=None if checker is None else list(checker.reports),
            unreadable_spans=0 if checker is None else checker.unreadable,
            target_rates=self._target_rates(),
            behind=self._behind(),
            replayed=self.replayed,
            position=None if self.position is None else dict(self.position),
            exhausted=self.exhausted,
        )

    def _target_rates(self) -> list[float | None]:
        """Per rate input, this process's share of its scheduled rate now."""
        now, share = clock_now(self.clock, self.config.tz), self.options.workers
        return [
            None
            if e.plugin != "rate" or origin is None
            else rate.target_rate(e.settings, origin, now) / share
            if self.alive
            else 0.0
            for e, origin in itertools.zip_longest(self.config.input, self._origins)
        ]

    def _behind(self) -> float:
        due = self._due[0]
        if self.options.mode != "live" or self._sleeping or not due or not self.alive:
            return 0.0
        return max(0.0, self.clock.time() - due)

    def run(self, now: datetime) -> int:
        """Start the outputs, then run the schedule from `now` (live mode: from the moment
        every output is ready) to its end or a limit; flush; return the exit code."""
        self.started = self.clock.monotonic()
        try:
            try:
                if not self._start_outputs():
                    self.stop_reason = "output could not start"
                else:
                    stream = self._anchored(now)
                    if stream is not None and self.options.checkpoint_every is not None:
                        stream = self._resume(stream)
                    if stream is not None:
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
                self._interrupt("interrupted")
            except OutputError as exc:  # a fatal output error outside the hand-off
                self.stop_reason = self.stop_reason or str(exc)
                self.problems.append(str(exc))
                log.error("%s", exc)
            except Exception as exc:  # a bug of ours: still flush and account
                self.stop_reason = f"internal error: {type(exc).__name__}: {exc}"
                self.bugs.append(traceback.format_exc())
            self._shutdown()
            if self._next_checkpoint and not self.interrupted:  # flushed: all settled now
                self._report(self._handed_ticks)
            if self._next_checkpoint:
                log.info(
                    "checkpoints: %d taken, %.3f s of %.3f s spent on them",
                    self._settled[0],
                    self._settled[1],
                    self.clock.monotonic() - self.started,
                )
            return self.snapshot().exit_code()
        finally:
            self.alive = False
            self.finished = self.clock.monotonic()

    def _interrupt(self, what: str) -> None:
        self.interrupted = True
        self.stop_reason = f"{self.stop_reason or 'stopped'}; {what}"

    def _start_outputs(self) -> bool:
        """True when every output started; each failure is named, none is a traceback."""
        self.waiting = True  # connecting (Kafka may take connect_timeout): no stall
        try:
            for k, out in enumerate(self.outputs):
                if self._stop:
                    break
                try:
                    out.start()
                except OutputError as exc:
                    self._could_not_start[k] = str(exc)
                    log.error("output %s could not start: %s", out.acks.name, exc)
                except Exception as exc:
                    self._could_not_start[k] = f"{type(exc).__name__}: {exc}"
                    self.bugs.append(traceback.format_exc())
                else:
                    self._started[k] = self._ready[k] = True
        finally:
            self.waiting = False
        return not any(self._could_not_start)

    def _anchored(self, now: datetime) -> Iterator[tuple[datetime, int]] | None:
        """The schedule, anchored: in live mode `start: now`, relative times and --duration
        count from the moment every output (of every worker) is ready. None: stop."""
        if self.anchor is not None:
            self.waiting = True
            try:
                anchor = self.anchor()
            finally:
                self.waiting = False
        else:
            anchor = clock_now(self.clock, self.config.tz)
        self.starting = False
        if anchor is None or self._stop:
            return None
        live = self.options.mode == "live"
        try:
            stream = schedule(
                self.config, self.options.mode, anchor if live else now, self._origins
            )
        except ConfigError as exc:  # an end that passed while the outputs connected
            self.problems += exc.problems
            self.stop_reason = "nothing left to schedule"
            log.error("nothing left to schedule: %s", "; ".join(exc.problems))
            return None
        if self.options.workers > 1:
            w, n = self.options.worker, self.options.workers
            stream = itertools.islice(stream, w, None, n)
        if self.options.duration:
            end = anchor.timestamp() + self.options.duration
            self.deadline = self.clock.monotonic() + (end - self.clock.time())
            if live:  # exact: no timestamp at or past the end, whatever the lag
                stream = itertools.takewhile(lambda tick: self._before(tick, end), stream)
        return stream

    def _resume(
        self, stream: Iterator[tuple[datetime, int]]
    ) -> Iterator[tuple[datetime, int]] | None:
        """Skip what an earlier run settled, calling produce() for it without sending (to
        rebuild the script's state and its --seed random stream). Transactional outputs
        say themselves what they committed; the file's position is for the others."""
        ticks = self.options.resume or 0
        committed = []
        self.waiting = True  # reading a committed position may take a moment
        try:
            for out in self._marking:
                position = out.committed_position()
                committed.append(0 if position is None else int(position.get("ticks", 0)))
        finally:
            self.waiting = False
        if committed:  # the outputs' own word wins; the file only caches it
            rest = len(committed) < len(self.outputs)
            ticks = min([*committed, ticks] if rest else committed)
        tags = [e.settings.tags for e in self.config.input]
        produce, stop = self.script.produce, self._stop
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
        self._ticks0 = self._handed_ticks = ticks
        self._next_checkpoint = self.clock.monotonic() + self.options.checkpoint_every
        return stream

    def _before(self, tick: tuple[datetime, int], end: float) -> bool:
        if tick[0].timestamp() < end:
            return True
        self._cut.append(True)
        return False

    def _linger_to_deadline(self) -> None:
        """Live, with --duration: the run lasts until the deadline, not its last timestamp."""
        if self._cut and not self._stop and self.stop_reason is None:
            due = self.clock.time() + self.deadline - self.clock.monotonic()
            if self._wait_until(due):
                self.stop_reason = f"--duration {self.options.duration:g}s reached"

    def _loop(self, stream: Iterator[tuple[datetime, int]]) -> None:
        """The hot path: per call, only what the summary and metrics need, no method lookups."""
        live = self.options.mode == "live"
        tags = [e.settings.tags for e in self.config.input]
        calls, extra, stop, last_due = self.calls, self.extra, self._stop, self._due
        produce, checked, raised = self.script.produce, self.script.checked, self.script.raised
        batch: list[str] = []
        append, batch_size = batch.append, self._next_batch_size()
        # (index of the call's first event in the batch, its timestamp), per call: only
        # when an output stamps records with the scheduled time
        marks: list[tuple[int, datetime]] | None = (
            [] if self._wants_times or self._wants_calls else None
        )
        every = self.options.checkpoint_every
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
                    last_due[0] = due
                    lag = wall() - due
                    self.lag.observe(lag if lag > 0 else 0.0)
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
                    if every is not None and monotonic() >= self._next_checkpoint:
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
        """Events until the next hand-off: the batch size, or fewer to stop at --max-events."""
        if self.options.max_events is None:
            return self.options.batch_size
        left = self.options.max_events - self.produced
        if left <= 0:
            self.stop_reason = f"--max-events {self.options.max_events} reached"
        return min(self.options.batch_size, left)

    def _trim_to_limit(self, batch: list[str], last_input: int, marks: list | None) -> None:
        if self.options.max_events is not None and self.produced > self.options.max_events:
            excess = self.produced - self.options.max_events
            if self._wants_calls and marks:  # never half a call: all of the last one goes
                excess = len(batch) - marks.pop()[0]
            del batch[len(batch) - excess :]
            self.extra[last_input] -= excess
            self._cut_call = True  # the last call is not all handed: not in the position

    def _past_deadline(self) -> bool:
        if self.deadline is not None and self.clock.monotonic() >= self.deadline:
            self.stop_reason = self.stop_reason or f"--duration {self.options.duration:g}s reached"
            return True
        return False

    def _hand_off(self, batch: list[str], marks: list | None = None) -> None:
        """Each output gets the batch once (or, with a `when` rule, the events it selects;
        the rest count as filtered). One that raises has failed what it had not accepted;
        the others still get the batch, and it is broken from then on."""
        n, k, n_out = len(batch), -1, len(self.outputs)
        times = None if marks is None or not self._wants_times else _event_times(marks, n)
        starts = None
        if self._wants_calls and marks is not None:
            starts = sorted({first for first, _ in marks if first < n})
        routed = self._select(batch, times, starts) if self._routing else None
        if self.checker is not None:
            t = self._traced
            spans = routed[t] if routed is not None and t is not None and t < n_out else None
            self._check_traces(self.checker.add, batch if spans is None else spans[0])
        self.waiting = True  # an output may hold us up (backpressure): that is no stall
        try:
            for k, out in enumerate(self.outputs):
                events, at, calls = batch, times, starts
                if routed is not None and routed[k] is not None:
                    events, at, calls = routed[k]
                    out.acks.filtered += n - len(events)
                    if not events:
                        continue
                out.acks.handed += len(events)
                if self._broken[k] is None:
                    try:
                        if calls is not None and getattr(out, "wants_calls", False):
                            wanted = getattr(out, "wants_times", False)
                            out.write_batch(events, at if wanted else None, calls=calls)
                        elif at is not None and getattr(out, "wants_times", False):
                            out.write_batch(events, at)
                        else:
                            out.write_batch(events)
                        continue
                    except KeyboardInterrupt:
                        raise
                    except Exception as exc:
                        if _fatal(exc):  # the output has accounted for its events
                            self._fatal_error(k, exc)
                            continue
                        self._break(k, exc)
                        continue
                out.acks.fail_all(BROKEN, events)
        except KeyboardInterrupt:  # a second signal: the outputs after k never see the batch
            for j in range(k + 1, len(self.outputs)):
                acks = self.outputs[j].acks
                events = batch if routed is None or routed[j] is None else routed[j][0]
                acks.filtered += n - len(events)
                acks.handed += len(events)
                acks.fail_all(NOT_SENT, events)
            raise
        finally:
            self.waiting = False
        self._handed_ticks = self._ticks0 + sum(self.calls) - self._cut_call
        if self._marking:
            self._mark({"worker": self.options.worker, "ticks": self._handed_ticks})

    def _mark(self, position: dict) -> None:
        """Tell each transactional output how far the calls it was handed reach."""
        for k, out in enumerate(self.outputs):
            if self._broken[k] is None and getattr(out, "transactional", False):
                try:
                    out.mark(position)
                except Exception as exc:
                    if not _fatal(exc):
                        raise
                    self._fatal_error(k, exc)

    def _settle(self) -> None:
        """A checkpoint: wait until every event handed so far is acknowledged, then report
        the position. Nothing is handed meanwhile: this wait is what a checkpoint costs."""
        began = self.clock.monotonic()
        self.waiting = True  # waiting for outputs: no stall
        try:
            for k, out in enumerate(self.outputs):
                if self._broken[k] is None and out.acks.pending > 0:
                    try:
                        out.flush(SETTLE_TIMEOUT)
                    except Exception as exc:
                        if not _fatal(exc):
                            raise
                        self._fatal_error(k, exc)
        finally:
            self.waiting = False
        if all(out.acks.pending <= 0 for out in self.outputs):
            self._report(self._handed_ticks)
        now = self.clock.monotonic()
        self._settled[0] += 1
        self._settled[1] += now - began
        self._next_checkpoint = now + self.options.checkpoint_every

    def _report(self, ticks: int) -> None:
        self.position = {"worker": self.options.worker, "ticks": ticks}
        if self.on_position is not None:
            self.on_position(dict(self.position))

    def _fatal_error(self, k: int, exc: Exception) -> None:
        """An output that cannot go on (fenced): the run stops and exits 1, naming why."""
        name = self.outputs[k].acks.name
        if self._broken[k] is None:
            self._broken[k] = str(exc)
            log.error("output %s: %s; stopping", name, exc)
        self.stop_reason = self.stop_reason or f"output {name}: {exc}"
        self._stop.append(self.stop_reason)

    def _select(
        self, batch: list[str], times: list[int] | None, starts: list[int] | None
    ) -> list[_Selection | None]:
        """Per output, the (events, times, call starts) its `when` rule selects (None: no
        rule). Each event is parsed once, whatever the number of rules; equal rules select
        once."""
        docs = list(map(parse_event, batch))
        done: dict[tuple, _Selection] = {}
        selected: list[_Selection | None] = []
        for route in self._routes:
            if route is None:
                selected.append(None)
                continue
            key, match = route
            if key not in done:
                keep = [i for i, doc in enumerate(docs) if match(doc)]
                if len(keep) == len(batch):
                    done[key] = (batch, times, starts)
                else:
                    at = None if times is None else [times[i] for i in keep]
                    done[key] = ([batch[i] for i in keep], at, _starts_of(keep, starts))
            selected.append(done[key])
        return selected

    def _break(self, k: int, exc: Exception) -> None:
        name = self.outputs[k].acks.name
        self._broken[k] = f"{type(exc).__name__}: {exc}"
        log.error(
            "output %s broke, a bug, please report: %s; its later events fail as '%s'",
            name,
            self._broken[k],
            BROKEN,
            exc_info=exc,
        )
        if all(b is not None for b in self._broken):
            self.stop_reason = self.stop_reason or "every output is broken"
            self._stop.append(self.stop_reason)

    def _wait_until(self, due: float) -> bool:
        """Sleep until `due` (wall clock), serving outputs; False when told to stop."""
        self.waiting = self._sleeping = True
        try:
            while True:
                for k, out in enumerate(self.outputs):
                    try:
                        out.poll()
                    except Exception as exc:
                        if not _fatal(exc):
                            raise
                        self._fatal_error(k, exc)
                left = due - self.clock.time()
                if self._stop:
                    return False
                if left <= 0:  # due: it runs, even a little past the deadline (live mode
                    return True  # cuts its schedule at the --duration end exactly)
                if self._past_deadline():
                    return False
                self.clock.sleep(min(left, 0.1))
        finally:
            self.waiting = self._sleeping = False

    def _shutdown(self) -> None:
        """Flush every output within its deadline, close, and settle the accounts."""
        self.waiting = True  # flushing is no stall
        for k, out in enumerate(self.outputs):
            name = out.acks.name
            try:
                left = out.acks.pending if self.interrupted else out.flush(self._flush_time(k))
                if left:
                    log.warning("output %s: %d events undelivered at shutdown", name, left)
            except KeyboardInterrupt:  # a second signal: give up waiting, still account
                self._interrupt("flush interrupted")
            except Exception as exc:
                if _fatal(exc):
                    self._fatal_error(k, exc)
                else:
                    self._shutdown_bug(name, "flush", exc)
            try:
                out.close()
            except KeyboardInterrupt:
                self._interrupt("close interrupted")
            except Exception as exc:
                self._shutdown_bug(name, "close", exc)
            out.acks.settle()
        if self.checker is not None:
            self._check_traces(self.checker.finish)

    def _check_traces(self, step: Callable[..., object], *args: object) -> None:
        """The trace check is a report, never a reason to lose the run: a bug in it is
        recorded (shown after the summary) and the check is dropped."""
        try:
            step(*args)
        except Exception:
            self.bugs.append(traceback.format_exc())
            self.checker = None

    def _flush_time(self, k: int) -> float:
        by = self._flush_by[k]
        if by is None:
            return self.outputs[k].config.flush_timeout
        return max(0.0, by - self.clock.monotonic())

    def _shutdown_bug(self, name: str, step: str, exc: Exception) -> None:
        self.problems.append(f"output {name}: {step} failed: {type(exc).__name__}: {exc}")
        self.bugs.append(traceback.format_exc())
