"""`--workers N`: N processes share one schedule; one summary and one /metrics.

Each worker loads the script itself (module state is per worker) and takes every
N-th timestamp of the schedule the parent resolved (its `Schedule` value), offset
by its index, so the split is deterministic. Each starts its outputs and says so;
once every worker is ready the parent sends them all one anchor, the moment live
relative times count from, so they anchor the same schedule. Workers send their
`RunStats` to the parent, which merges them: the summary, the metrics and the
progress line read that one value, as they do for a single process. Under
--checkpoint they send each settled position too, and the parent keeps the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import wait
from pathlib import Path

from connector.checkpoint import Checkpoint
from connector.clock import SYSTEM, Clock
from connector.clock import now as clock_now
from connector.config import load_config
from connector.ending import end_process
from connector.events.script import HUNG
from connector.inputs.schedule import Schedule
from connector.ledger import Ledger, died
from connector.logs import LogSetup, UpTheLink, flush_repeats
from connector.manifest.writer import open_manifest
from connector.metrics import MemoryWatch
from connector.options import RunOptions, prepare
from connector.outputs import Acks
from connector.outputs.base import BuildContext
from connector.outputs.handle import build_output
from connector.pipeline import Pipeline
from connector.stats import LAG_BUCKETS, Histogram, OutputStats, RunStats

__all__ = ["Workers"]

log = logging.getLogger("connector")

SNAPSHOT_EVERY = 0.1  # how stale the parent's view of a worker killed without a word is
SILENT_AFTER = 2.0  # a worker unheard of this long is stalled
PROBE_EVERY = 5.0  # ready() may cost the broker a metadata request: not every snapshot
ORPHAN_GRACE = 60.0  # a worker whose parent died flushes this long at most, then exits


def _shared(entry):
    """Workers append to a file the parent has already truncated, or they would clobber."""
    if entry.plugin == "file" and entry.settings.mode == "overwrite":
        return entry.model_copy(
            update={"file": entry.settings.model_copy(update={"mode": "append"})}
        )
    return entry


class _ToParent:
    """A worker's PositionStore: where the parent's checkpoint has it, and each settled
    position sent up at once (the parent writes the one checkpoint file)."""

    def __init__(self, position: dict | None, send):
        self.position, self.send = position, send

    def load(self) -> dict | None:
        return self.position

    def save(self, position: dict) -> None:
        with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
            self.send(("position", position))


def _worker(
    path: str,
    options: RunOptions,
    seed: int | None,
    plan: Schedule,
    logs: LogSetup,
    link,
    resume: dict | None,
    stdout_lock: str | None,
    ledger: Ledger | None = None,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards a SIGTERM instead
    logs.apply()  # the same format, level, rate limits and redaction as the parent
    sending = threading.Lock()  # the main thread and the report thread share the link

    def up(message: tuple) -> None:
        with sending:
            link.send(message)

    stderr = sys.stderr.stream  # a QuietStream's, since logs.apply()
    if logs.up_the_link:
        sys.stderr.stream = UpTheLink(up, stderr)
    w = options.identity.worker
    checkpointing = options.checkpoint_every is not None
    try:
        manifest = open_manifest(options)
        context = BuildContext(options.identity, checkpointing, stdout_lock, manifest)
        config = load_config(path)
        script = prepare(config, None if seed is None else seed + w)
        names = config.output_names()
        outputs = [
            build_output(_shared(e), n, context) for e, n in zip(config.output, names, strict=True)
        ]
    except Exception:  # the parent loaded the same config: this is ours
        log.critical("worker %d could not set up; a bug, please report", w, exc_info=True)
        end_process(1)

    def send(final: bool) -> None:
        up(("stats", pipeline.snapshot(), final))

    def anchor() -> datetime | None:
        """Every output started: tell the parent, then wait for the common anchor."""
        send(False)
        while not link.poll(0.1):
            if pipeline.stopping:
                return None
        return link.recv()

    store = _ToParent(resume, up) if checkpointing else None
    pipeline = Pipeline(config, script, outputs, options, anchor=anchor, positions=store)
    if ledger is not None:
        pipeline.ledger = ledger.writer(pipeline)

    def on_term(_signum, _frame) -> None:
        if pipeline.stopping:
            raise KeyboardInterrupt
        pipeline.request_stop("SIGTERM received")
        script.watch_stop([e.settings.flush_timeout for e in config.output])

    signal.signal(signal.SIGTERM, on_term)
    done = threading.Event()

    parent = os.getppid()

    def report() -> None:  # the hot loop never waits for this
        monotonic = pipeline.clock.monotonic
        probed, orphaned = monotonic(), 0.0
        while not done.wait(SNAPSHOT_EVERY):
            if os.getppid() != parent:  # the parent was killed: nobody will read or stop us
                if not orphaned:
                    orphaned = monotonic()
                    pipeline.request_stop("the parent process is gone")
                if monotonic() - orphaned > ORPHAN_GRACE:
                    os._exit(1)
                continue
            if monotonic() - probed >= PROBE_EVERY:
                pipeline.probe_ready()
                probed = monotonic()
            try:
                send(False)
            except OSError:  # the parent closed its end
                continue

    reporter = threading.Thread(target=report, name="report", daemon=True)
    reporter.start()
    memory = MemoryWatch(config.metrics.memory_warning, f"worker {w}")
    pipeline.run(plan)
    if manifest is not None:
        manifest.close()
    memory.stop()
    done.set()
    reporter.join(timeout=5)
    flush_repeats()
    with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
        sys.stderr.flush()
        send(True)
    sys.stderr.stream = stderr  # the parent reads no more after the final word
    end_process(0)  # threads the script left running cannot keep the worker alive


@dataclass
class Workers:
    """Runs the workers; `snapshot()` is their merged RunStats."""

    config_path: Path
    options: RunOptions
    count: int
    seed: int | None = None
    logs: LogSetup = field(default_factory=LogSetup)
    checkpoint: Checkpoint | None = None
    clock: Clock = SYSTEM
    stop_reason: str | None = None
    interrupted: bool = False
    started: float = 0.0
    finished: float = 0.0
    alive: bool = True

    def __post_init__(self) -> None:
        self.config = load_config(self.config_path)
        self.snapshots: dict[int, RunStats] = {}
        self.heard: dict[int, float] = {}  # worker -> when its last snapshot came
        self.finals: set[int] = set()
        self.problems: list[str] = []
        self.procs: list = []
        self.ledgers: list[Ledger] = []
        self.links: list = []  # one pipe per worker: its RunStats up, the anchor down
        self.anchored = False
        self._lock = None  # stdout's lock file, when an output writes to stdout

    @property
    def stopping(self) -> bool:
        return self.stop_reason is not None

    def request_stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: each worker stops scheduling and flushes

    def probe_ready(self) -> None:
        """The workers probe their outputs themselves, every PROBE_EVERY seconds."""

    # -- the merged view ---------------------------------------------------------------
    def _empty(self) -> RunStats:
        config = self.config
        outputs = [
            OutputStats(
                name, e.plugin, Histogram(Acks.LATENCY_BUCKETS), routed=e.settings.when is not None
            )
            for e, name in zip(config.output, config.output_names(), strict=True)
        ]
        return RunStats(
            mode=self.options.mode,
            input_names=config.input_names(),
            counts=[e.settings.count for e in config.input],
            lag=Histogram(LAG_BUCKETS),
            outputs=outputs,
            traces=[] if config.check_traces else None,
        )

    def snapshot(self) -> RunStats:
        now, parts = self.clock.monotonic(), []
        for w in range(self.count):
            part = self.snapshots.get(w)
            if part is None:
                part = self._empty()
            elif w not in self.finals:  # a silent worker is a stalled one
                silent = now - self.heard[w] - SILENT_AFTER
                if silent > 0:
                    part = dataclasses.replace(part, stalled=part.stalled + silent)
            parts.append(part)
        total = functools.reduce(RunStats.merge, parts[1:], parts[0].snapshot())
        # the run's time counts from the first worker's start, as one process's counts from
        # its pipeline's: not the workers' interpreters starting up (~0.1 s each). Their
        # clock is the system's monotonic one: comparable with ours only when ours is too.
        starts = [p.started for p in parts if p.started]
        total.started = min(starts) if starts and self.clock is SYSTEM else self.started
        total.finished, total.alive = self.finished, self.alive
        # a worker's hung produce() says more than the signal that found it hung
        hung = [p.stop_reason for p in parts if (p.stop_reason or "").startswith(HUNG)]
        total.stop_reason = (hung or [self.stop_reason or total.stop_reason])[0]
        total.interrupted = total.interrupted or self.interrupted
        total.problems += self.problems
        return total

    # -- running -----------------------------------------------------------------------
    def run(self, plan: Schedule) -> int:
        ctx = multiprocessing.get_context("spawn")  # no inherited librdkafka or gRPC threads
        for entry in self.config.output:
            if entry.plugin == "file" and entry.settings.mode == "overwrite":
                entry.settings.path.parent.mkdir(parents=True, exist_ok=True)
                entry.settings.path.write_bytes(b"")
        # Workers share one stdout: a write longer than a pipe keeps whole could interleave
        # with another worker's, so they take turns through a lock file of the parent's.
        lock = None
        if any(entry.plugin == "stdout" for entry in self.config.output):
            # deleted when the parent's run object goes: after every worker has ended
            self._lock = tempfile.NamedTemporaryFile(prefix="connector-stdout-")  # noqa: SIM115
            lock = self._lock.name
        self.started = self.clock.monotonic()
        for w in range(self.count):
            identity = self.options.identity.as_worker(w, self.count)
            options = dataclasses.replace(self.options, identity=identity)
            resume = None if self.checkpoint is None else self.checkpoint.positions.get(w)
            if options.max_events is not None:  # an exact split of the limit
                options.max_events = options.max_events // self.count + (
                    w < options.max_events % self.count
                )
            # One pipe per worker, no shared queue: a worker that dies mid-write cannot
            # leave a lock held or a message half-written for the others.
            ours, theirs = ctx.Pipe()
            path = str(self.config_path)
            ledger = Ledger.shared(ctx, len(self.config.input), len(self.config.output))
            self.ledgers.append(ledger)
            proc = ctx.Process(
                target=_worker,
                name=f"connector-worker-{w}",
                daemon=True,
                args=(path, options, self.seed, plan, self.logs, theirs, resume, lock, ledger),
            )
            proc.start()
            theirs.close()  # the worker's end lives in the worker: its exit is our EOF
            self.procs.append(proc)
            self.links.append(ours)
        while len(self.finals) < self.count:
            try:
                self._receive()
            except KeyboardInterrupt:  # a second signal: workers stop waiting for their flush
                self.interrupted = True
                self.stop_reason = f"{self.stop_reason or 'stopped'}; interrupted"
                for proc in self.procs:
                    if proc.is_alive():
                        proc.terminate()
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():  # its final word is in: nothing of it is left to wait for
                proc.kill()
        if self._lock is not None:
            self._lock.close()  # deletes it (the process ends with os._exit: no finalizers)
        self.alive = False
        self.finished = self.clock.monotonic()
        return self.snapshot().exit_code()

    def _receive(self) -> None:
        open_links = {self.links[w]: w for w in range(self.count) if w not in self.finals}
        for link in wait(list(open_links), timeout=0.2):
            w = open_links[link]
            try:
                message = link.recv()
            except (EOFError, OSError):  # gone without a final word
                self.procs[w].join(timeout=5)
                self._died(w)
                continue
            if message[0] == "stderr":  # a worker's lines, above the parent's live view
                sys.stderr.write(message[1])
                continue
            if message[0] == "position":
                if self.checkpoint is not None:
                    self.checkpoint.keep(message[1])
                continue
            _, stats, final = message
            self.snapshots[w], self.heard[w] = stats, self.clock.monotonic()
            if final:
                self.finals.add(w)
        self._send_anchor()

    def _send_anchor(self) -> None:
        """Once every worker has started its outputs (or ended): one anchor for all, or
        None (stop) when one of them could not start."""
        if self.anchored:
            return
        for w in range(self.count):
            stats = self.snapshots.get(w)
            started = stats is not None and all(o.started for o in stats.outputs)
            if w not in self.finals and not started:
                return
        self.anchored = True
        if self.finals and not any(self.snapshots[w].stop_reason for w in self.finals):
            self.stop_reason = self.stop_reason or "a worker ended before the run started"
        anchor = None if self.finals or self.stopping else clock_now(self.clock, self.config.tz)
        for link in self.links:
            with contextlib.suppress(OSError):  # that worker is gone; counted as such
                link.send(anchor)

    def _died(self, w: int) -> None:
        """Gone without a final word (killed): the run stops, saying so at once. Its
        accounts are its last report (every SNAPSHOT_EVERY) corrected by its ledger: every
        event it had produced up to its last hand-off is counted produced, and what it had
        handed to an output without a report of the outcome is failed as possibly written,
        as a timeout is. Only what it produced after its last hand-off is unknown: never
        handed to an output, at most a batch (and one produce() call's events)."""
        stats = self.snapshots.get(w) or self._empty()
        exitcode = self.procs[w].exitcode
        self.snapshots[w], unsure = died(
            w, stats, self.ledgers[w], self.config.output, exitcode, self.options.batch_size
        )
        self.finals.add(w)
        log.error(
            "worker %d died (exit code %s); stopping the run: %d event(s) it had handed "
            "over are possibly written",
            w,
            exitcode,
            unsure,
        )
        self.request_stop(f"worker {w} died")
