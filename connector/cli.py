"""`connector run | validate | preview`: the flags, and validate and preview (run is in
run.py, its summary in summary.py).

Exit codes: 0 every event delivered and no script error; 1 an event failed, an
output could not start or broke, or the script raised (or returned a wrong type)
at least once; 2 invalid config or usage.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import datetime
from pathlib import Path

from connector import __version__
from connector.clock import SYSTEM
from connector.clock import now as clock_now
from connector.config import Config, ConfigError, load_config
from connector.identity import Identity
from connector.inputs.schedule import schedule
from connector.logs import setup_logging
from connector.options import prepare
from connector.outputs.validate import schema_check, schema_problems, time_warnings
from connector.run import EXIT_FAILED, EXIT_OK, EXIT_USAGE, cmd_run
from connector.trace_check import TraceCheck
from connector.verify.cli import add_manifest_flags, add_verify_parser, cmd_verify
from connector.view.top import add_parser as add_top_parser
from connector.view.top import cmd_top

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "main"]

log = logging.getLogger("connector")


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
    parser.set_defaults(quiet=False)  # only run has --quiet
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
    run.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="write one self-contained HTML report of the run here when it ends "
        "(default: report in the config, else none)",
    )
    run.add_argument(
        "--view",
        action=argparse.BooleanOptionalAction,
        help="--view: the live view even when stderr is not a terminal; --no-view: the "
        "progress line even on a terminal (default: the view on a terminal)",
    )
    run.add_argument(
        "--view-workers",
        action="store_true",
        help="with --workers: a row per worker in the live view (default: merged only)",
    )
    add_manifest_flags(run)
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
    _common(add_top_parser(sub))
    add_verify_parser(sub, _common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format, args.quiet)
    if args.command == "verify":  # reads a manifest, not a config
        return cmd_verify(args)
    try:
        if args.command == "top":  # no config: it reads other processes' /metrics
            return cmd_top(args)
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


def _identity() -> Identity:
    """validate and preview show this replica's share; a bad environment is run's error."""
    try:
        return Identity.from_environ()
    except ValueError:
        return Identity()


def cmd_validate(config: Config, args: argparse.Namespace) -> int:
    mode = args.mode or config.mode
    script = prepare(config, seed=None)
    plan = schedule(config, mode, clock_now(SYSTEM, config.tz), _identity())
    first = plan.first()
    inputs = ", ".join(e.plugin for e in config.input)
    outputs = ", ".join(e.plugin for e in config.output)
    print(
        f"{args.config}: valid ({len(config.input)} input(s): {inputs}; "
        f"{'topology' if config.event.topology else 'script'} {script.path.name}; "
        f"{len(config.output)} output(s): {outputs}; mode {mode})"
    )
    # What the outputs would meet on the way (Kafka judging records by their time):
    # warnings only, the exit code stays 0.
    last = None if first is None else plan.last_end
    for n, entry in enumerate(config.output):
        for warning in time_warnings(entry, first, last) if first else ():
            print(f"  warning: output[{n}].{entry.plugin}.{warning}", file=sys.stderr)
    # Schemas against what the registry holds: an incompatible one is a config error.
    incompatible = 0
    for n, entry in enumerate(config.output):
        found, notes = schema_problems(entry)
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
        calls = iter(schedule(config, "preview", clock_now(SYSTEM, config.tz), _identity()))
        calls = script.follow(calls)  # a replay ends with its recording
    checker = TraceCheck(config) if args.check_traces else None
    schema_checks = [  # outputs writing schema'd records: would each event fit?
        (f"output[{n}].{entry.plugin}", check)
        for n, entry in enumerate(config.output)
        if (check := schema_check(entry))
    ]
    shown = n_calls = would_fail = 0
    for ts, i in calls:
        if shown >= args.events or n_calls >= 100_000:  # a script may return [] for long
            break
        n_calls += 1
        events = script.events({"timestamp": ts, "tags": config.input[i].settings.tags})
        if checker:  # whole calls: a trace cut short would look broken
            checker.add_calls(events)
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


if __name__ == "__main__":
    sys.exit(main())
