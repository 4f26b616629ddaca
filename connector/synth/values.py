"""Random draws with a known bound: attribute values of controlled cardinality, latencies.

Each spec is a small pydantic model that validates the YAML and compiles to a sampler,
a plain function of a `random.Random`, so the hot loop calls one closure per value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from random import Random
from typing import Any

from pydantic import Field, field_validator, model_validator

from connector.fields import Strict

__all__ = ["Latency", "Sampler", "ValueSpec", "ms", "value_sampler"]

Sampler = Callable[[Random], Any]
Z99 = 2.3263478740408408  # the standard normal's 99th percentile: p99 = p50 * exp(Z99 * sigma)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s)?\s*$")
_TO_MS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0, None: 1.0}


def ms(value: Any) -> float:
    """A duration in milliseconds: a number (ms) or a string such as `20ms`, `1.5s`, `300us`."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 20ms or 1.5s, got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        found = _DURATION.match(str(value))
        if not found:
            raise ValueError(f"expected a duration like 20ms or 1.5s, got {value!r}")
        number = float(found.group(1)) * _TO_MS[found.group(2)]
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"a duration must be finite and not negative, got {value!r}")
    return number


class Latency(Strict):
    """`{p50: 20ms, p99: 120ms}` (a lognormal through both) or `{fixed: 5ms}`."""

    p50: float | None = None
    p99: float | None = None
    fixed: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, int | float | str) and not isinstance(data, bool):
            return {"fixed": data}  # `latency: 5ms`
        return data

    @field_validator("p50", "p99", "fixed", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else ms(value)

    @model_validator(mode="after")
    def _one_form(self) -> Latency:
        if self.fixed is not None:
            if self.p50 is not None or self.p99 is not None:
                raise ValueError("give either fixed, or p50 and p99, not both")
            return self
        if self.p50 is None or self.p99 is None:
            raise ValueError("give p50 and p99 (a lognormal through both), or fixed")
        if self.p50 <= 0 or self.p99 < self.p50:
            raise ValueError(f"need 0 < p50 <= p99, got p50 {self.p50} ms, p99 {self.p99} ms")
        return self

    def sampler(self) -> Callable[[Random], float]:
        if self.fixed is not None:
            fixed = self.fixed
            return lambda _rng: fixed
        mu, sigma = math.log(self.p50), (math.log(self.p99) - math.log(self.p50)) / Z99
        if sigma == 0:
            p50 = self.p50
            return lambda _rng: p50
        return lambda rng: rng.lognormvariate(mu, sigma)


class ValueSpec(Strict):
    """An attribute value drawn with a bound on how many distinct values it takes:
    `{ids: 1000, prefix: user-}` (N ids), `{one_of: [a, b]}` or `{one_of: {a: 3, b: 1}}`
    (weighted), `{range: [1, 5]}` (integers, or floats when a bound is a float)."""

    ids: int | None = Field(None, ge=1, le=10_000_000)
    prefix: str = ""
    one_of: list[Any] | dict[str, float] | None = None
    range: tuple[int, int] | tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ValueSpec:
        given = [k for k in ("ids", "one_of", "range") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of ids, one_of, range")
        if self.one_of is not None:
            if not self.one_of:
                raise ValueError("one_of needs at least one value")
            if isinstance(self.one_of, dict) and (
                min(self.one_of.values()) < 0 or sum(self.one_of.values()) <= 0
            ):
                raise ValueError("one_of weights must be >= 0 with a positive total")
            for value in self.one_of:
                _scalar(value)
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"range [{self.range[0]}, {self.range[1]}] is empty")
        return self

    def cardinality(self) -> float:
        """The most distinct values this spec can give (inf for a float range)."""
        if self.ids is not None:
            return self.ids
        if self.one_of is not None:
            return len(self.one_of)
        low, high = self.range
        if isinstance(low, int) and isinstance(high, int):
            return high - low + 1
        return math.inf

    def sampler(self) -> Sampler:
        if self.ids is not None:
            n, prefix = self.ids, self.prefix
            return lambda rng: f"{prefix}{rng.randrange(n)}"
        if isinstance(self.one_of, dict):
            values, weights = list(self.one_of), list(self.one_of.values())
            return lambda rng: rng.choices(values, weights)[0]
        if self.one_of is not None:
            values = list(self.one_of)
            return lambda rng: values[rng.randrange(len(values))]
        low, high = self.range
        if isinstance(low, int) and isinstance(high, int):
            return lambda rng: rng.randint(low, high)
        return lambda rng: rng.uniform(low, high)


def _scalar(value: Any) -> Any:
    if not isinstance(value, str | int | float | bool):
        raise ValueError(f"an attribute value must be a string, number or bool, got {value!r}")
    return value


def value_sampler(value: Any) -> tuple[Sampler | None, Any]:
    """(sampler, None) for a ValueSpec, (None, constant) for a plain value."""
    if isinstance(value, ValueSpec):
        return value.sampler(), None
    return None, value
