"""The summary a run prints at its end: the accounts first, then what went wrong."""

from __future__ import annotations

from typing import TextIO

from connector.canary.summary import canary_line
from connector.stats import RunStats
from connector.trace_check import summary as trace_summary

__all__ = ["print_summary"]


def print_summary(s: RunStats, out: TextIO) -> None:
    elapsed = max(s.finished - s.started, 1e-9)
    lines = [
        f"summary: {'stopped: ' + s.stop_reason if s.stop_reason else 'schedule complete'}"
        f" after {elapsed:.3f}s",
        f"  timestamps: {sum(s.timestamps)}",
        f"  events produced: {s.produced} ({s.produced / elapsed:,.0f}/s)",
        *(
            [f"  replayed: {s.replayed} produce() call(s) settled by an earlier run, not sent"]
            if s.replayed
            else []
        ),
        f"  script errors: {sum(s.script_errors.values())}"
        + "".join(f", {k}: {v}" for k, v in sorted(s.script_errors.items())),
    ]
    for o in s.outputs:
        if o.could_not_start is not None:
            lines.append(f"  output {o.name}: could not start: {o.could_not_start}")
            continue
        filtered = f", filtered {o.filtered}" if o.routed else ""  # by its `when` rule
        lines.append(f"  output {o.name}: delivered {o.delivered}, failed {o.failed}{filtered}")
        if o.transactions is not None:
            lines.append(
                f"    transactions: committed {o.transactions['committed']}, "
                f"aborted {o.transactions['aborted']}"
            )
        if o.verify_checked is not None:
            lines.append(canary_line(o.verify_checked, o.verify_visible))
        if o.broken is not None:
            lines.append(f"    broken: {o.broken}")
        lines += [f"    failed: {reason}: {n}" for reason, n in o.reasons.most_common()]
        if o.dead_letter_lost:
            lines.append(f"    dead letter: {o.dead_letter_lost} record(s) could not be written")
    lines += [f"  {problem}" for problem in s.problems]
    if s.traces is not None:
        lines.append(f"  {trace_summary(s.traces, s.unreadable_spans)}")
        broken = [r for r in s.traces if r.broken]
        lines += [f"    {r}" for r in broken[:20]]
        if len(broken) > 20:
            lines.append(f"    ... and {len(broken) - 20} more broken trace(s)")
    if s.mode == "live" and s.lag.count:
        lines.append(f"  schedule lag p99: <= {s.lag.quantile(0.99) * 1000:g} ms")
    print("\n".join(lines), file=out, flush=True)
