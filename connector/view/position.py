"""Where a run stands in its schedule, as the live view shows it (no rich here: run.py
imports it whether or not a view is drawn)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NOWHERE", "Position"]


@dataclass(frozen=True)
class Position:
    """Where the run stands in its schedule: a backfill's total calls, or the seconds a
    --duration allows (None when unknown)."""

    total: int | None = None
    duration: float | None = None


NOWHERE = Position()  # nothing known
