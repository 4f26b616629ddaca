"""Helpers for the fault tests: the reasons outputs fail events by, a config and a script
whose events carry ids, and readers of those ids.

A fault test never touches the services the rest of the suite shares: it uses a private
broker and Jaeger (tests/harness/kafka.py, jaeger.py; the fixtures in fixtures.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import yaml

# The reasons the outputs count failures by (connector/outputs): the dead letter's `error`
# starts with one of them.
NOT_SENT = "not sent: stopping"
POSSIBLY_WRITTEN = "timed out (possibly written)"
UNDELIVERED = "undelivered at the flush deadline (flush_timeout)"
PURGED = "undelivered at the flush deadline (possibly written)"  # Kafka: taken by the client


# -- the connector's input ------------------------------------------------------------------


BACKFILL_START = "2026-01-01T00:00:00+00:00"


def write_config(path: Path, script: Path, outputs: list[dict], per_second: float,
                 seconds: float | None = None, **top: object) -> Path:
    """A config with one rate input. With `seconds`, a backfill of per_second * seconds
    events from BACKFILL_START; without, a live run (its length is --duration)."""
    rate: dict = {"per_second": per_second}
    if seconds is not None:
        end = datetime.fromisoformat(BACKFILL_START) + timedelta(seconds=seconds)
        rate |= {"start": BACKFILL_START, "end": end.isoformat()}
        top = {"mode": "backfill", **top}
    config = {**top, "metrics": {"port": 0}, "input": [{"rate": rate}],
              "event": {"script": {"path": str(script)}}, "output": outputs}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# One event per call, a JSON object with `id` (the timestamp: unique across workers too)
# and `n` (this process's call count). PAD pads the event; every SLOW_EVERY-th call sleeps
# SLOW seconds (a backfill that lasts long enough to be hurt mid-run); COUNTER names a
# file that holds the call count after each call (what a SIGKILL cannot report).
EVENT_SCRIPT = """\
import json, os, time
PAD = "x" * {pad}
SLOW_EVERY, SLOW = {slow_every}, {slow}
COUNTER = {counter!r}
fd = os.open(COUNTER, os.O_WRONLY | os.O_CREAT) if COUNTER else None
n = 0

def produce(params):
    global n
    n += 1
    if fd is not None:
        os.pwrite(fd, b"%12d" % n, 0)
    if SLOW_EVERY and n % SLOW_EVERY == 0:
        time.sleep(SLOW)
    return json.dumps({{"id": params["timestamp"].isoformat(), "n": n, "pad": PAD}})
"""


def write_script(path: Path, pad: int = 50, slow_every: int = 0, slow: float = 0.0,
                 counter: Path | None = None) -> Path:
    path.write_text(EVENT_SCRIPT.format(
        pad=pad, slow_every=slow_every, slow=slow, counter=str(counter) if counter else None
    ))
    return path


# -- what arrived --------------------------------------------------------------------------


def _value(record) -> bytes | str:
    """A topic record's value (a confluent_kafka Message), or the value itself."""
    return record.value() if callable(getattr(record, "value", None)) else record


def ids_of(values: Iterable) -> list[str]:
    """The `id` field of each event (a topic record, bytes or str)."""
    return [json.loads(_value(v))["id"] for v in values]


def field_of(records: list[dict], name: str = "n") -> list:
    """A field of each dead-lettered event; None for a record without the event's value
    (the value was lost: a failure the output could not dead-letter properly)."""
    return [json.loads(r["value"])[name] if r.get("value") else None for r in records]


def ns_of(values: Iterable) -> list[int]:
    """The `n` field (the call number: 1..produced in one process) of each event (a topic
    record, bytes or str)."""
    return [json.loads(_value(v))["n"] for v in values]


def by_reason(records: list[dict], reason: str) -> list[dict]:
    """Dead-letter records that failed with `reason` (their `error` starts with it)."""
    return [r for r in records if r["error"].startswith(reason)]
