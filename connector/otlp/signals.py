"""The three OTLP signals, as the outputs see them: how to map one event, how to build one
export request from mapped events, and where the request goes.

An encoded item is (resource key, extra, payload bytes): `extra` is the trace id for
spans, None for log records, the (metric name, data point) pairs for metrics; the
payload's length is what the item adds to a request.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from connector.otlp.mapping import LogMapping, MetricMapping, SpanMapping

__all__ = ["MAPPINGS", "SIGNALS", "Codec", "Signal", "codec"]

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
    `request(items)` -> the serialized Export...ServiceRequest, and `from_text(event)`:
    encode(values.loads(event), mapping), or a faster way to the same item and errors."""

    signal: Signal
    mapping: Any
    encode: Callable[[Any, Any], tuple]
    request: Callable[[list[tuple]], bytes]
    from_text: Callable[[str], tuple] | None = None

    def __post_init__(self) -> None:
        if self.from_text is None:
            from connector import values

            encode, mapping, loads = self.encode, self.mapping, values.loads
            self.from_text = lambda event: encode(loads(event), mapping)

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
        encode, from_text = encoder(mapping)
        return Codec(SIGNALS[signal], mapping, encode, item_request(), from_text)
    from connector.otlp.compiled import metric_from_text, metric_request
    from connector.otlp.metrics import MetricEncoder

    encoder = MetricEncoder(mapping)
    return Codec(
        SIGNALS[signal], mapping, encoder, metric_request(encoder), metric_from_text(encoder)
    )
