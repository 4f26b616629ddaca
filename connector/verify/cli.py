"""`connector verify MANIFEST`, and `connector run`'s manifest flags.

Exit codes: 0 everything recorded was found intact; 1 something is missing, altered,
aborted or incomplete; 2 a bad manifest, a bad flag or config, or a backend that cannot
be reached (named).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.config import ConfigError, load_config
from connector.manifest import ManifestError, read_manifest
from connector.manifest.reader import Manifest, OutputRecord
from connector.verify.files import verify_files
from connector.verify.kafka import VerifyError, verify_kafka
from connector.verify.report import Progress, Tally, print_json, print_table
from connector.verify.traces import TraceQuery, verify_traces

__all__ = ["add_manifest_flags", "add_verify_parser", "cmd_verify"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# what a kafka section's settings hold besides the client's connection settings
_NOT_CLIENT = {"topic", "encoding", "signal", "transactional_id", "headers_hashed"}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def _time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def add_manifest_flags(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--manifest",
        type=Path,
        metavar="PATH",
        help="record what each output acknowledged, for `connector verify` (a folder of "
        "parts with --workers or replicas; default: manifest in the config, else none)",
    )
    run.add_argument(
        "--manifest-sample",
        type=_positive_int,
        metavar="N",
        help="keep one trace in N in the manifest, by trace id (default: 1, all)",
    )


def add_verify_parser(sub, common) -> None:
    verify = sub.add_parser(
        "verify", help="read back what a run's manifest says was delivered, and compare"
    )
    verify.add_argument("manifest", type=Path, help="a manifest file, or a folder of parts")
    verify.add_argument(
        "--config",
        type=Path,
        metavar="CONFIG",
        help="take connection settings (and secrets, from the environment) from this config "
        "(default: the manifest's copy, which holds no secrets)",
    )
    verify.add_argument(
        "--traces-query",
        metavar="URL",
        help="the trace store's query API: Jaeger http://HOST:16686, Tempo http://HOST:3200",
    )
    verify.add_argument(
        "--backend",
        choices=["jaeger", "tempo"],
        default="jaeger",
        help="the query API's shape (default: jaeger)",
    )
    verify.add_argument(
        "--since",
        type=_time,
        metavar="TIME",
        help="where the API needs a time window: its start (ISO-8601)",
    )
    verify.add_argument(
        "--until",
        type=_time,
        metavar="TIME",
        help="where the API needs a time window: its end (ISO-8601)",
    )
    verify.add_argument(
        "--sample",
        type=_positive_int,
        default=1,
        metavar="N",
        help="check one trace in N, by trace id (default: 1, all)",
    )
    verify.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    verify.add_argument(
        "--partial",
        action="store_true",
        help="read a manifest a crash cut short up to its last whole chunk",
    )
    verify.add_argument("--quiet", action="store_true", help="no progress line")
    common(verify)


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        manifest = read_manifest(args.manifest, partial=args.partial)
    except ManifestError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        clients = _config_clients(args.config) if args.config else {}
    except ConfigError as exc:
        print(f"{args.config}: invalid config", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    notes = [
        f"{part}: not finished (read up to its last whole chunk)" for part in manifest.unfinished
    ]
    progress = Progress(args.quiet)
    tallies: list[Tally] = []
    try:
        for record in manifest.outputs.values():
            tallies.extend(_verify(record, manifest, args, clients, notes, progress))
    except VerifyError as exc:
        progress.done()
        print(f"verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    progress.done()
    code = EXIT_FAILED if any(t.failed for t in tallies) else EXIT_OK
    if args.json:
        print_json(tallies, notes, code)
    else:
        print_table(tallies, notes)
    return code


def _verify(
    record: OutputRecord,
    manifest: Manifest,
    args: argparse.Namespace,
    clients: dict[str, dict],
    notes: list[str],
    progress: Progress,
) -> list[Tally]:
    out: list[Tally] = []
    if record.kafka:
        client = {k: v for k, v in record.settings.items() if k not in _NOT_CLIENT}
        client.update(clients.get(record.name, {}))
        out.append(verify_kafka(record, client, progress))
    if record.traces and record.plugin == "kafka" and not args.traces_query:
        notes.append(f"{record.name}: its traces were not looked up (no --traces-query)")
    elif record.traces:
        if not args.traces_query:
            raise VerifyError(
                f"output {record.name} recorded traces: give --traces-query URL "
                "(Jaeger http://HOST:16686, Tempo http://HOST:3200)"
            )
        query = TraceQuery(args.traces_query, args.backend, args.since, args.until)
        sample = max(args.sample, 1)
        if manifest.sample > 1:
            notes.append(f"the run kept one trace in {manifest.sample} (--manifest-sample)")
        out.append(verify_traces(record, query, sample, progress))
    if record.lines:
        out.append(verify_files(record, progress))
    if record.counts:
        tally = Tally(record.name, record.plugin, f"{record.signal} (counted)")
        tally.expected = sum(record.counts.values())
        tally.note = f"{record.signal} are counted per resource, not read back"
        out.append(tally)
    if not out:
        out.append(Tally(record.name, record.plugin, "nothing recorded"))
    return out


def _config_clients(path: Path) -> dict[str, dict[str, Any]]:
    """Output name -> the Kafka client settings of that output in the config (its
    secrets come from the environment, as the run's did; none are printed)."""
    from connector.outputs.kafka.config import client_properties

    config = load_config(path)
    names = config.output_names()
    return {
        name: client_properties(entry.settings)
        for entry, name in zip(config.output, names, strict=True)
        if entry.plugin == "kafka"
    }
