"""Replay's benchmark: a JSONL recording replayed into Kafka against P, and an OTLP dump
of traces replayed into Jaeger against the traces S (bench/README.md, "Replay").

    python bench/replay.py                 # 200,000 events, 3 rounds
    python bench/replay.py --size 50000 --rounds 1

Rows (each in a fresh process, rounds alternating, medians):
  S reader   the jsonl source's own rate: Replay.next() in a bare loop over the recording
             (read, parse, re-time, write), no pipeline, no output
  K          bench/run.py's bare confluent-kafka loop over the basic example's payloads
  P          1 / (1/S reader + 1/K)
  replay kafka   `connector run`: the recording replayed (rate input) into the local Kafka
  S traces   the tracing example's produce() in a bare loop, spans/s (bench/run.py's S)
  replay otlp    `connector run`: an OTLP JSON dump of the same traces replayed with
                 new_ids into the local Jaeger over OTLP gRPC, spans/s
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import run as bench  # bench/run.py: measure, connector_rate, services, its inner loops

START = datetime(2026, 1, 1, tzinfo=UTC)


def _module(path: Path):
    spec = importlib.util.spec_from_file_location("bench_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_jsonl(path: Path, events: int) -> None:
    produce = _module(bench.EXAMPLES["basic"]).produce
    with open(path, "w") as f:
        for k in range(events):
            f.write(produce({"timestamp": START + timedelta(seconds=k), "tags": ()}) + "\n")


def write_dump(path: Path, traces: int) -> None:
    """The tracing example's traces as OTLP JSON requests, one per line (8 spans each),
    as the connector's own otlp output sends them (kind INTERNAL) and a Collector dumps them."""
    produce = _module(bench.EXAMPLES["tracing"]).produce
    with open(path, "w") as f:
        for k in range(traces):
            spans = [json.loads(s) for s in
                     produce({"timestamp": START + timedelta(seconds=k), "tags": ()})]
            by_service: dict[str, list] = {}
            for s in spans:
                start = datetime.fromisoformat(s["start_time"])
                ns = int(start.timestamp()) * 10**9 + start.microsecond * 1000
                span = {"traceId": s["trace_id"], "spanId": s["span_id"],
                        "name": s["operation"], "kind": 1, "startTimeUnixNano": str(ns),
                        "endTimeUnixNano": str(ns + round(s["duration_ms"] * 1e6))}
                if s.get("parent_span_id"):
                    span["parentSpanId"] = s["parent_span_id"]
                by_service.setdefault(s["service"], []).append(span)
            f.write(json.dumps({"resourceSpans": [
                {"resource": {"attributes": [{"key": "service.name",
                                              "value": {"stringValue": svc}}]},
                 "scopeSpans": [{"scope": {}, "spans": sp}]}
                for svc, sp in by_service.items()]}, separators=(",", ":")) + "\n")


def config(folder: Path, name: str, source: dict, output: str, ticks: int) -> str:
    path = folder / f"{name}.yaml"
    end = START + timedelta(seconds=ticks)
    path.write_text(json.dumps({
        "mode": "backfill",
        "input": [{"rate": {"per_second": 1, "start": START.isoformat(),
                            "end": end.isoformat()}}],
        "event": {"replay": source},
        "output": [json.loads(output)],
    }))
    return str(path)


def inner_reader(path: str, events: int) -> None:
    from connector.replay.config import ReplayConfig
    from connector.replay.player import Replay

    replay = Replay(ReplayConfig(jsonl={"path": path}), UTC, b"k")
    n, started = 0, time.perf_counter()
    for k in range(events):
        n += len(replay.next(START + timedelta(seconds=k)))
    print(f"RATE={n / (time.perf_counter() - started)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inner", nargs="*")
    args = parser.parse_args()
    if args.inner:
        inner_reader(args.inner[0], int(args.inner[1]))
        return
    kafka, otlp, _, _ = bench.services()
    work = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    bench.WORK = work
    n, traces = args.size, args.size // 8
    write_jsonl(work / "recorded.jsonl", n)
    write_dump(work / "dump.json", traces)
    py = sys.executable
    topic = f"{bench.TOPICS}replay"
    rows = {
        "S reader": ([py, __file__, "--inner", str(work / "recorded.jsonl"), str(n)], False),
        "K": ([py, str(Path(bench.__file__)), "--inner", "client", "basic", str(n), kafka],
              False),
        "replay kafka": ([py, "-m", "connector", "run", "--metrics-port", "0", "--quiet",
                          config(work, "kafka", {"jsonl": {"path": "recorded.jsonl"}},
                                 json.dumps({"kafka": {"bootstrap_servers": kafka,
                                                       "topic": topic}}), n)], True),
        "S traces": ([py, str(Path(bench.__file__)), "--inner", "script", "tracing",
                      str(traces)], False),
        "replay otlp": ([py, "-m", "connector", "run", "--metrics-port", "0", "--quiet",
                         config(work, "otlp", {"otlp": {"path": "dump.json"},
                                               "new_ids": True},
                                json.dumps({"otlp": {"endpoint": otlp}}), traces)], True),
    }
    got: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
    for r in range(args.rounds):
        for name, (cmd, from_summary) in rows.items():
            text, rss = bench.measure(cmd, cwd=work)
            rate = (bench.connector_rate(text) if from_summary
                    else float(text.rsplit("RATE=", 1)[1].split()[0]))
            got[name].append((rate, rss))
            print(f"round {r + 1}: {name}: {rate:,.0f}/s, peak RSS {rss:.0f} MB", flush=True)
    med = {name: statistics.median(rate for rate, _ in values) for name, values in got.items()}
    p = 1 / (1 / med["S reader"] + 1 / med["K"])
    print(f"\nmachine: {bench.machine()}; size {n}, rounds {args.rounds}")
    print("| row | events/s, median (min-max) | ratio | peak RSS |\n|---|---|---|---|")
    ratio = {"replay kafka": f"{med['replay kafka'] / p:.2f} P",
             "replay otlp": f"{med['replay otlp'] / med['S traces']:.2f} S traces"}
    for name, values in got.items():
        rates = [rate for rate, _ in values]
        print(f"| {name} | {med[name]:,.0f} ({min(rates):,.0f}-{max(rates):,.0f}) | "
              f"{ratio.get(name, '')} | {max(rss for _, rss in values):.0f} MB |")
        if name == "K":
            print(f"| P | {p:,.0f} | 1.00 P | |")
    bench.delete_topics(kafka)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
