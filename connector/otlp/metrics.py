"""Metric JSON -> OTLP NumberDataPoints, grouped into an ExportMetricsServiceRequest.

Wide events carry one value per metric field (`cpu_percent`, `memory_mb`...: the mapping
names them); narrow events carry `name` and `value` fields. Integers become as_int,
floats as_double; any other value fails the event. The remaining fields are data-point
attributes. Sums carry start_time_unix_nano: the run's start for cumulative (the first
point this encoder saw), the previous point of the same series for delta.

An event's item is (resource key, points, size). Its points are one bytes string of
(name 1, NumberDataPoint 2) field pairs, also its size: no Python object per point; an
event with a histogram's observation carries a tuple of (name, point bytes or Observation)
pairs instead (the request aggregates those).
"""

from __future__ import annotations

import math
import struct
from typing import Any

from connector.otlp.histograms import Histograms, Observation
from connector.otlp.mapping import (
    GAUGE,
    HISTOGRAMS,
    MappingError,
    MetricMapping,
    MetricSpec,
    extra_attributes,
    parse_id,
    parse_nanos,
    parse_object,
    parse_service,
)
from connector.otlp.wire import (
    SCOPE_FIELD,
    attributes,
    double,
    field,
    fixed64,
    framed,
    read,
    resource_field,
)
from connector.otlp.wire import resource_key as make_key

__all__ = ["MetricEncoder"]

_SFIXED64 = struct.Struct("<q").pack
_INT64 = (-(2**63), 2**63)
_DELTA, _CUMULATIVE = 1, 2  # AggregationTemporality
# Metric.data: gauge 5, sum 7, histogram 9, exponential_histogram 10
_TAGS = {"gauge": b"\x2a", "sum": b"\x3a", "histogram": b"\x4a", "exponential_histogram": b"\x52"}
MAX_SERIES = 100_000  # delta series whose last point is kept: bounded memory


class MetricEncoder:
    """Stateful (start times): one per output, fed events in the order they are handed."""

    def __init__(self, mapping: MetricMapping):
        self.mapping = mapping
        self.start: int | None = None  # the run's start: the first point's time
        self.last: dict[tuple, int] = {}  # delta series -> time of its previous point
        self._headers: dict[str, tuple[bytes, bytes]] = {}
        self._labels: dict[str, bytes] = {}  # name -> its field 1 in the points' bytes
        self.histograms = Histograms()
        self.seq = 0  # observations numbered as encoded (histograms.py)

    def spec(self, name: str) -> MetricSpec:
        return self.mapping.metrics.get(name, GAUGE)

    def __call__(self, doc: Any, _mapping: Any = None) -> tuple[tuple, Any, bytes]:
        """(resource key, points, size) for one event (the module's docstring), or
        MappingError."""
        m = self.mapping
        if not isinstance(doc, dict):
            raise MappingError("event is not a JSON object")
        time = parse_nanos(doc, m.timestamp)
        service = parse_service(doc, m.service, required=False)
        key = make_key(service, parse_object(doc, m.resource))
        merged = extra_attributes(doc, m.known, parse_object(doc, m.attributes))
        kvs = tuple(attributes(merged)) if merged else ()  # KeyValue messages
        attrs = b"".join(field(b"\x3a", kv) for kv in kvs)
        if m.narrow:
            name = doc.get(m.name)
            if not isinstance(name, str) or not name:
                raise MappingError(f"field '{m.name}' is missing")
            values = [(name, doc.get(m.value), m.value)]
        else:
            values = [(f, doc[f], f) for f in m.metrics if doc.get(f) is not None]
            if not values:
                raise MappingError("none of the mapped metric fields is set")
        # every value checked first: a failed event leaves no state
        get, numbers, observed = m.metrics.get, [], False
        for name, value, source in values:
            spec = get(name, GAUGE)
            if spec.type in HISTOGRAMS:
                numbers.append((name, spec, _observation(value, source)))
                observed = True
            else:
                numbers.append((name, spec, _value(value, source)))
        ids = self._ids(doc) if observed else (b"", b"")
        if self.start is None:
            self.start = time
        points = []
        for name, spec, number in numbers:
            if spec.type in HISTOGRAMS:
                self.seq += 1
                obs = Observation((key, name, attrs), kvs, number, time, *ids, self.seq)
                points.append((name, obs))
                continue
            start = b""
            if spec.type == "sum":
                begin = self.start
                if spec.temporality == "delta":
                    series = (key, name, attrs)
                    begin = self.last.pop(series, begin)
                    if len(self.last) >= MAX_SERIES:
                        del self.last[next(iter(self.last))]  # the least recently seen
                    self.last[series] = time
                start = b"\x11" + fixed64(min(begin, time))
            points.append((name, start + b"\x19" + fixed64(time) + number + attrs))
        if observed:  # only the size counts (an observation's: a guess)
            size = b"".join(p if isinstance(p, bytes) else bytes(48) for _, p in points)
            return key, tuple(points), size
        labels = self._labels
        pairs = []
        for name, point in points:
            label = labels.get(name)
            if label is None:
                label = field(b"\x0a", name.encode())
                if len(labels) < 10_000 and len(name) <= 256:  # narrow names are anything
                    labels[name] = label
            pairs.append(label + field(b"\x12", point))
        packed = b"".join(pairs)
        return key, packed, packed

    def _ids(self, doc: dict) -> tuple[bytes, bytes]:
        """The exemplar's (trace id, span id) of a histogram observation; b"" without."""
        fields = self.mapping.exemplars
        if fields is None:
            return b"", b""
        return (parse_id(doc, fields.trace_id, 16, required=False),
                parse_id(doc, fields.span_id, 8, required=False))

    def header(self, name: str) -> tuple[bytes, bytes]:
        """(Metric's name and unit, the Sum's temporality and monotonic), once per name."""
        cached = self._headers.get(name)
        if cached is None:
            spec = self.spec(name)
            head = field(b"\x0a", name.encode()) + (
                field(b"\x1a", spec.unit.encode()) if spec.unit else b""
            )
            tail = b""
            if spec.type in HISTOGRAMS:  # Histogram / ExponentialHistogram: temporality 2
                tail = b"\x10" + bytes((_DELTA if spec.temporality == "delta" else _CUMULATIVE,))
            if spec.type == "sum":
                tail = b"\x10" + bytes((_DELTA if spec.temporality == "delta" else _CUMULATIVE,))
                tail += b"\x18\x01" if spec.monotonic else b""
            # bounded: narrow events may name anything
            if len(self._headers) < 10_000 and len(name) <= 256:
                self._headers[name] = (head, tail)
            cached = (head, tail)
        return cached

    def parts(self, name: str) -> tuple[bytes, int, bytes]:
        """A Metric's head, its data's field tag and tail (what request() writes around
        the data points), for the native request."""
        head, tail = self.header(name)
        return head, _TAGS[self.spec(name).type][0], tail

    def request(self, items: list[tuple[tuple, tuple, bytes]]) -> bytes:
        """An ExportMetricsServiceRequest: one ResourceMetrics per resource, one Metric per
        name. ResourceMetrics{resource 1, scope_metrics 2}; ScopeMetrics{scope 1,
        metrics 2}; Metric{name 1, unit 3, gauge 5 | sum 7}; Gauge{data_points 1};
        Sum{data_points 1, aggregation_temporality 2, is_monotonic 3}."""
        grouped: dict[tuple, dict[str, list[bytes]]] = {}
        for key, points, _ in items:
            names = grouped.get(key)
            if names is None:
                names = grouped[key] = {}
            if points.__class__ is bytes:
                points = _pairs(points)
            for name, point in points:
                same = names.get(name)
                if same is None:
                    names[name] = [point]
                else:
                    same.append(point)
        out = []
        for key, names in grouped.items():
            metrics = []
            for name, points in names.items():
                head, tail = self.header(name)
                spec = self.spec(name)
                if spec.type in HISTOGRAMS:
                    points = self.histograms.points(spec, points, self.start or 0)
                data = framed(b"\x0a", points)
                tag = _TAGS[spec.type]
                metrics.append(field(b"\x12", head + field(tag, data + tail)))
            scoped = SCOPE_FIELD + b"".join(metrics)
            out.append(
                field(b"\x0a", resource_field(key) + field(b"\x12", scoped))
            )
        return b"".join(out)


def _pairs(packed: bytes) -> list[tuple[str, bytes]]:
    """The (name, point bytes) pairs of an item's packed points."""
    fields = read(packed)
    names, points = fields[::2], fields[1::2]
    return [(name.decode(), point) for (_, name), (_, point) in zip(names, points, strict=True)]


def _observation(value: Any, source: str) -> float:
    """A histogram's observation: a finite number, as a float."""
    if value.__class__ not in (int, float) or not math.isfinite(value):
        raise MappingError(f"field '{source}' must be a finite number", value)
    return float(value)


def _value(value: Any, name: str) -> bytes:
    """as_double 4 (a float) or as_int 6 (an integer); anything else fails the event."""
    cls = value.__class__
    if cls is float:
        return b"\x21" + double(value)
    if cls is int:
        if not _INT64[0] <= value < _INT64[1]:
            raise MappingError(f"field '{name}' is outside int64", value)
        return b"\x31" + _SFIXED64(value)
    if value is None:
        raise MappingError(f"field '{name}' is missing")
    raise MappingError(f"field '{name}' must be a number (not a bool or a string)", value)
