"""`connector run`: read the identity, resolve the schedule once, build the outputs, run
(one process or --workers), print the summary.

The schedule is resolved here once, before anything starts (a bad window is a config
error, exit 2); the pipeline and the workers read that value.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import logging
import signal
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

from connector.checkpoint import Checkpoint, CheckpointError, FileStore, fingerprint
from connector.clock import SYSTEM, Clock
from connector.clock import now as clock_now
from connector.config import Config, collisions
from connector.fields import not_a_file
from connector.identity import Identity
from connector.inputs.schedule import schedule
from connector.logs import LogSetup, flush_repeats, secrets
from connector.manifest import ManifestError
from connector.manifest.writer import manifest_path, open_manifest
from connector.metrics import MemoryWatch, MetricsServer
from connector.options import RunOptions, prepare
from connector.outputs.base import BuildContext
from connector.outputs.handle import build_output
from connector.pipeline import Pipeline
from connector.progress import Progress
from connector.summary import print_summary
from connector.view.facts import RunFacts
from connector.view.position import Position
from connector.view.report import report_problem
from connector.view.watch import Watch, wants_view
from connector.workers import Workers

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "cmd_run"]

log = logging.getLogger("connector")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def cmd_run(config: Config, args: argparse.Namespace, clock: Clock = SYSTEM) -> int:
    mode = args.mode or config.mode
    try:
        identity = Identity.from_environ()
    except ValueError as exc:
        print(f"invalid environment: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.checkpoint is not None and mode != "backfill":
        print(
            "--checkpoint is for --mode backfill: a live run follows the clock and has no "
            "position to resume",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # Replica r's worker w gets seed + r * workers + w: no two processes of a chart
    # emit the same stream (Workers adds w).
    seed = None if args.seed is None else args.seed + identity.replica * args.workers
    options = RunOptions(
        mode=mode, max_events=args.max_events, duration=args.duration, identity=identity
    )
    options.manifest = manifest_path(args, config)
    options.manifest_sample = getattr(args, "manifest_sample", None) or 1
    script = prepare(config, seed)  # also proves the script loads before workers start
    now = clock_now(clock, config.tz)
    plan = schedule(config, mode, now, identity)  # window errors: before anything starts
    checkpoint = None
    if args.checkpoint is not None:
        try:
            checkpoint = _checkpoint(config, args, script.path, identity, now)
        except CheckpointError as exc:
            print(f"{exc}", file=sys.stderr)
            return EXIT_USAGE
        options.checkpoint_every = args.checkpoint_every
        anchor = checkpoint.anchor.astimezone(config.tz)
        if anchor != now:  # a resume keeps the first run's window
            plan = schedule(config, mode, anchor, identity)
    report = args.report or config.report
    if report is not None and (problem := report_problem(report)):
        print(problem, file=sys.stderr)
        return EXIT_USAGE
    metrics = _start_metrics(config, args)
    who = "the workers' parent" if args.workers > 1 else ""
    memory = MemoryWatch(config.metrics.memory_warning, who)  # each worker has its own
    if metrics:
        metrics.memory = memory
    run: Pipeline | Workers
    manifest = None  # --manifest: each worker opens its own part
    view = wants_view(args.view, args.quiet, any(e.plugin == "stdout" for e in config.output))
    if args.workers > 1:
        logs = LogSetup(args.log_level, args.log_format, args.quiet, tuple(secrets()), view)
        run = Workers(
            args.config, options, args.workers, seed, logs, checkpoint=checkpoint, clock=clock
        )
    else:
        try:
            manifest = open_manifest(options)
        except ManifestError as exc:
            print(f"{exc}", file=sys.stderr)
            return EXIT_USAGE
        context = BuildContext(identity, positions=checkpoint is not None, manifest=manifest)
        names = config.output_names()
        outputs = [build_output(e, n, context) for e, n in zip(config.output, names, strict=True)]
        store = None if checkpoint is None else FileStore(checkpoint)
        run = Pipeline(config, script, outputs, options, positions=store, clock=clock)
    if metrics:
        metrics.source, metrics.probe = run.snapshot, run.probe_ready
    lingering = []

    def on_signal(signum: int, _frame) -> None:
        if lingering:  # the run is over: stop serving the last scrape
            raise KeyboardInterrupt
        if not run.alive:  # the summary is on its way
            return
        if run.stopping:  # a second signal: stop waiting for the flush
            raise KeyboardInterrupt
        run.request_stop(f"{signal.Signals(signum).name} received")
        if isinstance(run, Pipeline):  # a produce() call that does not return is cut short
            script.watch_stop([e.settings.flush_timeout for e in config.output])

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    log.info(
        "run: mode %s, %d input(s), %d output(s), script %s, %d worker(s)",
        mode,
        len(config.input),
        len(config.output),
        script.path.name,
        args.workers,
    )
    progress, total = None, None
    if not args.quiet:
        # the bar needs the total; only a terminal shows the bar
        bar = mode == "backfill" and (sys.stderr.isatty() or view)
        total = _count(plan) if bar else None
    if not args.quiet and not view:
        progress = Progress(run.snapshot, total, args.progress_interval).start()
    watch = Watch.begin(
        run.snapshot,
        functools.partial(RunFacts.of, config, mode, args.seed, args.workers, script.path),
        report,
        view,
        Position(
            total if view else None, args.duration, plan.last_end if mode == "live" else None
        ),
        _parts(run) if args.view_workers else None,
        functools.partial(_canary, run),
    )
    try:
        code = run.run(plan)
    except KeyboardInterrupt:  # yet another signal, as the run was settling: still summarise
        code = EXIT_FAILED
    finally:
        script.unwatch()
        memory.stop()
        if progress:
            progress.stop()
    flush_repeats()
    if manifest is not None:
        manifest.close()
    stats = run.snapshot()
    if watch:
        watch.stop(stats)
    if checkpoint is not None and stats.exhausted and not stats.interrupted:
        checkpoint.keep(None)  # the end: a rerun is refused, not a silent no-op
    print_summary(stats, sys.stderr)
    for bug in stats.bugs:  # after the summary: the accounts first, then what to report
        log.critical("a bug, please report it with this traceback:\n%s", bug.rstrip())
    if watch:
        watch.write(stats)
    if metrics:
        if args.linger > 0:
            lingering.append(True)
            with contextlib.suppress(KeyboardInterrupt):  # a signal ends the linger
                clock.sleep(args.linger)
        metrics.close()
    return code


def _checkpoint(
    config: Config,
    args: argparse.Namespace,
    script: Path,
    identity: Identity,
    now: datetime,
) -> Checkpoint:
    """Open (or create) the checkpoint; CheckpointError when it is not this run's."""
    # what the events depend on: the config minus where metrics are served
    data = config.model_dump(mode="json", exclude={"metrics"})
    mark = fingerprint(data, script, args.seed, args.workers, identity.share)
    if (kind := not_a_file(args.checkpoint)) is not None:  # a FIFO would hang the read
        raise CheckpointError(f"--checkpoint {args.checkpoint}: it is {kind}, not a file")
    # the outputs' own collisions were refused with the config: only the checkpoint's left
    if clash := collisions([*config.written_files(), ("--checkpoint", args.checkpoint)]):
        raise CheckpointError(clash[0])
    try:
        checkpoint = Checkpoint.open(args.checkpoint, mark, now)
    except OSError as exc:
        raise CheckpointError(
            f"cannot write checkpoint {args.checkpoint}: {exc.strerror or exc}"
        ) from None
    if checkpoint.resumed:
        done = ", ".join(f"worker {w}: {p['ticks']}" for w, p in checkpoint.positions.items())
        log.info("checkpoint %s: resuming (settled ticks %s)", args.checkpoint, done or "none")
    return checkpoint


def _start_metrics(config: Config, args: argparse.Namespace) -> MetricsServer | None:
    port = config.metrics.port if args.metrics_port is None else args.metrics_port
    if port == 0:
        return None
    name = config.name or (config.source.stem if config.source else "config")
    try:
        server = MetricsServer(config.metrics.host, port, name, config.metrics.stall_after)
    except OSError as exc:
        log.warning(
            "metrics: cannot listen on %s:%d (%s); running without /metrics",
            config.metrics.host,
            port,
            exc.strerror or exc,
        )
        return None
    log.info("metrics on http://%s:%d/metrics", config.metrics.host, server.port)
    return server


def _parts(run: Pipeline | Workers):
    """--view-workers: each worker's own RunStats (one process has none)."""
    if isinstance(run, Workers):
        return lambda: [run.snapshots[w] for w in sorted(run.snapshots)]
    return None


def _canary(run: Pipeline | Workers) -> dict[str, int] | None:
    """The verify canary's results (found, missing...) over every output; None when off."""
    checked = [o.verify_checked for o in run.snapshot().outputs if o.verify_checked is not None]
    return dict(sum(checked, Counter())) if checked else None


def _count(stream, cap: int = 5_000_000) -> int | None:
    """Timestamps in a backfill, for the progress bar; None when there are too many to count."""
    n = sum(1 for _ in itertools.islice(stream, cap + 1))
    return n if n <= cap else None
