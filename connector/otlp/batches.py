"""A sender's batches, and how a mapped batch becomes export requests under
batch.max_bytes: one request when it fits; else cut in order into parts of items up to the
limit (less headroom for the resources' framing), a part the framing still takes over it
halved, and an item over the limit alone failed with a reason instead of a request."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import Field

from connector.fields import Strict

__all__ = ["BatchConfig", "Part", "SendBatch", "requests"]


class BatchConfig(Strict):
    max_spans: int = Field(
        8192, gt=0, description="items (spans, log records, metric events) per batch"
    )  # the OpenTelemetry Collector batch default
    max_delay: float = Field(0.2, gt=0, description="seconds an item may wait for its batch")
    # Under 4 MiB, the gRPC max receive size of Collectors and Jaeger: a larger request is
    # refused whole (RESOURCE_EXHAUSTED), however many good items it carries.
    max_bytes: int = Field(
        4_000_000, ge=1024, description="bytes per export request (uncompressed)"
    )


@dataclass
class SendBatch:
    events: list[str] = field(default_factory=list)
    # the events' docs where a `when` rule parsed them (None: not JSON); None: none did
    docs: list | None = None
    items: list = field(default_factory=list)  # once mapped: the events' items, in step
    handed: float = field(default_factory=time.monotonic)
    size: int = 0  # the events' characters: a batch ends past batch.max_bytes of them
    mapped: bool = False
    settled: bool = False


# (the part of a batch, its request body, or None and the reason it has none, detail)
Part = tuple[SendBatch, bytes | None, str | None, str]


def requests(
    batch: SendBatch, request: Callable[[list], bytes], limit: int, too_large: str, noun: str
) -> list[Part]:
    """The mapped batch's parts, consecutive and in order (the module's docstring)."""
    body = request(batch.items)
    if len(body) <= limit:
        return [(batch, body, None, "")]
    budget = limit - limit // 32
    parts: list[Part] = []
    start, size = 0, 0
    for i, item in enumerate(batch.items):
        n = len(item[2]) + 6  # the item, its tag and length
        if n > limit or (size + n > budget and i > start):
            if i > start:
                parts += _halved(_part(batch, start, i), request, limit, too_large)
            start, size = i, 0
            if n > limit:  # no request can carry it
                parts.append((_part(batch, i, i + 1), None, too_large, f"{noun} of {n - 6} bytes"))
                start = i + 1
                continue
        size += n
    if start < len(batch.items):
        parts += _halved(_part(batch, start, len(batch.items)), request, limit, too_large)
    return parts


def _part(batch: SendBatch, start: int, end: int) -> SendBatch:
    return SendBatch(
        batch.events[start:end], None, batch.items[start:end], batch.handed, mapped=True
    )


def _halved(
    batch: SendBatch, request: Callable[[list], bytes], limit: int, too_large: str
) -> list[Part]:
    body = request(batch.items)
    if len(body) <= limit:
        return [(batch, body, None, "")]
    if len(batch.items) == 1:
        return [(batch, None, too_large, f"request of {len(body)} bytes")]
    half = len(batch.items) // 2
    return [
        *_halved(_part(batch, 0, half), request, limit, too_large),
        *_halved(_part(batch, half, len(batch.items)), request, limit, too_large),
    ]
