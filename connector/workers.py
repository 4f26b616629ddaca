"""`--workers N`: N processes share one schedule; one summary and one /metrics.

Each worker loads the script itself (module state is per worker) and takes every
N-th timestamp of the merged schedule, offset by its index, so the split is
deterministic. Workers send snapshots of their counters to the parent, which
adds them up into a view with the same shape as a Pipeline's, so the summary,
the metrics and the progress line do not know the difference.
"""

from __future__ import annotations

import multiprocessing
import queue
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from connector.config import load_config
from connector.metrics import Histogram
from connector.outputs import Acks
from connector.pipeline import LAG_BUCKETS, Pipeline, RunOptions, build_output, prepare, schedule
from connector.spans import TraceChecker

__all__ = ["Workers"]

SNAPSHOT_EVERY = 0.5


def _snapshot(p: Pipeline, ready: list[bool], code: int | None = None) -> dict:
    return {
        "calls": list(p.calls),
        "events": list(p.events),
        "errors": dict(p.script.errors),
        "acks": [
            (
                a.name,
                a.plugin,
                a.handed,
                a.delivered,
                a.failed,
                dict(a.reasons),
                list(a.latency.counts),
                a.latency.sum,
            )
            for a in p.all_acks()
        ],
        "lag": (list(p.lag.counts), p.lag.sum),
        "ready": ready,
        "stop_reason": p.stop_reason,
        "broken": list(p.broken),
        "code": code,
        "traces": p.checker.finish() if p.checker is not None and code is not None else [],
    }


def _shared(entry):
    """Workers append to a file the parent has already truncated, or they would clobber."""
    if entry.plugin == "file" and entry.settings.mode == "overwrite":
        return entry.model_copy(
            update={"file": entry.settings.model_copy(update={"mode": "append"})}
        )
    return entry


def _worker(path: str, options: RunOptions, seed: int | None, now: datetime, out) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards a SIGTERM instead
    config = load_config(path)
    script = prepare(config, None if seed is None else seed + options.worker)
    names = config.output_names()
    outputs = [build_output(_shared(e), n) for e, n in zip(config.output, names, strict=True)]
    pipeline = Pipeline(config, script, outputs, options)

    def on_term(_signum, _frame) -> None:
        if pipeline.stopping:
            raise KeyboardInterrupt
        pipeline.request_stop("SIGTERM received")

    signal.signal(signal.SIGTERM, on_term)
    ready = [False] * len(outputs)
    done = threading.Event()

    def report() -> None:  # the hot loop never waits for this
        while not done.wait(SNAPSHOT_EVERY):
            ready[:] = [o.ready() for o in outputs] if pipeline.alive else ready
            out.put((options.worker, _snapshot(pipeline, ready)))

    threading.Thread(target=report, daemon=True).start()
    code = pipeline.run(schedule(config, options.mode, now))
    done.set()
    out.put((options.worker, _snapshot(pipeline, ready, code)))


class _Script:
    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()


@dataclass
class _OutputView:
    acks: Acks
    is_ready: bool = False

    def ready(self) -> bool:
        return self.is_ready


@dataclass
class Workers:
    """Runs the workers and presents their sum as a Pipeline-shaped view."""

    config_path: Path
    options: RunOptions
    count: int
    seed: int | None = None
    input_names: list[str] = field(default_factory=list)
    stop_reason: str | None = None
    broken: list[str] = field(default_factory=list)
    checker: TraceChecker | None = None
    started: float = 0.0
    finished: float = 0.0
    alive: bool = True

    def __post_init__(self) -> None:
        config = load_config(self.config_path)
        self.config = config
        self.input_names = config.input_names()
        self.counts = [e.settings.count for e in config.input]
        self.snapshots: dict[int, dict] = {}
        self.procs: list = []
        self._fold()

    # -- the Pipeline-shaped view ------------------------------------------------
    def _fold(self) -> None:
        snaps = list(self.snapshots.values())
        n_inputs = len(self.input_names)
        self.calls = [sum(s["calls"][i] for s in snaps) for i in range(n_inputs)]
        self.events = [sum(s["events"][i] for s in snaps) for i in range(n_inputs)]
        self.script = _Script()
        self.lag = Histogram(LAG_BUCKETS)
        outputs: dict[str, _OutputView] = {}
        names = self.config.output_names()
        plugins = [e.plugin for e in self.config.output]
        for name, plugin in zip(names, plugins, strict=True):
            outputs[name] = _OutputView(Acks(name, plugin), is_ready=bool(snaps))
        for s in snaps:
            self.script.errors.update(s["errors"])
            self.lag.add(*s["lag"])
            for (name, _, handed, delivered, failed, reasons, counts, total), ok in zip(
                s["acks"], s["ready"], strict=True
            ):
                view = outputs[name]
                view.is_ready = view.is_ready and ok
                a = view.acks
                a.handed += handed
                a.delivered += delivered
                a.failed += failed
                a.reasons.update(reasons)
                a.latency.add(counts, total)
        self.outputs = list(outputs.values())

    @property
    def timestamps(self) -> list[int]:
        return [-(-c // n) for c, n in zip(self.calls, self.counts, strict=True)]

    @property
    def produced(self) -> int:
        return sum(self.events)

    def all_acks(self) -> list[Acks]:
        return [o.acks for o in self.outputs]

    @property
    def stopping(self) -> bool:
        return self.stop_reason is not None

    def request_stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: each worker stops scheduling and flushes

    # -- running -------------------------------------------------------------------
    def run(self, now: datetime) -> int:
        ctx = multiprocessing.get_context("spawn")  # no inherited librdkafka or gRPC threads
        for entry in self.config.output:
            if entry.plugin == "file" and entry.settings.mode == "overwrite":
                entry.settings.path.parent.mkdir(parents=True, exist_ok=True)
                entry.settings.path.write_bytes(b"")
        inbox = ctx.Queue()
        self.started = time.monotonic()
        for w in range(self.count):
            options = RunOptions(**{**self.options.__dict__, "worker": w, "workers": self.count})
            if options.max_events is not None:  # an exact split of the limit
                options.max_events = options.max_events // self.count + (
                    w < options.max_events % self.count
                )
            proc = ctx.Process(
                target=_worker,
                name=f"connector-worker-{w}",
                daemon=True,
                args=(str(self.config_path), options, self.seed, now, inbox),
            )
            proc.start()
            self.procs.append(proc)
        finals: dict[int, dict] = {}
        while len(finals) < self.count:
            try:
                w, snap = inbox.get(timeout=0.2)
            except KeyboardInterrupt:  # a second signal: workers stop waiting for their flush
                self.stop_reason = (self.stop_reason or "") + "; interrupted"
                for proc in self.procs:
                    if proc.is_alive():
                        proc.terminate()
                continue
            except queue.Empty:
                dead = [w for w, p in enumerate(self.procs) if not p.is_alive() and w not in finals]
                for w in dead:  # gone without a final word: whatever it had in flight is lost
                    time.sleep(0.5)
                    if w not in finals and inbox.empty():
                        finals[w] = self._died(w)
                continue
            self.snapshots[w] = snap
            if snap["code"] is not None:
                finals[w] = snap
            self._fold()
        for proc in self.procs:
            proc.join(timeout=5)
        self.stop_reason = self.stop_reason or next(
            (s["stop_reason"] for s in finals.values() if s["stop_reason"]), None
        )
        self.broken = [b for s in finals.values() for b in s["broken"]]
        if self.config.check_traces:
            self.checker = TraceChecker(self.config.span_mapping())
            self.checker.reports = [r for s in finals.values() for r in s["traces"]]
        self._fold()
        self.alive = False
        self.finished = time.monotonic()
        return max(s["code"] for s in finals.values())

    def _died(self, w: int) -> dict:
        snap = dict(self.snapshots.get(w) or _empty(self))
        exitcode = self.procs[w].exitcode
        snap["acks"] = [
            (
                *a[:4],
                a[2] - a[3],
                {**a[5], f"worker {w} died": a[2] - a[3] - a[4]} if a[2] - a[3] - a[4] else a[5],
                *a[6:],
            )
            for a in snap["acks"]
        ]
        snap.update(code=1, broken=[f"worker {w} died (exit code {exitcode})"])
        self.snapshots[w] = snap
        return snap


def _empty(view: Workers) -> dict:
    n, names = len(view.input_names), view.config.output_names()
    lag, latency = [0] * (len(LAG_BUCKETS) + 1), [0] * (len(Acks.LATENCY_BUCKETS) + 1)
    return {
        "calls": [0] * n,
        "events": [0] * n,
        "errors": {},
        "lag": (lag, 0.0),
        "acks": [(name, "", 0, 0, 0, {}, latency, 0.0) for name in names],
        "ready": [False] * len(names),
        "stop_reason": None,
        "broken": [],
        "code": None,
        "traces": [],
    }
