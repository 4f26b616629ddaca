"""Per-mapping compiled encoders for the common shapes of spans and log records.

`span_encoder(mapping)` and `log_encoder(mapping)` return functions bound to that
mapping's field names: `encode(doc, mapping)`, as traces.encode_span and logs.encode_log,
`from_text(event)`, which parses the event itself, and `many(events)`, from_text of each.
Each first tries the common shape (spans: ids, service, operation, an ISO start, a
duration, a status, nothing else; log records: an ISO timestamp, a severity name, a text
body, a service, nothing else) with the checks written inline, and hands anything else,
valid or not, to the checked encoder, which also words the failure. So a refused event
fails exactly as before, and an accepted one is written to the same bytes:
tests/otlp/test_compiled.py holds the two to that, by property.

Why it is faster: field names are closure constants instead of attribute reads of the
mapping; a key-set comparison replaces the seven absent-field checks; what repeats (span
names, statuses, severities, log bodies) is encoded once; and `from_text` parses with
orjson alone when the event is of the common shape, where the extra check that
values.loads makes of every event (re-serializing it to find integers orjson rounded) can
be decided from the few values the shape allows.

When the native extension is built (`connector/otlp/_native`, from native/ at the
repository's root), `many` is its encoder's: the same shape read and written in Rust
straight from the text, a whole batch without the GIL (so the thread that encodes it runs
beside the one making events), handing anything else to the pure-Python `from_text` below
(so the failures are this module's).
tests/otlp/test_native.py holds the two to the same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple

import orjson

from connector import values
from connector.otlp.logs import SEVERITY_NUMBERS, encode_log, severity_number
from connector.otlp.mapping import HISTOGRAMS, MAX_NANOS, LogMapping, SpanMapping
from connector.otlp.metrics import MAX_SERIES, MetricEncoder
from connector.otlp.traces import encode_span
from connector.otlp.wire import SCOPE_FIELD, field, fixed64, request, resource_field

try:  # built by scripts/test and in the image; without it, the pure-Python path
    from connector.otlp import _native
except ImportError:
    _native = None

__all__ = [
    "Encoders",
    "each",
    "item_request",
    "log_encoder",
    "metric_request",
    "metric_texts",
    "native_built",
    "span_encoder",
]


def native_built() -> bool:
    return _native is not None


Item = tuple[tuple, Any, bytes]
# many(events) -> (the items in order, the exception in place of each item refused, and
# those places)
Many = Callable[[list[str]], tuple[list, list[int]]]


class Encoders(NamedTuple):
    encode: Callable[[Any, Any], Item]
    from_text: Callable[[str], Item]
    many: Many


def each(from_text: Callable[[str], Item]) -> Many:
    """many(events) through from_text, one event at a time (the pure-Python path)."""

    def many(events: list[str]) -> tuple[list, list[int]]:
        items, failed = [], []
        for i, event in enumerate(events):
            try:
                items.append(from_text(event))
            except Exception as exc:  # any failure fails its event alone (signals.py)
                items.append(exc)
                failed.append(i)
        return items, failed

    return many


def _encoders(encode: Callable, from_text: Callable, native: Any = None) -> Encoders:
    if native is None:
        return Encoders(encode, from_text, each(from_text))
    return Encoders(encode, from_text, native.many)

_CACHED = 4096  # at most this many entries per cache (span names, bodies, levels repeat)
_LONGEST = 128  # a longer string is encoded each time, never cached
_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)
_STATUS_CODES = {"OK": 1, "ERROR": 2, "UNSET": 0}
# trace_id 1, span_id 2 (parent_span_id 4): fixed sizes, one pack
_IDS = struct.Struct("<2s16s2s8s").pack
_PARENT = b"\x22\x08"
# kind 6 (INTERNAL), start 7, end 8 (fixed64)
_TAIL = struct.Struct("<2scQcQ").pack
_fromiso = datetime.fromisoformat


def _status(code: int) -> bytes:
    """Span.status (15): Status{code 3}; nothing for UNSET."""
    return field(b"\x7a", b"\x18" + bytes((code,))) if code else b""


_STATUS_BYTES = {name: _status(code) for name, code in _STATUS_CODES.items()}


def span_encoder(m: SpanMapping, native: bool = True) -> Encoders:
    """(encode(doc, mapping), from_text(event), many(events)) for spans, bound to mapping
    `m`; `native`: many is the native encoder's, over from_text, when it is built."""
    trace_f, span_f, parent_f = m.trace_id, m.span_id, m.parent_span_id
    service_f, op_f, start_f, duration_f, status_f = (
        m.service,
        m.operation,
        m.start_time,
        m.duration_ms,
        m.status,
    )
    plain = frozenset((trace_f, span_f, parent_f, service_f, op_f, start_f, duration_f, status_f))
    names: dict[str, bytes] = {}

    def checked(doc: Any, _mapping: Any = None) -> Item:
        return encode_span(doc, m)

    if len(m.known) < len(SpanMapping.model_fields):  # a field mapped twice: no shortcut
        return _encoders(checked, lambda event: encode_span(values.loads(event), m))

    def fast(doc: Any) -> Item | None:
        """The common shape written inline; None for anything else."""
        try:
            if not doc.keys() <= plain:
                return None
            op, svc, start, duration = doc[op_f], doc[service_f], doc[start_f], doc[duration_f]
            status = doc.get(status_f)
            tail = b"" if status is None else _STATUS_BYTES[status]
            name = names.get(op)
            if name is None:
                if op.__class__ is not str or not op:
                    return None
                name = field(b"\x2a", op.encode())
                if len(names) < _CACHED and len(op) <= _LONGEST:
                    names[op] = name
            cls = duration.__class__
            # (a float orjson rounded from an integer is at least 2**63 ms: no end time
            # OTLP can carry, so such a span leaves the shape below, as values.loads needs)
            if svc.__class__ is not str or not svc or (cls is not float and cls is not int):
                return None
            ts = _fromiso(start)
            if ts.tzinfo is None:
                return None
            begin = int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000
            end = begin + round(duration * 1_000_000)
            trace_id, span_id = bytes.fromhex(doc[trace_f]), bytes.fromhex(doc[span_f])
            parent = doc.get(parent_f)
            if (
                len(trace_id) != 16
                or len(span_id) != 8
                or trace_id == _ZERO_TRACE
                or span_id == _ZERO_SPAN
                or not 0 <= begin <= end <= MAX_NANOS
            ):
                return None
            ids = _IDS(b"\x0a\x10", trace_id, b"\x12\x08", span_id)
            if parent is not None:
                parent = bytes.fromhex(parent)
                if len(parent) != 8 or parent == _ZERO_SPAN:
                    return None
                ids += _PARENT + parent
        except (LookupError, TypeError, ValueError, AttributeError, OverflowError):
            return None
        times = _TAIL(b"\x30\x01", b"\x39", begin, b"\x41", end)
        return (svc,), trace_id, ids + name + times + tail

    def encode(doc: Any, _mapping: Any = None) -> Item:
        return fast(doc) or encode_span(doc, m)

    def from_text(event: str) -> Item:
        try:
            item = fast(orjson.loads(event))
        except orjson.JSONDecodeError:
            item = None
        return item or encode_span(values.loads(event), m)

    if native and _native is not None:
        fields = [trace_f, span_f, parent_f, service_f, op_f, start_f, duration_f, status_f]
        return _encoders(encode, from_text, _native.SpanEncoder(fields, from_text))
    return _encoders(encode, from_text)


def log_encoder(m: LogMapping, native: bool = True) -> Encoders:
    """(encode(doc, mapping), from_text(event), many(events)) for log records, bound to
    mapping `m`; `native`: many is the native encoder's, when it is built."""
    time_f, severity_f, body_f, service_f = m.timestamp, m.severity, m.body, m.service
    plain = frozenset((time_f, severity_f, body_f, service_f))
    severities: dict[str, bytes] = {}
    bodies: dict[str, bytes] = {}

    if len(m.known) < len(LogMapping.model_fields):  # a field mapped twice: no shortcut
        return _encoders(
            lambda doc, _mapping=None: encode_log(doc, m),
            lambda event: encode_log(values.loads(event), m),
        )

    def fast(doc: Any) -> Item | None:
        """The common shape written inline; None for anything else."""
        try:
            if not doc.keys() <= plain:
                return None
            severity, body = doc.get(severity_f), doc.get(body_f)
            service = doc.get(service_f)
            if service is None or service == "":
                service = "unknown_service"
            elif service.__class__ is not str:
                return None
            if severity is None:
                level = b""
            else:
                level = severities.get(severity)
                if level is None:
                    if severity.__class__ is not str or len(severity) > 32:
                        return None
                    number = severity_number(severity)
                    level = (b"\x10" + bytes((number,)) if number else b"") + (
                        field(b"\x1a", severity.encode()) if severity else b""
                    )
                    if len(severities) < _CACHED:
                        severities[severity] = level
            if body is None:
                text = b""
            else:
                text = bodies.get(body)
                if text is None:
                    if body.__class__ is not str:
                        return None
                    text = field(b"\x2a", field(b"\x0a", body.encode()))
                    if len(bodies) < _CACHED and len(body) <= _LONGEST:
                        bodies[body] = text
            ts = _fromiso(doc[time_f])
            if ts.tzinfo is None:
                return None
            nanos = int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000
            if not 0 <= nanos <= MAX_NANOS:
                return None
        except (LookupError, TypeError, ValueError, AttributeError, UnicodeEncodeError):
            return None
        time = fixed64(nanos)
        return (service,), None, b"\x09" + time + level + text + b"\x59" + time

    def encode(doc: Any, _mapping: Any = None) -> Item:
        return fast(doc) or encode_log(doc, m)

    def from_text(event: str) -> Item:
        try:
            item = fast(orjson.loads(event))
        except orjson.JSONDecodeError:
            item = None
        return item or encode_log(values.loads(event), m)

    if native and _native is not None:
        fields = [time_f, severity_f, body_f, service_f]
        return _encoders(
            encode, from_text, _native.LogEncoder(fields, SEVERITY_NUMBERS, from_text)
        )
    return _encoders(encode, from_text)


def _kind(spec: Any) -> int:
    """A metric's kind as the native encoder numbers them."""
    if spec.type in HISTOGRAMS:
        return 3
    if spec.type == "sum":
        return 2 if spec.temporality == "delta" else 1
    return 0


def metric_texts(
    encoder: MetricEncoder, native: bool = True
) -> tuple[Callable[[str], Item], Many]:
    """(from_text, many) for metrics: encoder(values.loads(event)); many through the native
    encoder when it is built, which keeps its state (start, delta series) in `encoder`."""

    def from_text(event: str) -> Item:
        return encoder(values.loads(event))

    m = encoder.mapping
    if m.narrow:
        names = [m.timestamp, m.service, m.name, m.value]
    else:
        names = [m.timestamp, m.service, *m.metrics]
    others = {m.attributes, m.resource}
    if m.exemplars is not None:
        others |= {m.exemplars.trace_id, m.exemplars.span_id}
    if (
        not native
        or _native is None
        or len(set(names)) < len(names)  # a field mapped twice
        or others & set(names)
        or len(names) > _native.MAX_METRIC_FIELDS
    ):
        return from_text, each(from_text)
    kinds = {name: _kind(spec) for name, spec in m.metrics.items()}
    wide = [] if m.narrow else list(kinds.items())
    fast = _native.MetricEncoder(
        names, wide, kinds, m.narrow, encoder, encoder.last, MAX_SERIES, from_text
    )
    return from_text, fast.many


def item_request(native: bool = True) -> Callable[[list[Item]], bytes]:
    """request(items) of spans or log records: wire.request of the items grouped by
    resource key, in the order the keys come; written natively when built."""
    if native and _native is not None:
        return partial(_native.request, resource=resource_field, scope=SCOPE_FIELD)

    def grouped_request(items: list[Item]) -> bytes:
        grouped: dict[tuple, list[bytes]] = {}
        for key, _, payload in items:
            same = grouped.get(key)
            if same is None:
                grouped[key] = [payload]
            else:
                same.append(payload)
        return request(grouped)

    return grouped_request


def metric_request(encoder: MetricEncoder, native: bool = True) -> Callable[[list], bytes]:
    """encoder.request(items), written natively when built and no point is a histogram's
    observation (those the Python request aggregates)."""
    if not native or _native is None:
        return encoder.request
    write, parts = _native.metric_request, encoder.parts

    def request(items: list) -> bytes:
        body = write(items, parts, resource_field, SCOPE_FIELD)
        return encoder.request(items) if body is None else body

    return request
