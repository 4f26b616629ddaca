"""What the live view shows, drawn with rich from the latest RunStats and the recent
samples: a pure function, so the sampler's thread draws and a test can render it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from connector.stats import RunStats
from connector.view.position import NOWHERE, Position
from connector.view.samples import Sample
from connector.view.series import rate

__all__ = ["Position", "screen", "sparkline"]

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 60) -> str:
    """The last `width` values as block characters, scaled to their own maximum."""
    values = [max(v, 0.0) for v in list(values)[-width:]]  # a counter reset reads as 0
    top = max(values, default=0.0)
    if top <= 0:
        return BARS[0] * len(values)
    return "".join(BARS[min(int(v / top * (len(BARS) - 1) + 0.5), len(BARS) - 1)] for v in values)


def _ms(seconds: float) -> str:
    if seconds == float("inf"):
        return "> 30 s"
    return f"<= {seconds * 1000:g} ms"


def _clock(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _header(s: RunStats, now: float, where: Position, name: str) -> Text:
    elapsed = (s.finished if not s.alive and s.finished else now) - s.started
    parts = [f"connector {name}", s.mode, f"elapsed {_clock(elapsed)}"]
    if where.total:
        done = sum(s.calls) + s.replayed
        share = min(done / where.total, 1.0)
        eta = elapsed * (1 - share) / share if share else 0.0
        parts.append(f"schedule {share:.0%} ({done:,}/{where.total:,}), left {_clock(eta)}")
    elif (where.duration or where.end) and s.alive:
        left = [where.duration - elapsed] if where.duration else []
        if where.end is not None:
            left.append((where.end - datetime.now(where.end.tzinfo)).total_seconds())
        parts.append(f"left {_clock(min(left))}")
    if not s.alive:
        parts.append(f"ended: {s.stop_reason or 'schedule complete'}")
    elif s.stop_reason:
        parts.append(f"stopping: {s.stop_reason}")
    return Text(" | ".join(parts), style="bold")  # Text: a stop reason is not markup


def _inputs(s: RunStats, recent: Sequence[Sample]) -> Table:
    table = Table(title="inputs", title_justify="left", expand=False)
    for column, justify in (
        ("input", "left"),
        ("target/s", "right"),
        ("achieved/s", "right"),
        ("timestamps", "right"),
        ("events", "right"),
        ("last 60 s", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for i, name in enumerate(s.input_names):
        rates = rate(recent, lambda x, i=i: x.timestamps[i])
        target = s.target_rates[i]
        table.add_row(
            Text(name),
            "-" if target is None else f"{target:,.0f}",
            f"{rates[-1]:,.0f}" if rates else "-",
            f"{s.timestamps[i]:,}",
            f"{s.events[i]:,}",
            sparkline(rates),
        )
    return table


def _outputs(s: RunStats) -> Table:
    table = Table(title="outputs", title_justify="left")
    for column in ("output", "delivered", "failed", "filtered", "in flight", "p50", "p99"):
        table.add_column(column, justify="left" if column == "output" else "right")
    table.add_column("top failure reasons")
    for o in s.outputs:
        reasons = ", ".join(f"{r}: {n:,}" for r, n in o.reasons.most_common(3))
        if o.could_not_start is not None:
            reasons = f"could not start: {o.could_not_start}"
        elif o.broken is not None:
            reasons = f"broken: {o.broken}" + (f"; {reasons}" if reasons else "")
        count = o.latency.count
        table.add_row(
            Text(o.name),
            f"{o.delivered:,}",
            f"{o.failed:,}",
            f"{o.filtered:,}" if o.routed else "-",
            f"{o.pending:,}",
            _ms(o.latency.quantile(0.5)) if count else "-",
            _ms(o.latency.quantile(0.99)) if count else "-",
            Text(reasons),  # reasons are data, never rich markup
        )
    return table


def _workers(parts: Sequence[RunStats]) -> Table:
    table = Table(title="workers", title_justify="left")
    for column in ("worker", "produced", "delivered", "failed", "in flight", "lag p99"):
        table.add_column(column, justify="left" if column == "worker" else "right")
    for w, p in enumerate(parts):
        table.add_row(
            str(w),
            f"{p.produced:,}",
            f"{sum(o.delivered for o in p.outputs):,}",
            f"{sum(o.failed for o in p.outputs):,}",
            f"{sum(o.pending for o in p.outputs):,}",
            _ms(p.lag.quantile(0.99)) if p.lag.count else "-",
        )
    return table


def screen(
    s: RunStats,
    recent: Sequence[Sample],
    now: float,
    where: Position = NOWHERE,
    name: str = "",
    parts: Sequence[RunStats] = (),
    verify: Mapping[str, int] | None = None,
) -> RenderableType:
    """The whole view: header, inputs, outputs, lag, transactions, checkpoints, verify,
    and per-worker rows when `parts` is given."""
    lines: list[RenderableType] = [_header(s, now, where, name), _inputs(s, recent), _outputs(s)]
    facts = []
    if s.mode == "live" and s.lag.count:
        facts.append(
            f"schedule lag p50 {_ms(s.lag.quantile(0.5))}, p99 {_ms(s.lag.quantile(0.99))}, "
            f"behind {s.behind:.1f} s"
        )
    for o in s.outputs:
        if o.transactions is not None:
            facts.append(
                f"transactions {o.name}: committed {o.transactions['committed']:,}, "
                f"aborted {o.transactions['aborted']:,}"
            )
    if s.checkpoints:
        facts.append(f"checkpoints: {s.checkpoints:,} settled ({s.checkpoint_seconds:.1f} s)")
    if verify is not None:  # the verify canary's numbers, when it is on
        facts.append("verify: " + ", ".join(f"{k} {v:,}" for k, v in verify.items()))
    if s.script_errors:
        facts.append(f"script errors: {sum(s.script_errors.values()):,}")
    lines += [Text(line) for line in facts]
    if parts:
        lines.append(_workers(parts))
    return Group(*lines)
