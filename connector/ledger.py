"""What a worker has handed to its outputs, in memory its parent shares, and the parent's
accounts of a worker killed without a final word (read from that record)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import TYPE_CHECKING

from connector.outputs import Acks
from connector.stats import RunStats

if TYPE_CHECKING:
    from connector.pipeline import Pipeline

__all__ = ["Ledger", "died"]


class Ledger:
    """What a worker has handed to its outputs, kept in memory its parent shares: written
    by the worker's hot path as each batch is handed over (a few stores, no lock, no call
    into the outputs), read by the parent when the worker is killed without a final word.

    Layout: [0] the size of the batch being handed over (0 between hand-offs); then per
    input its produce() calls, then its events, as of the last hand-off; then per output
    the events handed to it before the batch under way."""

    def __init__(self, inputs: int, outputs: int, array=None):
        self.inputs, self.outputs = inputs, outputs
        self.array = array if array is not None else [0] * (1 + 2 * inputs + outputs)

    @classmethod
    def shared(cls, ctx, inputs: int, outputs: int) -> Ledger:
        return cls(inputs, outputs, ctx.RawArray("q", 1 + 2 * inputs + outputs))

    def writer(self, pipeline: Pipeline):
        a, n, handles = self.array, self.inputs, pipeline.outputs
        calls, extra = pipeline.calls, pipeline.extra
        first = 1 + 2 * n

        def note(batch: int) -> None:
            if batch:  # a batch handed over: what was produced up to it, then its size
                for i in range(n):
                    a[1 + i] = calls[i]
                    a[1 + n + i] = calls[i] + extra[i]
            else:  # handed: what each output has
                for k, handle in enumerate(handles):
                    a[first + k] = handle.acks.handed
            a[0] = batch

        return note

    def read(self) -> tuple[int, list[int], list[int], list[int]]:
        """(batch under way, calls per input, events per input, handed per output)."""
        a, n = list(self.array), self.inputs
        return a[0], a[1 : 1 + n], a[1 + n : 1 + 2 * n], a[1 + 2 * n :]


def died(
    w: int, stats: RunStats, ledger: Ledger, entries: list, exitcode: int | None, batch_size: int
) -> tuple[RunStats, int]:
    """Worker w's accounts once it is gone without a final word: its last report `stats`
    corrected by its ledger; and how many events it had handed over without an outcome."""
    batch, calls, events, handed = ledger.read()
    reason = f"worker {w} died (possibly written)"
    outputs, unsure = [], 0
    for o, before, entry in zip(stats.outputs, handed, entries, strict=True):
        total = max(o.handed, before + batch)  # the batch under way: maybe handed
        lost = total - o.delivered - o.failed
        unsure = max(unsure, lost)
        if lost > 0 and entry.settings.dead_letter is not None:
            # their values died with it: lines without one keep the count exact
            acks = Acks(o.name, o.plugin, entry.settings.dead_letter)
            acks.fail_all(reason, [None] * lost)
            acks.settle()
            o = dataclasses.replace(o, dead_letter_lost=o.dead_letter_lost + acks.dead_letter_lost)
        reasons = o.reasons + Counter({reason: lost}) if lost > 0 else o.reasons
        outputs.append(
            dataclasses.replace(o, handed=total, failed=o.failed + max(lost, 0), reasons=reasons)
        )
    unknown = max(batch_size, batch)
    stats = dataclasses.replace(
        stats,
        outputs=outputs,
        calls=calls,  # what it produced up to its last hand-off; the rest is unknown
        events=events,
        alive=False,
        exhausted=False,  # its last position may not cover what it had in hand
        stalled=0.0,
        problems=[
            *stats.problems,
            f"worker {w} died (exit code {exitcode}): {unsure} event(s) it had handed "
            f"over without an outcome are counted failed (possibly written); what it "
            f"produced after its last hand-off is unknown: at most {unknown} event(s) "
            "and one produce() call's, never handed to an output",
        ],
    )
    return stats, unsure
