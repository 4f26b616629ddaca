"""OTLP read back: the OTLP/JSON requests a Collector's kafka exporter writes, parsed into
their protobuf messages, and their values as the JSON they came from."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from google.protobuf import json_format

from tests.harness.kafka import read_topic

# The severity numbers OTLP gives the level names (any case)
SEVERITY = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "WARNING": 13, "ERROR": 17,
            "FATAL": 21, "CRITICAL": 21}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def nanos(iso: str) -> int:
    return (datetime.fromisoformat(iso) - _EPOCH) // timedelta(microseconds=1) * 1000


def py(value) -> object:
    """An OTLP AnyValue as the JSON value it came from."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [py(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: py(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def attrs(kvs) -> dict:
    return {kv.key: py(kv.value) for kv in kvs}


def parse_otlp_json(raw: bytes, message):
    """OTLP/JSON into its protobuf message: ids are hex there, base64 in protobuf's JSON."""

    def ids(node):
        if isinstance(node, dict):
            return {k: base64.b64encode(bytes.fromhex(v)).decode()
                    if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str)
                    else ids(v) for k, v in node.items()}
        if isinstance(node, list):
            return [ids(v) for v in node]
        return node

    return json_format.ParseDict(ids(json.loads(raw)), message())


def read_requests(bootstrap: str, topic: str, message, want: int,
                  count: Callable[[object], int], timeout: float = 60) -> list:
    """Every request a Collector's kafka exporter wrote to the topic, parsed, once `count`
    finds `want` items in them (the exporter writes on its own time; what is there after
    `timeout` otherwise)."""
    deadline, requests = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        requests = [parse_otlp_json(m.value(), message) for m in read_topic(bootstrap, topic)]
        if sum(count(r) for r in requests) >= want:
            break
        time.sleep(0.3)
    return requests
