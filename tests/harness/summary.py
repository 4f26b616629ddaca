"""The run summary a `connector run` prints on stderr, read back: the one parser."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class OutputAccount:
    """One output's lines of the summary."""

    delivered: int = 0
    failed: int = 0
    filtered: int = 0  # by its `when` rule
    routed: bool = False  # the line has a `filtered` count (the output has a `when` rule)
    reasons: Counter = field(default_factory=Counter)  # failed, by reason
    could_not_start: str | None = None
    transactions: tuple[int, int] | None = None  # (committed, aborted)
    line: str = ""  # the line after "output NAME: "


@dataclass
class Summary:
    text: str = ""  # from the `summary:` line to the end of stderr
    stop: str = ""  # the `summary:` line: how the run ended
    timestamps: int = -1
    produced: int = -1
    script_errors: int = -1
    error_kinds: Counter = field(default_factory=Counter)  # script errors by class
    outputs: dict[str, OutputAccount] = field(default_factory=dict)

    _OUTPUT = re.compile(r"^  output (.+?): delivered (\d+), failed (\d+)(?:, filtered (\d+))?$")
    _NOSTART = re.compile(r"^  output (.+?): could not start: (.*)$")
    _TRANSACTIONS = re.compile(r"^    transactions: committed (\d+), aborted (\d+)$")
    _REASON = re.compile(r"^    failed: (.*): (\d+)$")

    @property
    def printed(self) -> bool:
        return bool(self.stop)

    @classmethod
    def parse(cls, stderr: str) -> Summary:
        """The last summary on stderr (a run prints one; an empty Summary when none)."""
        lines = stderr.split("\n")
        starts = [i for i, line in enumerate(lines) if line.startswith("summary: ")]
        if not starts:
            return cls()
        s = cls(text="\n".join(lines[starts[-1]:]), stop=lines[starts[-1]])
        current: OutputAccount | None = None
        for line in lines[starts[-1] + 1:]:
            if line.startswith("  timestamps: "):
                s.timestamps = int(line.split()[1])
            elif line.startswith("  events produced: "):
                s.produced = int(line.split()[2])
            elif line.startswith("  script errors: "):
                head, *kinds = line.strip().split(", ")
                s.script_errors = int(head.split()[2])
                for kind in kinds:
                    name, n = kind.rsplit(": ", 1)
                    s.error_kinds[name] = int(n)
            elif m := cls._OUTPUT.match(line):
                current = s.outputs[m[1]] = OutputAccount(
                    int(m[2]), int(m[3]), int(m[4] or 0), m[4] is not None,
                    line=line.split(": ", 1)[1],
                )
            elif m := cls._NOSTART.match(line):
                current = s.outputs[m[1]] = OutputAccount(
                    could_not_start=m[2], line=line.split(": ", 1)[1]
                )
            elif current is not None and (m := cls._TRANSACTIONS.match(line)):
                current.transactions = (int(m[1]), int(m[2]))
            elif current is not None and (m := cls._REASON.match(line)):
                current.reasons[m[1]] += int(m[2])
        return s

    def delivered(self, output: str) -> int:
        return self.outputs[output].delivered

    def failed(self, output: str) -> int:
        return self.outputs[output].failed

    def reasons(self, output: str) -> Counter:
        return self.outputs[output].reasons

    def numbers(self, output: str | None = None) -> dict[str, int]:
        """timestamps, produced, script_errors and, for `output`, its delivered / failed
        (/ filtered, with a `when` rule): what is there, as a dict."""
        out = {k: v for k, v in (("timestamps", self.timestamps), ("produced", self.produced),
                                 ("script_errors", self.script_errors)) if v >= 0}
        o = self.outputs.get(output) if output else None
        if o is not None and o.could_not_start is None:
            out |= {"delivered": o.delivered, "failed": o.failed}
            if o.routed:
                out["filtered"] = o.filtered
        return out
