"""The live canary's line in the run summary."""

from __future__ import annotations

from collections import Counter

from connector.stats import Histogram

__all__ = ["canary_line"]


def canary_line(checked: Counter[str], visible: Histogram | None) -> str:
    order = ("found", "missing", "altered", "incomplete")
    results = sorted(checked, key=lambda r: (order.index(r) if r in order else 9, r))
    line = "    canary: " + ", ".join(f"{r} {checked[r]}" for r in results)
    if visible is not None and visible.count:
        line += f"; visible p99 <= {visible.quantile(0.99):g} s"
    return line
