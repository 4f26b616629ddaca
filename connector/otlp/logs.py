"""Log JSON -> OTLP LogRecord messages (the ExportLogsServiceRequest is wire.request).

An event carries `timestamp` (required; also the observed time), `severity` (text such as
INFO or WARNING, or a number 0-24), `body` (any JSON value), `service` (default
unknown_service, as in the OpenTelemetry SDKs), optional `trace_id` / `span_id`, and
`attributes` / `resource` objects; any other field becomes an attribute.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

from connector.otlp.mapping import (
    LogMapping,
    MappingError,
    extra_attributes,
    parse_id,
    parse_nanos,
    parse_object,
    parse_service,
)
from connector.otlp.wire import anyvalue, attributes, field, fixed64, resource_key

__all__ = ["SEVERITY_NUMBERS", "encode_log", "severity_number"]

SEVERITY_NUMBERS = {
    name.removeprefix("SEVERITY_NUMBER_"): value
    for name, value in SeverityNumber.items()
    if value
} | {
    "WARNING": SeverityNumber.SEVERITY_NUMBER_WARN,  # Python's and syslog's names
    "CRITICAL": SeverityNumber.SEVERITY_NUMBER_FATAL,
}


def severity_number(text: str) -> int:
    """OTLP's severity number for a level name, matched case-insensitively; 0 if unknown."""
    return SEVERITY_NUMBERS.get(text.strip().upper(), 0)


@lru_cache(maxsize=256)  # levels repeat: encode each once
def _severity_text(text: str) -> bytes:
    """severity_number 2 (when known), severity_text 3."""
    number = severity_number(text)
    return (b"\x10" + bytes((number,)) if number else b"") + (
        field(b"\x1a", text.encode()) if text else b""
    )


def _severity(value: Any, name: str) -> bytes:
    if value is None:
        return b""
    if isinstance(value, str):  # level names repeat; a long text is no level: not cached
        return _severity_text(value) if len(value) <= 32 else _severity_text.__wrapped__(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 24:
        return b"\x10" + bytes((value,)) if value else b""
    raise MappingError(f"field '{name}' must be a severity name or a number 0-24", value)


def encode_log(doc: Any, m: LogMapping) -> tuple[tuple, None, bytes]:
    """(resource key, None, LogRecord message bytes) for one event, or MappingError.

    LogRecord: time 1, severity_number 2, severity_text 3, body 5, attributes 6,
    trace_id 9, span_id 10, observed_time 11.
    """
    if not isinstance(doc, dict):
        raise MappingError("event is not a JSON object")
    time = fixed64(parse_nanos(doc, m.timestamp))
    service = parse_service(doc, m.service, required=False)
    parts = [b"\x09", time, _severity(doc.get(m.severity), m.severity)]
    body = doc.get(m.body)
    if body is not None:
        parts.append(field(b"\x2a", anyvalue(body)))
    merged = extra_attributes(doc, m.known, parse_object(doc, m.attributes))
    if merged:
        parts += (field(b"\x32", kv) for kv in attributes(merged))
    trace_id = parse_id(doc, m.trace_id, 16, required=False)
    span_id = parse_id(doc, m.span_id, 8, required=False)
    if trace_id:
        parts += (b"\x4a\x10", trace_id)
    if span_id:
        parts += (b"\x52\x08", span_id)
    parts += (b"\x59", time)
    return resource_key(service, parse_object(doc, m.resource)), None, b"".join(parts)
