"""The three OTLP signals, as the outputs see them: how to map one event, how to build one
export request from mapped events, and where the request goes.

An encoded item is (resource key, extra, payload bytes): `extra` is the trace id for
spans, None for log records, the packed data points for metrics (metrics.py); the
payload's length is what the item adds to a request.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from connector.otlp.mapping import (
    LogMapping,
    MappingError,
    MetricMapping,
    SpanMapping,
    mapping_detail,
    mapping_reason,
    unexpected_reason,
)

__all__ = ["MAPPINGS", "SIGNALS", "Codec", "Signal", "codec", "encode_all"]

SignalName = Literal["traces", "logs", "metrics"]


@dataclass(frozen=True)
class Signal:
    name: str
    noun: str  # in failure reasons: "cannot map to a span"
    path: str  # OTLP/HTTP
    method: str  # OTLP/gRPC
    response: str  # module:class of the Export...ServiceResponse
    rejected: str  # its partial_success field


SIGNALS = {
    "traces": Signal(
        "traces",
        "span",
        "/v1/traces",
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        "opentelemetry.proto.collector.trace.v1.trace_service_pb2:ExportTraceServiceResponse",
        "rejected_spans",
    ),
    "logs": Signal(
        "logs",
        "log record",
        "/v1/logs",
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        "opentelemetry.proto.collector.logs.v1.logs_service_pb2:ExportLogsServiceResponse",
        "rejected_log_records",
    ),
    "metrics": Signal(
        "metrics",
        "metric",
        "/v1/metrics",
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        "opentelemetry.proto.collector.metrics.v1.metrics_service_pb2:ExportMetricsServiceResponse",
        "rejected_data_points",
    ),
}
MAPPINGS = {"traces": SpanMapping, "logs": LogMapping, "metrics": MetricMapping}


@dataclass
class Codec:
    """One output's signal: `encode(doc, mapping)` -> an item (or MappingError),
    `request(items)` -> the serialized Export...ServiceRequest, `from_text(event)`:
    encode(values.loads(event), mapping), or a faster way to the same item and errors, and
    `many(events)` -> (items, failed): from_text of each, with the exception in place of
    each item it refused and those places in `failed` (compiled.Many)."""

    signal: Signal
    mapping: Any
    encode: Callable[[Any, Any], tuple]
    request: Callable[[list[tuple]], bytes]
    from_text: Callable[[str], tuple] | None = None
    many: Callable[[list[str]], tuple[list, list[int]]] | None = None

    def __post_init__(self) -> None:
        if self.from_text is None:
            from connector import values

            encode, mapping, loads = self.encode, self.mapping, values.loads
            self.from_text = lambda event: encode(loads(event), mapping)
        if self.many is None:
            from connector.otlp.compiled import each

            self.many = each(self.from_text)

    def response(self):
        module, name = self.signal.response.split(":")
        return getattr(importlib.import_module(module), name)


def codec(signal: str, mapping: Any = None) -> Codec:
    """The codec of a signal, with its mapping (default: the signal's default mapping)."""
    if mapping is None:
        mapping = MAPPINGS[signal]()
    if signal in ("traces", "logs"):
        from connector.otlp.compiled import item_request, log_encoder, span_encoder

        encoder = span_encoder if signal == "traces" else log_encoder
        encode, from_text, many = encoder(mapping)
        return Codec(SIGNALS[signal], mapping, encode, item_request(), from_text, many)
    from connector.otlp.compiled import metric_request, metric_texts
    from connector.otlp.metrics import MetricEncoder

    encoder = MetricEncoder(mapping)
    from_text, many = metric_texts(encoder)
    return Codec(SIGNALS[signal], mapping, encoder, metric_request(encoder), from_text, many)


def encode_all(
    c: Codec, events: list[str], docs: list | None, fail: Callable
) -> tuple[list[tuple], list[str]]:
    """(items, their events): the events mapped in order, each from its doc where a `when`
    rule parsed it (None: not JSON, so from the text, which fails with the parser's reason);
    an event that does not map fails alone, with the reason (`fail(reason, event, detail=)`),
    a defect in the mapping too."""
    if docs is None:
        items, failed = c.many(events)
    else:
        items, failed = [], []
        encode, mapping, from_text = c.encode, c.mapping, c.from_text
        for i, doc in enumerate(docs):
            try:
                items.append(from_text(events[i]) if doc is None else encode(doc, mapping))
            except Exception as exc:
                items.append(exc)
                failed.append(i)
    if not failed:
        return items, events
    noun = c.signal.noun
    for i in failed:
        exc = items[i]
        if isinstance(exc, (orjson.JSONDecodeError, MappingError)):
            fail(mapping_reason(exc, noun), events[i], detail=mapping_detail(exc))
        else:
            fail(unexpected_reason(exc, noun), events[i], detail=str(exc)[:200])
    refused = set(failed)
    kept = [i for i in range(len(events)) if i not in refused]
    return [items[i] for i in kept], [events[i] for i in kept]
