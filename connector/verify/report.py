"""What verify found, per output: counts, reasons, and (for --json) the details."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["COLUMNS", "Progress", "Tally", "print_json", "print_table"]

COLUMNS = ("expected", "found", "missing", "altered", "aborted", "incomplete", "extra")
MAX_DETAILS = 1000  # per output in --json: enough to act on, never the whole run


@dataclass
class Tally:
    name: str
    plugin: str
    what: str  # "records", "traces", "lines", "counts (not read back)"
    where: str = ""  # topic(s), the query API, the path
    expected: int = 0
    found: int = 0
    missing: int = 0
    altered: int = 0
    aborted: int = 0
    incomplete: int = 0
    extra: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    details: list[dict] = field(default_factory=list)
    note: str = ""

    def add(self, result: str, reason: str | None = None, n: int = 1, **detail) -> None:
        setattr(self, result, getattr(self, result) + n)
        if reason:
            self.reasons[f"{result}: {reason}"] += n
        if detail and len(self.details) < MAX_DETAILS:
            self.details.append(
                {"result": result, **({"reason": reason} if reason else {}), **detail}
            )

    @property
    def failed(self) -> bool:
        return bool(self.missing or self.altered or self.aborted or self.incomplete)

    def as_dict(self) -> dict:
        return {
            "output": self.name,
            "plugin": self.plugin,
            "what": self.what,
            "where": self.where,
            **{c: getattr(self, c) for c in COLUMNS},
            "reasons": dict(self.reasons),
            "details": self.details,
            **({"note": self.note} if self.note else {}),
        }


def print_table(tallies: list[Tally], notes: list[str], out: TextIO = sys.stdout) -> None:
    rows = [("output", "what", *COLUMNS)]
    for t in tallies:
        rows.append((t.name, t.what, *(f"{getattr(t, c):,}" for c in COLUMNS)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(w) for cell, w in zip(row[2:], widths[2:], strict=True)]
        print("  ".join(cells).rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)
    for t in tallies:
        where = f" ({t.where})" if t.where else ""
        for reason, count in sorted(t.reasons.items()):
            print(f"  {t.name}{where}: {count:,} {reason}", file=out)
        if t.note:
            print(f"  {t.name}: {t.note}", file=out)
    for note in notes:
        print(f"note: {note}", file=out)
    bad = [t.name for t in tallies if t.failed]
    verdict = (
        f"NOT VERIFIED: {', '.join(bad)}"
        if bad
        else "verified: everything recorded was found intact"
    )
    print(verdict, file=out)


def print_json(tallies: list[Tally], notes: list[str], code: int, out: TextIO = sys.stdout) -> None:
    doc = {"outputs": [t.as_dict() for t in tallies], "notes": notes, "exit": code}
    json.dump(doc, out, indent=2)
    out.write("\n")


class Progress:
    """A progress line on stderr on long read-backs (every 2 s, not before 2 s)."""

    EVERY = 2.0

    def __init__(self, quiet: bool = False, out: TextIO = sys.stderr):
        self.quiet, self.out = quiet, out
        self._next = time.monotonic() + self.EVERY
        self.shown = False

    def update(self, what: str, done: int, total: int) -> None:
        now = time.monotonic()
        if self.quiet or now < self._next:
            return
        self._next = now + self.EVERY
        end = "\r" if self.out.isatty() else "\n"
        print(f"verify: {what}: {done:,} of {total:,}", end=end, file=self.out, flush=True)
        self.shown = True

    def done(self) -> None:
        if self.shown and self.out.isatty():
            print(file=self.out)
