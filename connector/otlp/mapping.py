"""Which event field holds each OTLP field, per signal, and the checks every signal shares.

Events are JSON objects; every field name can be remapped. An event that does not fit
raises MappingError, whose `reason` is bounded (a metric label) and whose `detail` holds
the offending value (the dead-letter record).
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

from pydantic import Field, model_validator

from connector.fields import Strict

__all__ = [
    "DEFAULT_MAPPING",
    "ExemplarFields",
    "LogMapping",
    "MappingError",
    "MetricMapping",
    "MetricSpec",
    "SpanMapping",
    "mapping_detail",
    "mapping_reason",
    "unexpected_reason",
]

MAX_NANOS = 2**64 - 1
_ZEROS = {8: bytes(8), 16: bytes(16)}


class _FieldNames(Strict):
    """A mapping whose every value is an event field name."""

    @cached_property
    def known(self) -> frozenset[str]:
        """The mapped field names: every other field becomes an attribute."""
        return frozenset(self.model_dump().values())


class SpanMapping(_FieldNames):
    """Which event field holds each span field."""

    trace_id: str = "trace_id"
    span_id: str = "span_id"
    parent_span_id: str = "parent_span_id"
    service: str = "service"
    operation: str = "operation"
    start_time: str = "start_time"
    duration_ms: str = "duration_ms"
    end_time: str = "end_time"
    status: str = "status"
    error_message: str = "error_message"
    kind: str = "kind"
    attributes: str = "attributes"
    resource: str = "resource"
    links: str = "links"
    events: str = "events"


DEFAULT_MAPPING = SpanMapping()


class LogMapping(_FieldNames):
    """Which event field holds each log record field."""

    timestamp: str = "timestamp"
    severity: str = "severity"
    body: str = "body"
    service: str = "service"
    trace_id: str = "trace_id"
    span_id: str = "span_id"
    attributes: str = "attributes"
    resource: str = "resource"


# OpenTelemetry SDKs' default explicit bounds
DEFAULT_BOUNDS = (0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)
HISTOGRAMS = ("histogram", "exponential_histogram")


class MetricSpec(Strict):
    type: Literal["gauge", "sum", "histogram", "exponential_histogram"] = "gauge"
    monotonic: bool = False
    temporality: Literal["cumulative", "delta"] = "cumulative"
    unit: str = ""
    bounds: tuple[float, ...] | None = Field(None, description="histogram: bucket upper bounds")
    scale: int = Field(20, ge=-10, le=20, description="exponential_histogram: the first scale")
    max_size: int = Field(160, ge=2, le=16_384, description="exponential_histogram: buckets "
                          "per sign; the scale goes down to fit")

    @model_validator(mode="after")
    def _sum_only(self) -> MetricSpec:
        if self.type != "sum" and self.monotonic:
            raise ValueError("monotonic applies to type: sum only")
        if self.bounds is not None:
            if self.type != "histogram":
                raise ValueError("bounds apply to type: histogram only")
            finite = all(math.isfinite(b) for b in self.bounds)
            if not finite or any(a >= b for a, b in itertools.pairwise(self.bounds)):
                raise ValueError("bounds must be finite and strictly increasing")
        return self


GAUGE = MetricSpec()


class ExemplarFields(Strict):
    """The event fields holding the trace and span id of a histogram's observation."""

    trace_id: str = "trace_id"
    span_id: str = "span_id"


class MetricMapping(Strict):
    """Wide events (`metrics:` names the value fields) or narrow ones (`name:` and `value:`
    fields; `metrics:` then gives type and unit per metric name, unlisted: gauge)."""

    timestamp: str = "timestamp"
    service: str = "service"
    attributes: str = "attributes"
    resource: str = "resource"
    name: str | None = Field(None, description="narrow events: the field holding the name")
    value: str | None = Field(None, description="narrow events: the field holding the value")
    metrics: dict[str, MetricSpec] = Field(default_factory=dict)
    exemplars: ExemplarFields | None = Field(
        None, description="histograms: the fields holding each observation's trace/span id"
    )

    @model_validator(mode="after")
    def _one_shape(self) -> MetricMapping:
        if (self.name is None) != (self.value is None):
            raise ValueError("narrow events need both name and value (the fields holding them)")
        if self.value is None and not self.metrics:
            raise ValueError(
                "metrics: name the value fields of wide events (cpu_percent: {type: gauge}), "
                "or set name and value for narrow events"
            )
        return self

    @property
    def narrow(self) -> bool:
        return self.value is not None

    @cached_property
    def known(self) -> frozenset[str]:
        """Fields that are no data-point attribute."""
        fields = {self.timestamp, self.service, self.attributes, self.resource}
        if self.exemplars is not None:
            fields |= {self.exemplars.trace_id, self.exemplars.span_id}
        if self.narrow:
            return frozenset(fields | {self.name, self.value})
        return frozenset(fields | set(self.metrics))


class MappingError(ValueError):
    """This event cannot be mapped. `reason` names the field and the rule (a bounded set,
    fit for a metric label); the message adds the offending value."""

    def __init__(self, reason: str, *got: Any):
        super().__init__(reason, *got)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason}, got {self.args[1]!r}" if len(self.args) > 1 else self.reason

    @property
    def detail(self) -> str | None:
        return f"got {self.args[1]!r}" if len(self.args) > 1 else None


def unexpected_reason(exc: Exception, noun: str = "span") -> str:
    """Bounded: the exception's type, never its message (that goes to the detail)."""
    if isinstance(exc, UnicodeEncodeError):  # an escaped lone surrogate ("\ud800") in a field
        return f"cannot map to a {noun}: a string is not UTF-8 (lone surrogate)"
    return f"cannot map to a {noun}: unexpected {type(exc).__name__}"


def mapping_detail(exc: Exception) -> str | None:
    return exc.detail if isinstance(exc, MappingError) else str(exc)


def mapping_reason(exc: Exception, noun: str = "span") -> str:
    """The bounded reason (a metric label) for an event that cannot be mapped."""
    if isinstance(exc, MappingError):
        return f"cannot map to a {noun}: {exc.reason}"
    return f"not JSON: cannot map to a {noun}"


# -- field checks every signal shares --------------------------------------------------


def parse_id(doc: dict, name: str, size: int, required: bool = True) -> bytes:
    """A hex trace id (16 bytes) or span id (8): b"" when absent and not required."""
    value = doc.get(name)
    if value is None or value == "":
        if required:
            raise MappingError(f"field '{name}' is missing")
        return b""
    if not isinstance(value, str) or len(value) != size * 2:
        raise MappingError(f"field '{name}' must be {size * 2} hex characters", value)
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise MappingError(f"field '{name}' is not hex", value) from None
    if len(raw) != size:  # fromhex skips whitespace: "ab cd" is not an id
        raise MappingError(f"field '{name}' is not hex", value)
    if raw == _ZEROS[size]:
        raise MappingError(f"field '{name}' is all zeros, which OTLP treats as invalid")
    return raw


def parse_nanos(doc: dict, name: str) -> int:
    """An ISO-8601 time (naive: UTC) or seconds since the epoch, as Unix nanoseconds."""
    value = doc.get(name)
    if value is None:
        raise MappingError(f"field '{name}' is missing")
    if value.__class__ in (int, float):  # not bool: True is no time
        nanos = value * 1_000_000_000  # seconds since the epoch
        # checked before int(): a float may be inf (1e300 s), which int() cannot take
        if not 0 <= nanos <= MAX_NANOS:
            raise MappingError(f"field '{name}' is outside what OTLP can carry (1970-2554)", value)
        return int(nanos)
    try:
        ts = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise MappingError(f"field '{name}' is not an ISO-8601 time", value) from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    # whole seconds from the float (exact: a fraction never rounds up a second) + micros
    nanos = int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000
    if not 0 <= nanos <= MAX_NANOS:
        raise MappingError(f"field '{name}' is outside what OTLP can carry (1970-2554)", value)
    return nanos


def duration_nanos(duration: int | float, name: str) -> int:
    """duration_ms -> nanoseconds; MappingError where round() would overflow (1e303)."""
    nanos = duration * 1_000_000
    if not nanos <= MAX_NANOS:  # also inf, and nan
        raise MappingError(f"field '{name}' is too large", duration)
    if nanos < -MAX_NANOS:  # -inf; a small negative still rounds as the short path does
        raise MappingError("the span ends before it starts")
    return round(nanos)


def parse_service(doc: dict, name: str, required: bool = True) -> str:
    """The resource's service.name; logs and metrics default to unknown_service, as the
    OpenTelemetry SDKs do."""
    service = doc.get(name)
    if isinstance(service, str) and service:
        return service
    if service is None or service == "":
        if required:
            raise MappingError(f"field '{name}' is missing")
        return "unknown_service"
    raise MappingError(f"field '{name}' must be a string", service)


def parse_object(doc: dict, name: str) -> dict | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, dict):
        raise MappingError(f"field '{name}' must be an object")
    return value


def extra_attributes(doc: dict, known: frozenset[str], attributes: dict | None) -> dict:
    """The fields no mapping names, then the `attributes` object (it wins on a clash)."""
    extra = doc.keys() - known  # a set difference in C: usually empty
    if not extra:
        return attributes or {}
    return {k: v for k, v in doc.items() if k in extra} | (attributes or {})
