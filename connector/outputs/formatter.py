"""How stdout and file outputs write an event: as it is, or as compact JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import orjson

from connector.fields import Strict

__all__ = ["FormatterConfig", "format_batch"]


class FormatterConfig(Strict):
    format: Literal["plain", "json"] = "plain"


def format_batch(events: list[str], fmt: str, fail: Callable[[str, str], None]) -> list[str]:
    """The lines to write; under `json` an event that is not JSON goes to `fail`."""
    if fmt == "plain":
        return events
    lines = []
    for event in events:
        try:
            lines.append(orjson.dumps(orjson.loads(event)).decode())
        except orjson.JSONDecodeError as exc:
            fail("not JSON", event, detail=str(exc))
    return lines
