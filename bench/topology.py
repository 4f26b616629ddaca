"""Spans per second of produce() in a bare loop: the seed's hand-written tracing script
beside the same shape as a topology (examples/topology/tracing.yaml), in one process,
alternating rounds, the median reported. Then the metrics encoder on the shop's RED
events (map, encode, build the export requests of 1,000 events): the duration as a gauge
(a point per event) beside the same as a delta histogram (aggregated per series and request).

    python bench/topology.py [--traces 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from connector.otlp.mapping import MetricMapping  # noqa: E402
from connector.otlp.signals import codec  # noqa: E402
from connector.synth import Generator, load_topology  # noqa: E402

RED = {
    "requests": {"type": "sum", "monotonic": True, "temporality": "delta"},
    "errors": {"type": "sum", "monotonic": True, "temporality": "delta"},
}
MAPPINGS = {
    "metrics: duration as a gauge": MetricMapping(
        metrics={**RED, "duration_ms": {"type": "gauge"}}, exemplars={}),
    "metrics: duration as a histogram": MetricMapping(
        metrics={**RED, "duration_ms": {"type": "histogram", "temporality": "delta"}},
        exemplars={}),
}


def _script(path: Path):
    spec = importlib.util.spec_from_file_location("bench_tracing", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.produce


def spans_per_second(produce, params: list[dict]) -> float:
    begin = time.perf_counter()
    spans = sum(len(produce(p)) for p in params)
    return spans / (time.perf_counter() - begin)


def events_per_second(mapping: MetricMapping, events: list[bytes]) -> float:
    """Map, encode and build requests of 1,000 events, as the otlp output does."""
    c = codec("metrics", mapping)
    begin = time.perf_counter()
    for k in range(0, len(events), 1000):
        c.request([c.encode(orjson.loads(e), mapping) for e in events[k:k + 1000]])
    return len(events) / (time.perf_counter() - begin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    start = datetime(2026, 2, 20, 10, tzinfo=UTC)
    params = [{"timestamp": start + timedelta(seconds=2 * k), "tags": ()}
              for k in range(args.traces)]
    random.seed(1)
    rows = {
        "tracing S (hand-written)": _script(ROOT / "examples" / "tracing" / "tracing.py"),
        "topology (tracing.yaml)": Generator(
            load_topology(ROOT / "examples" / "topology" / "tracing.yaml"), random.Random(1)
        ).produce,
        "topology (shop.yaml)": Generator(
            load_topology(ROOT / "examples" / "topology" / "shop.yaml"), random.Random(1)
        ).produce,
    }
    found: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, produce in rows.items():
            found[name].append(spans_per_second(produce, params))
    base = statistics.median(found["tracing S (hand-written)"])
    print("| produce() | spans/s, median (min-max) | / S |")
    print("|---|---|---|")
    for name, values in found.items():
        median = statistics.median(values)
        print(f"| {name} | {median:,.0f} ({min(values):,.0f}-{max(values):,.0f}) "
              f"| {median / base:.2f} |")
    shop = Generator(load_topology(ROOT / "examples" / "topology" / "shop.yaml"),
                     random.Random(1), ("metrics",))
    events = [e.encode() for p in params for e in shop.produce(p)]
    rates: dict[str, list[float]] = {name: [] for name in MAPPINGS}
    for _ in range(args.rounds):
        for name, mapping in MAPPINGS.items():
            rates[name].append(events_per_second(mapping, events))
    base = statistics.median(rates["metrics: duration as a gauge"])
    print()
    print(f"| encoder ({len(events):,} RED events) | events/s, median (min-max) | / gauge |")
    print("|---|---|---|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:,.0f} ({min(values):,.0f}-{max(values):,.0f}) "
              f"| {median / base:.2f} |")


if __name__ == "__main__":
    main()
