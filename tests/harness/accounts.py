"""The accounts of a run, checked against what arrived: the one checker.

For each output, delivered + failed + filtered == produced; what the sink holds (file
lines, topic records, spans...) is what was delivered, by id where events carry one; and
each failure is dead-lettered exactly once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

from tests.harness.summary import OutputAccount, Summary


def dead_letters(path: Path) -> list[dict]:
    """The dead-letter file's records ([] when there is no file). Split on newlines only:
    a value may hold U+2028 and the like, which other line splitters break at."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n") if line]


def dead_values(path: Path) -> list:
    """The events of the dead letter's records (their `value`)."""
    return [r["value"] for r in dead_letters(path)]


def summary_of(*acks: Any, produced: int) -> Summary:
    """An in-process run's accounts (connector Acks, one per output) as a Summary."""
    return Summary(produced=produced, outputs={
        a.name: OutputAccount(a.delivered, a.failed, a.filtered, reasons=Counter(a.reasons))
        for a in acks
    })


def check_accounts(
    summary: Summary, output: str, *,
    held: Sequence | None = None,
    dead: Sequence[dict] | None = None,
    id_of: Callable[[Any], object] | None = None,
    sent: Iterable | None = None,
    possibly: Collection = (),
    dead_id_of: Callable[[dict], object] | None = None,
) -> OutputAccount:
    """Check one output's accounts, and return them.

    - delivered + failed + filtered == produced; the failures by reason add up to failed.
    - `held`, what the sink holds, is the delivered: as many (plus at most the `possibly`
      written ones: sent, then failed for a timeout). With `id_of` (an item of `held` ->
      its id): no id twice; and with `sent` (the ids of every event handed to the output),
      the held ids are the sent ids less the dead-lettered ones (plus at most `possibly`).
    - `dead`, the dead-letter records (other outputs' are left out; or just the values of
      this output's), holds each failure exactly once: as many as failed, and with
      `dead_id_of` (a record -> the id of its event) no id twice.
    """
    o = summary.outputs[output]
    text = summary.text or summary
    assert o.could_not_start is None, f"output {output}: {o.line}"
    assert o.delivered + o.failed + o.filtered == summary.produced, text
    assert sum(o.reasons.values()) == o.failed, text
    mine = None
    if dead is not None:
        mine = [r for r in dead if not isinstance(r, dict) or r.get("output", output) == output]
        assert len(mine) == o.failed, f"{len(mine)} dead-letter records for {o.failed} failed\n{text}"
        if dead_id_of is not None:
            twice = [i for i, n in Counter(map(dead_id_of, mine)).items() if n > 1]
            assert not twice, f"dead-lettered twice: {twice[:10]}"
    if held is not None:
        assert o.delivered <= len(held) <= o.delivered + len(possibly), (
            f"the sink holds {len(held)} for {o.delivered} delivered\n{text}")
        if id_of is not None:
            got = Counter(map(id_of, held))
            twice = [i for i, n in got.items() if n > 1]
            assert not twice, f"held twice: {twice[:10]}"
            if sent is not None:
                assert mine is not None and dead_id_of is not None, "sent needs dead, dead_id_of"
                delivered = set(sent) - set(map(dead_id_of, mine))
                assert len(delivered) == o.delivered, text
                assert delivered <= set(got) <= delivered | set(possibly), (
                    f"missing {sorted(delivered - set(got))[:10]}, "
                    f"unexpected {sorted(set(got) - delivered - set(possibly))[:10]}")
    return o
