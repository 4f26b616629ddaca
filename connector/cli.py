"""`connector run | validate | preview`.

Exit codes: 0 every event delivered and no script error; 1 an event failed, an
output could not start or broke, or the script raised (or returned a wrong type)
at least once; 2 invalid config or usage.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

from connector import __version__
from connector.checkpoint import Checkpoint, CheckpointError, fingerprint
from connector.config import Config, ConfigError, collisions, load_config
from connector.fields import not_a_file
from connector.inputs.rate import replica_share
from connector.logs import LogSetup, flush_repeats, secrets, setup_logging
from connector.metrics import MemoryWatch, MetricsServer
from connector.otlp.check import TraceChecker
from connector.outputs import OUTPUTS
from connector.pipeline import (
    Pipeline,
    RunOptions,
    build_output,
    prepare,
    schedule,
    trace_events,
)
from connector.progress import Progress
from connector.stats import RunStats
from connector.workers import Workers

log = logging.getLogger("connector")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _positive(kind: type):
    def parse(text: str):
        value = kind(text)
        if not value > 0:  # nan too
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its error message
    return parse


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="least severe log lines shown on stderr (default: info)",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text lines, or one JSON object a line (default: text)",
    )


def _config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="the connector's YAML config file")


def _mode(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mode",
        choices=["live", "backfill"],
        help="live: each timestamp when it comes due; backfill: every timestamp from start "
        "to end, as fast as possible (default: mode in the config, else live)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connector",
        description="Turn cron and rate schedules into events with a Python script, and ship them.",
    )
    parser.add_argument("--version", action="version", version=f"connector {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the pipeline")
    _config(run)
    _mode(run)
    run.add_argument(
        "--max-events",
        type=_positive(int),
        metavar="N",
        help="stop after N events (default: no limit)",
    )
    run.add_argument(
        "--duration",
        type=_positive(float),
        metavar="SECONDS",
        help="stop SECONDS after every output is ready (default: at the schedule's end)",
    )
    run.add_argument(
        "--seed",
        type=int,
        help="seed Python's random before the script loads (default: unseeded)",
    )
    run.add_argument(
        "--workers",
        type=_positive(int),
        default=1,
        metavar="N",
        help="N processes, each with its own copy of the script, timestamps dealt "
        "round-robin (default: 1)",
    )
    run.add_argument(
        "--checkpoint",
        type=Path,
        metavar="FILE",
        help="backfill only: keep the position here and resume from it after a crash "
        "(default: none)",
    )
    run.add_argument(
        "--checkpoint-every",
        type=_positive(float),
        default=1.0,
        metavar="SECONDS",
        help="with --checkpoint: record the acknowledged position this often (default: 1)",
    )
    run.add_argument(
        "--quiet",
        action="store_true",
        help="no progress line, progress logs or connecting messages (default: off)",
    )
    run.add_argument(
        "--progress-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="when stderr is not a terminal, a progress log line this often (default: 10)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve /metrics, /healthz, /readyz here (0 disables; default: "
        "metrics.port in the config, else 9464)",
    )
    run.add_argument(
        "--linger",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep serving /metrics this long after the run ends, for a last scrape (default: 0)",
    )
    _common(run)

    validate = sub.add_parser("validate", help="check a config and its script; send nothing")
    _config(validate)
    _mode(validate)
    _common(validate)

    preview = sub.add_parser("preview", help="print the first events; send nothing")
    _config(preview)
    preview.add_argument(
        "--events",
        type=_positive(int),
        default=10,
        metavar="N",
        help="print the first N events (default: 10)",
    )
    preview.add_argument(
        "--at",
        metavar="ISO_TIMESTAMP",
        help="call produce() at this timestamp instead of the schedule's first "
        "(default: the schedule's)",
    )
    preview.add_argument(
        "--seed",
        type=int,
        help="seed Python's random before the script loads (default: unseeded)",
    )
    preview.add_argument(
        "--check-traces",
        action="store_true",
        help="print a report per trace (roots, orphans, timing) instead of "
        "the events; exit 1 when any trace is broken (default: off)",
    )
    _common(preview)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format, getattr(args, "quiet", False))
    try:
        config = load_config(args.config)
        return {"run": cmd_run, "validate": cmd_validate, "preview": cmd_preview}[args.command](
            config, args
        )
    except ConfigError as exc:
        print(f"{args.config}: invalid config", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `connector preview ... | head`: the reader has seen enough
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (no flush error at exit)
        return EXIT_OK
    except KeyboardInterrupt:  # Ctrl-C before a run has started (its handler takes over)
        print("interrupted", file=sys.stderr)
        return EXIT_FAILED
    except Exception:  # nothing a user does ends here: this is ours
        log.critical("a bug, please report it with this traceback", exc_info=True)
        return EXIT_FAILED


def cmd_validate(config: Config, args: argparse.Namespace) -> int:
    mode = args.mode or config.mode
    script = prepare(config, seed=None)
    now, ends = datetime.now(config.tz), []
    first = next(iter(schedule(config, mode, now, ends=ends)), (None, 0))[0]
    inputs = ", ".join(e.plugin for e in config.input)
    outputs = ", ".join(e.plugin for e in config.output)
    print(
        f"{args.config}: valid ({len(config.input)} input(s): {inputs}; "
        f"script {script.path.name}; {len(config.output)} output(s): {outputs}; mode {mode})"
    )
    # What the outputs would meet on the way (Kafka judging records by their time):
    # warnings only, the exit code stays 0.
    last = None if None in ends or first is None else max(ends)
    for n, entry in enumerate(config.output):
        check = getattr(OUTPUTS[entry.plugin], "warnings", None)
        for warning in check(entry.settings, first, last) if check and first else ():
            print(f"  warning: output[{n}].{entry.plugin}.{warning}", file=sys.stderr)
    # Schemas against what the registry holds: an incompatible one is a config error.
    incompatible = 0
    for n, entry in enumerate(config.output):
        check = getattr(OUTPUTS[entry.plugin], "schema_problems", None)
        found, notes = check(entry.settings) if check else ((), ())
        for note in notes:
            print(f"  note: output[{n}].{entry.plugin}: {note}", file=sys.stderr)
        for problem in found:
            print(f"  error: output[{n}].{entry.plugin}.{problem}", file=sys.stderr)
        incompatible += len(found)
    return EXIT_USAGE if incompatible else EXIT_OK


def cmd_preview(config: Config, args: argparse.Namespace) -> int:
    script = prepare(config, args.seed)
    if args.at:
        try:
            at = datetime.fromisoformat(args.at.replace("Z", "+00:00"))
        except ValueError:
            print(f"--at: invalid ISO-8601 timestamp '{args.at}'", file=sys.stderr)
            return EXIT_USAGE
        at = (at if at.tzinfo else at.replace(tzinfo=config.tz)).astimezone(config.tz)
        calls = ((at, i) for i, e in enumerate(config.input) for _ in range(e.settings.count))
    else:
        calls = schedule(config, "preview", datetime.now(config.tz))
    checker = TraceChecker(config.span_mapping()) if args.check_traces else None
    schema_checks = [  # outputs writing schema'd records: would each event fit?
        (f"output[{n}].{entry.plugin}", check)
        for n, entry in enumerate(config.output)
        if (make := getattr(OUTPUTS[entry.plugin], "schema_check", None))
        and (check := make(entry.settings))
    ]
    shown = n_calls = would_fail = 0
    for ts, i in calls:
        if shown >= args.events or n_calls >= 100_000:  # a script may return [] for long
            break
        n_calls += 1
        events = script.events({"timestamp": ts, "tags": config.input[i].settings.tags})
        if checker:  # whole calls: a trace cut short would look broken
            checker.add(trace_events(config, events))
            shown += len(events)
            continue
        for event in events[: args.events - shown]:
            print(event)
            shown += 1
            misses = [(where, miss) for where, check in schema_checks if (miss := check(event))]
            would_fail += bool(misses)
            for where, (reason, detail) in misses:
                why = f"{reason}: {detail}" if detail else reason
                print(f"  would fail: {where}: {why}", file=sys.stderr)
    errors = sum(script.errors.values())
    fails = f", {would_fail} would not match a schema" if schema_checks else ""
    print(
        f"preview: {shown} event(s) from {n_calls} produce() call(s), {errors} script error(s)"
        f"{fails}; nothing was sent",
        file=sys.stderr,
    )
    if checker:
        reports = checker.finish()
        for report in reports:
            print(report)
        print(checker.summary())
        if any(r.broken for r in reports):
            return EXIT_FAILED
    return EXIT_OK if not errors and not would_fail else EXIT_FAILED


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    mode = args.mode or config.mode
    try:
        replica, replicas = replica_share()
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
    seed = None if args.seed is None else args.seed + replica * args.workers
    options = RunOptions(mode=mode, max_events=args.max_events, duration=args.duration)
    script = prepare(config, seed)  # also proves the script loads before workers start
    now = datetime.now(config.tz)
    schedule(config, mode, now)  # window errors are config errors: before anything starts
    checkpoint = None
    if args.checkpoint is not None:
        try:
            checkpoint = _checkpoint(config, args, script.path, (replica, replicas), now)
        except CheckpointError as exc:
            print(f"{exc}", file=sys.stderr)
            return EXIT_USAGE
        now = checkpoint.anchor.astimezone(config.tz)  # a resume keeps the first window
        options.checkpoint_every = args.checkpoint_every
        options.resume = checkpoint.ticks(0)
        schedule(config, mode, now)  # the first run's window, checked again
    metrics = _start_metrics(config, args)
    who = "the workers' parent" if args.workers > 1 else ""
    memory = MemoryWatch(config.metrics.memory_warning, who)  # each worker has its own
    if metrics:
        metrics.memory = memory
    run: Pipeline | Workers
    if args.workers > 1:
        logs = LogSetup(args.log_level, args.log_format, args.quiet, tuple(secrets()))
        run = Workers(args.config, options, args.workers, seed, logs, checkpoint=checkpoint)
    else:
        outputs = [
            build_output(e, n) for e, n in zip(config.output, config.output_names(), strict=True)
        ]
        run = Pipeline(config, script, outputs, options)
        if checkpoint is not None:
            run.on_position = checkpoint.keep
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
    progress = None
    if not args.quiet:
        # the bar needs the total; only a terminal shows the bar
        bar = mode == "backfill" and sys.stderr.isatty()
        total = _count(schedule(config, mode, now)) if bar else None
        progress = Progress(run.snapshot, total, args.progress_interval).start()
    try:
        code = run.run(now)
    except KeyboardInterrupt:  # yet another signal, as the run was settling: still summarise
        code = EXIT_FAILED
    finally:
        script.unwatch()
        memory.stop()
        if progress:
            progress.stop()
    flush_repeats()
    stats = run.snapshot()
    if checkpoint is not None and stats.exhausted and not stats.interrupted:
        checkpoint.keep(None)  # the end: a rerun is refused, not a silent no-op
    print_summary(stats, sys.stderr)
    for bug in stats.bugs:  # after the summary: the accounts first, then what to report
        log.critical("a bug, please report it with this traceback:\n%s", bug.rstrip())
    if metrics:
        if args.linger > 0:
            lingering.append(True)
            with contextlib.suppress(KeyboardInterrupt):  # a signal ends the linger
                time.sleep(args.linger)
        metrics.close()
    return code


def _checkpoint(
    config: Config,
    args: argparse.Namespace,
    script: Path,
    replica: tuple[int, int],
    now: datetime,
) -> Checkpoint:
    """Open (or create) the checkpoint; CheckpointError when it is not this run's."""
    # what the events depend on: the config minus where metrics are served
    data = config.model_dump(mode="json", exclude={"metrics"})
    mark = fingerprint(data, script, args.seed, args.workers, replica)
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


def _count(stream, cap: int = 5_000_000) -> int | None:
    """Timestamps in a backfill, for the progress bar; None when there are too many to count."""
    n = sum(1 for _ in itertools.islice(stream, cap + 1))
    return n if n <= cap else None


def print_summary(s: RunStats, out) -> None:
    elapsed = max(s.finished - s.started, 1e-9)
    lines = [
        f"summary: {'stopped: ' + s.stop_reason if s.stop_reason else 'schedule complete'}"
        f" after {elapsed:.3f}s",
        f"  timestamps: {sum(s.timestamps)}",
        f"  events produced: {s.produced} ({s.produced / elapsed:,.0f}/s)",
        *(
            [f"  replayed: {s.replayed} produce() call(s) settled by an earlier run, not sent"]
            if s.replayed
            else []
        ),
        f"  script errors: {sum(s.script_errors.values())}"
        + "".join(f", {k}: {v}" for k, v in sorted(s.script_errors.items())),
    ]
    for o in s.outputs:
        if o.could_not_start is not None:
            lines.append(f"  output {o.name}: could not start: {o.could_not_start}")
            continue
        filtered = f", filtered {o.filtered}" if o.routed else ""  # by its `when` rule
        lines.append(f"  output {o.name}: delivered {o.delivered}, failed {o.failed}{filtered}")
        if o.transactions is not None:
            lines.append(
                f"    transactions: committed {o.transactions['committed']}, "
                f"aborted {o.transactions['aborted']}"
            )
        if o.broken is not None:
            lines.append(f"    broken: {o.broken}")
        lines += [f"    failed: {reason}: {n}" for reason, n in o.reasons.most_common()]
        if o.dead_letter_lost:
            lines.append(f"    dead letter: {o.dead_letter_lost} record(s) could not be written")
    lines += [f"  {problem}" for problem in s.problems]
    if s.traces is not None:
        checker = TraceChecker(reports=s.traces, unreadable=s.unreadable_spans)
        lines.append(f"  {checker.summary()}")
        broken = [r for r in s.traces if r.broken]
        lines += [f"    {r}" for r in broken[:20]]
        if len(broken) > 20:
            lines.append(f"    ... and {len(broken) - 20} more broken trace(s)")
    if s.mode == "live" and s.lag.count:
        lines.append(f"  schedule lag p99: <= {s.lag.quantile(0.99) * 1000:g} ms")
    print("\n".join(lines), file=out, flush=True)


if __name__ == "__main__":
    sys.exit(main())
