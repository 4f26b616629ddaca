"""Where a run stands in its schedule, as the live view shows it (no rich here: run.py
imports it whether or not a view is drawn)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["NOWHERE", "Position"]


@dataclass(frozen=True)
class Position:
    """Where the run stands in its schedule: a backfill's total calls, the seconds a
    --duration allows, or when a live schedule ends (None when unknown)."""

    total: int | None = None
    duration: float | None = None
    end: datetime | None = None  # live: where the schedule ends (None: it has no end)


NOWHERE = Position()  # nothing known
