"""Kafka codecs: events -> OTLP requests, one Kafka message each (`otlp_proto`, `otlp_json`).

As the Collector's kafka receiver reads them: traces go one message per trace, keyed by
trace id; logs and metrics one message per batch and resource, keyed by service name.
A message over the producer's limit is split into several whole requests, same key.
"""

from __future__ import annotations

import base64
import importlib
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from google.protobuf.json_format import MessageToDict

from connector.otlp.signals import Codec, codec, encode_all

__all__ = ["MESSAGE_TOO_LARGE", "Encoder", "otlp_encoder", "otlp_json"]

Encoder = Callable[[list[str], Callable], Iterator[tuple[str, bytes, list[str]]]]
MESSAGE_TOO_LARGE = "{} too large for one message (message.max.bytes)"

_REQUESTS = {
    "traces": (
        "opentelemetry.proto.collector.trace.v1.trace_service_pb2:ExportTraceServiceRequest",
        "resourceSpans",
        "scopeSpans",
        "spans",
    ),
    "logs": (
        "opentelemetry.proto.collector.logs.v1.logs_service_pb2:ExportLogsServiceRequest",
        "resourceLogs",
        "scopeLogs",
        "logRecords",
    ),
    "metrics": (
        "opentelemetry.proto.collector.metrics.v1.metrics_service_pb2:ExportMetricsServiceRequest",
        "resourceMetrics",
        "scopeMetrics",
        "metrics",
    ),
}
_IDS = ("traceId", "spanId", "parentSpanId")


def otlp_json(request: bytes, signal: str = "traces") -> bytes:
    """OTLP/JSON: protobuf's JSON mapping, except ids are hex and enums are numbers."""
    where, resources, scopes, items = _REQUESTS[signal]
    module, name = where.split(":")
    message = getattr(importlib.import_module(module), name)
    doc = MessageToDict(message.FromString(request), use_integers_for_enums=True)
    if signal != "metrics":
        for rs in doc.get(resources, []):
            for ss in rs.get(scopes, []):
                for item in ss.get(items, []):
                    _hex_ids(item)
                    for link in item.get("links", ()):
                        _hex_ids(link)
    else:  # histograms' exemplars carry ids too
        for rs in doc.get(resources, []):
            for ss in rs.get(scopes, []):
                for metric in ss.get(items, []):
                    for data in metric.values():
                        for point in data.get("dataPoints", ()) if isinstance(data, dict) else ():
                            for exemplar in point.get("exemplars", ()):
                                _hex_ids(exemplar)
    return orjson.dumps(doc)


def _hex_ids(item: dict) -> None:
    for key in _IDS:
        if key in item:
            item[key] = base64.b64decode(item[key]).hex()


def otlp_encoder(
    encoding: str, mapping: Any = None, max_bytes: int = 0, signal: str = "traces"
) -> Encoder:
    """For Kafka: events -> (message key, serialized request, the events it carries).

    A group whose request is over `max_bytes` (0: no limit) is split over several
    messages with the same key, each a whole request.
    """
    c = codec(signal, mapping)
    if encoding == "otlp_json":

        def serialize(request: bytes) -> bytes:
            return otlp_json(request, signal)

    else:
        serialize = bytes
    if signal == "traces":
        return _trace_encoder(c, serialize, max_bytes)
    return _resource_encoder(c, serialize, max_bytes)


def _mapped(c: Codec, events: list[str], fail: Callable) -> Iterator[tuple[tuple, str]]:
    """(item, event) for each event that maps; the others fail alone."""
    return zip(*encode_all(c, events, None, fail), strict=True)


def _trace_encoder(c: Codec, serialize: Callable, max_bytes: int) -> Encoder:
    """One message per trace, keyed by its id."""
    too_large = MESSAGE_TOO_LARGE.format(c.signal.noun)

    def encode(events: list[str], fail: Callable) -> Iterator[tuple[str, bytes, list[str]]]:
        traces: dict[bytes, list[tuple[tuple, str]]] = {}
        for pair in _mapped(c, events, fail):
            trace_id = pair[0][1]  # the item's extra
            spans = traces.get(trace_id)
            if spans is None:
                traces[trace_id] = [pair]
            else:
                spans.append(pair)
        for trace_id, spans in traces.items():
            yield from _messages(
                trace_id.hex(), spans, c.request, serialize, max_bytes, fail, too_large
            )

    return encode


def _resource_encoder(c: Codec, serialize: Callable, max_bytes: int) -> Encoder:
    """Logs and metrics: one message per batch and resource, keyed by the service name."""
    too_large = MESSAGE_TOO_LARGE.format(c.signal.noun)

    def encode(events: list[str], fail: Callable) -> Iterator[tuple[str, bytes, list[str]]]:
        resources: dict[tuple, list[tuple]] = {}
        for item, event in _mapped(c, events, fail):
            group = resources.get(item[0])
            if group is None:
                group = resources[item[0]] = []
            group.append((item, event))
        for key, group in resources.items():
            yield from _messages(key[0], group, c.request, serialize, max_bytes, fail, too_large)

    return encode


def _messages(
    key: str,
    group: list[tuple[tuple, str]],
    request: Callable,
    serialize: Callable,
    limit: int,
    fail: Callable,
    too_large: str,
) -> Iterator[tuple[str, bytes, list[str]]]:
    """(item, event) pairs -> messages of at most `limit` bytes (0: no limit)."""
    body = request([item for item, _ in group])
    payload = serialize(body)
    if not limit or len(payload) <= limit:
        yield key, payload, [event for _, event in group]
        return
    if len(group) == 1:
        detail = f"its message is {len(payload)} bytes, over {limit}"
        fail(too_large, group[0][1], detail=detail)
        return
    # Cut by item size scaled to the serialized size (otlp_json is larger than the
    # protobuf), with headroom for the resource groups; halve a part that still overflows.
    budget = limit * len(body) / len(payload) * 0.95
    parts, part, size = [], [], 0
    for pair in group:
        n = len(pair[0][2]) + 6  # the item, its tag and length
        if part and size + n > budget:
            parts.append(part)
            part, size = [], 0
        part.append(pair)
        size += n
    parts.append(part)
    if len(parts) == 1:
        half = len(group) // 2
        parts = [group[:half], group[half:]]
    for part in parts:
        yield from _messages(key, part, request, serialize, limit, fail, too_large)
