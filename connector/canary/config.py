"""The live canary's settings: the `verify:` block of a kafka output."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from connector.fields import Strict

__all__ = ["CanaryConfig", "TraceCanaryConfig", "seconds"]

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def seconds(value: object, name: str) -> float:
    """10, 2.5, "10s", "500ms", "1m" -> seconds; ValueError naming the key otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _SPAN.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{name}: {value!r} is not a duration (10, 10s, 500ms, 1m)")
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


class CanaryConfig(Strict):
    every: float = Field(10.0, description="seconds between samples (10, 10s, 1m)")
    sample: int = Field(20, ge=1, le=1000, description="acknowledged records taken each time")
    delay: float = Field(5.0, description="seconds to wait before reading a sample back")
    timeout: float = Field(
        60.0, description="seconds from acknowledgement after which a record is missing"
    )

    @field_validator("every", "delay", "timeout", mode="before")
    @classmethod
    def _duration(cls, value: object, info) -> float:
        got = seconds(value, info.field_name)
        if got < 0 or (got == 0 and info.field_name != "delay"):
            raise ValueError(f"{info.field_name} must be greater than 0")
        return got


class TraceCanaryConfig(CanaryConfig):
    """An otlp output's canary: `sample` traces at a time, read back from a trace store."""

    query: str = Field(
        min_length=1, description="the store's query API: Jaeger http://HOST:16686, Tempo :3200"
    )
    backend: Literal["jaeger", "tempo"] = "jaeger"
