"""`bench/run.py --compare REF`: the same rows, for the code at REF and the code here, in one
run, alternating (these machines are noisy, so side by side is the only fair comparison).

REF is exported with `git archive` into the run's temp folder and installed there into a
venv of its own, from its own uv.lock, with its own scripts/setup.sh: the old code with the
old dependencies. Every connector row then gets a twin `NAME @REF` that runs right after it
in each round, with the same config, from that folder; so does the encoder's bare loop E.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["FLOOR", "build", "short_rows", "table", "turns", "twins"]

FLOOR = 0.95  # a row more than 5% below the old code's median is short


def build(root: Path, ref: str, work: Path) -> Path:
    """REF's tree under `work`, with its own .venv: returns the folder."""
    folder = work / "compare-ref"
    folder.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", ref],
        capture_output=True, check=False,
    )
    if archive.returncode:
        sys.exit(f"--compare {ref}: git archive failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    # uv leaves lock files in TMPDIR: keep them in the run's folder, gone with it
    setup = subprocess.run(
        ["bash", "-c", "source scripts/setup.sh && require python && sync_venv"],
        cwd=folder, capture_output=True, text=True, check=False,
        env={**os.environ, "TMPDIR": str(work)},
    )
    if setup.returncode:
        sys.exit(f"--compare {ref}: installing it failed:\n{setup.stdout}{setup.stderr}")
    return folder


def twins(plan: list[tuple], folder: Path, ref: str) -> list[tuple]:
    """Each connector row followed by its twin on REF (`python -m connector` from REF's
    folder and venv; every other argument, the config included, the same)."""
    python, out = str(folder / ".venv" / "bin" / "python"), []
    for step in plan:
        out.append(step)
        ex, name, cmd, from_summary, counted = step
        if from_summary and cmd[:3] == [sys.executable, "-m", "connector"]:
            out.append((ex, f"{name} @{ref}", [python, *cmd[1:]], True, counted, folder))
        elif cmd[2:4] == ["--inner", "encode"]:  # E: REF's own encoder, by REF's bench
            twin = [python, str(folder / "bench" / "run.py"), *cmd[2:]]
            out.append((ex, f"{name} @{ref}", twin, False, counted, folder))
    return out


def turns(plan: list[tuple], r: int) -> list[tuple]:
    """Round r's order: a row and its twin swap places every other round, so neither
    always runs first (a warm page cache, a broker that has just compacted)."""
    if r % 2:
        return plan
    out = list(plan)
    for k in range(len(out) - 1):
        if len(out[k + 1]) > 5 and len(out[k]) == 5:  # (row, its twin) -> (twin, row)
            out[k], out[k + 1] = out[k + 1], out[k]
    return out


def ratios(results: dict, ref: str) -> dict[tuple[str, str], float]:
    """(example, row) -> this code's median over REF's."""
    tag, out = f" @{ref}", {}
    for ex, rows in results.items():
        for name, row in rows.items():
            old = rows.get(f"{name}{tag}")
            if old and old["median"]:
                out[(ex, name)] = row["median"] / old["median"]
    return out


def short_rows(results: dict, ref: str) -> list[tuple[str, str]]:
    return [key for key, ratio in ratios(results, ref).items() if ratio < FLOOR]


def table(results: dict, ref: str, rerun: dict[tuple[str, str], float]) -> str:
    lines = [
        f"\nthis code against {ref} (medians, alternating rounds; short: below {FLOOR:.2f})",
        "",
        f"| {'example':<13} | {'measurement':<18} | {'this':>10} | {ref[:10]:>10} | "
        f"{'ratio':>6} | {'rerun':>6} |",
        f"|{'-' * 15}|{'-' * 20}|{'-' * 12}|{'-' * 12}|{'-' * 8}|{'-' * 8}|",
    ]
    for (ex, name), ratio in ratios(results, ref).items():
        again = rerun.get((ex, name))
        lines.append(
            f"| {ex:<13} | {name:<18} | {results[ex][name]['median']:>10,.0f} | "
            f"{results[ex][f'{name} @{ref}']['median']:>10,.0f} | {ratio:>6.2f} | "
            f"{'' if again is None else f'{again:.2f}':>6} |"
        )
    return "\n".join(lines)
