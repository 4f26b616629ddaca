"""Helpers for the topology tests: traces as trees, a topology renamed apart from other runs
on the shared Jaeger, and Jaeger's dependencies API."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from datetime import datetime

from tests.harness.metrics import NO_PROXY


def traces(events: list[dict]) -> dict[str, list[dict]]:
    """Span events by trace id (log events and others left out)."""
    found: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        if "span_id" in event and "operation" in event:
            found[event["trace_id"]].append(event)
    return found


def window(span: dict) -> tuple[int, int]:
    """(start, end) in whole microseconds."""
    start = datetime.fromisoformat(span["start_time"])
    begin = int(start.timestamp()) * 1_000_000 + start.microsecond
    return begin, begin + round(span["duration_ms"] * 1000)


def edges(events: list[dict]) -> Counter:
    """(parent service, child service) -> count, as Jaeger's dependencies count them: every
    parent/child pair of spans in a trace, the same service included."""
    by_id = {e["span_id"]: e for e in events if "operation" in e}
    found: Counter = Counter()
    for span in by_id.values():
        parent = by_id.get(span.get("parent_span_id"))
        if parent is not None:
            found[(parent["service"], span["service"])] += 1
    return found


def renamed(raw: dict, suffix: str) -> dict:
    """A parsed topology with every service renamed `name-suffix` (keys and references)."""
    names = set(raw["services"])

    def ref(value: str) -> str:
        service, _, op = value.partition("/")
        return f"{service}-{suffix}/{op}" if service in names else value

    def walk(value):
        if isinstance(value, dict):
            return {k: (ref(v) if k in ("call", "root", "consumer") and isinstance(v, str)
                        else walk(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    out = walk(raw)
    out["services"] = {f"{k}-{suffix}": v for k, v in out["services"].items()}
    return out


def dependencies(query: str, services: set[str], expected: int, timeout: float = 60) -> Counter:
    """Jaeger's /api/dependencies restricted to edges touching `services`, once their call
    counts add up to `expected` (or at the timeout: whatever it serves then)."""
    found: Counter = Counter()
    deadline = time.monotonic() + timeout
    while True:
        end = int(time.time() * 1000)
        url = f"{query}/api/dependencies?endTs={end}&lookback={30 * 86400 * 1000}"
        with NO_PROXY.open(url, timeout=10) as r:
            links = json.load(r)["data"] or []
        found = Counter({(d["parent"], d["child"]): d["callCount"] for d in links
                         if d["parent"] in services or d["child"] in services})
        if sum(found.values()) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.5)
