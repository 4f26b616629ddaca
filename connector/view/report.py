"""`--report PATH`: one self-contained HTML file of the run, written when it ends.

The charts are plotly's (its JavaScript bundle is embedded once, so the file opens with
no network); the totals come from the final RunStats, the very value the summary prints.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from connector.stats import RunStats
from connector.summary import print_summary
from connector.view.facts import RunFacts
from connector.view.samples import Sample

__all__ = ["report_problem", "totals", "write_report"]

log = logging.getLogger("connector.view")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; } td, th { padding: 2px 12px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) { background: #f4f4f4; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
.absent { color: #666; font-style: italic; }
"""


def totals(s: RunStats) -> list[tuple[str, str, int]]:
    """(key, label, value) of every total the summary prints: the report's table."""
    rows = [
        ("timestamps", "timestamps", sum(s.timestamps)),
        ("produced", "events produced", s.produced),
        ("script_errors", "script errors", sum(s.script_errors.values())),
    ]
    if s.replayed:
        rows.append(("replayed", "produce() calls replayed", s.replayed))
    for o in s.outputs:
        key = f"output:{o.name}"
        rows += [(f"{key}:delivered", f"{o.name}: delivered", o.delivered)]
        rows += [(f"{key}:failed", f"{o.name}: failed", o.failed)]
        if o.routed:
            rows.append((f"{key}:filtered", f"{o.name}: filtered", o.filtered))
        if o.transactions is not None:
            rows.append(
                (
                    f"{key}:committed",
                    f"{o.name}: transactions committed",
                    o.transactions["committed"],
                )
            )
            rows.append(
                (f"{key}:aborted", f"{o.name}: transactions aborted", o.transactions["aborted"])
            )
        for reason, n in o.reasons.most_common():
            rows.append((f"{key}:reason:{reason}", f"{o.name}: failed: {reason}", n))
    return rows


def _table(rows: Sequence[tuple[str, str]], **attrs: str) -> str:
    extra = "".join(f' {k}="{escape(v)}"' for k, v in attrs.items())
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<table{extra}>{body}</table>"


def render(
    samples: Sequence[Sample],
    stats: RunStats,
    facts: RunFacts,
    verify: Mapping[str, int] | None = None,
) -> str:
    """The whole page, as text."""
    # plotly takes most of a second to import: only a run that writes a report pays it
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    from connector.view.charts import ABSENT, charts

    summary = io.StringIO()
    print_summary(stats, summary)
    elapsed = max(stats.finished - stats.started, 0.0)
    about = [
        ("config", facts.name),
        ("connector version", facts.version),
        ("mode", facts.mode),
        ("seed", "none" if facts.seed is None else str(facts.seed)),
        ("workers", str(facts.workers)),
        ("script", facts.script),
        ("script sha256", facts.script_sha256),
        ("started (UTC)", facts.started_at),
        ("duration", f"{elapsed:.3f} s"),
        ("ended", stats.stop_reason or "schedule complete"),
        ("exit code", str(stats.exit_code())),
    ]
    if stats.checkpoints:
        about.append(
            ("checkpoints settled", f"{stats.checkpoints} ({stats.checkpoint_seconds:.3f} s)")
        )
    total_rows = "".join(
        f'<tr><th>{escape(label)}</th><td class="n" data-total="{escape(key)}">{n}</td></tr>'
        for key, label, n in totals(stats)
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>connector report: {escape(facts.name)}</title>",
        f"<style>{STYLE}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f"<h1>connector report: {escape(facts.name)}</h1>",
        _table(about, id="about"),
        "<h2>Totals</h2>",
        f'<table id="totals">{total_rows}</table>',
        f'<pre id="summary">{escape(summary.getvalue())}</pre>',
    ]
    for chart_id, chart in charts(samples, stats):
        if chart is None:
            parts.append(f'<p class="absent" id="{chart_id}-absent">{escape(ABSENT[chart_id])}</p>')
            continue
        _, title, figure = chart
        parts.append(f"<h2>{escape(title)}</h2>")
        parts.append(
            pio.to_html(
                figure,
                full_html=False,
                include_plotlyjs=False,
                div_id=f"chart-{chart_id}",
                config={"displaylogo": False, "responsive": True},
            )
        )
    parts.append('<h2>Verify</h2><div id="verify">')
    if verify is None:  # the verify canary (a manifest read back) fills this in
        parts.append('<p class="absent">The run was not verified.</p>')
    else:
        parts.append(_table([(k, str(v)) for k, v in verify.items()], id="verify-table"))
    parts.append("</div>")
    parts.append(f'<h2>Config (secrets redacted)</h2><pre id="config">{escape(facts.config)}</pre>')
    parts.append("</body></html>")
    return "\n".join(parts)


def report_problem(path: Path) -> str | None:
    """Why `path` cannot take the report (checked before the run starts), else None."""
    if path.is_dir():
        return f"--report {path}: it is a folder, not a file"
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        return f"--report {path}: the folder {parent} does not exist"
    if not os.access(parent, os.W_OK):
        return f"--report {path}: the folder {parent} is not writable"
    return None


def write_report(
    path: Path,
    samples: Sequence[Sample],
    stats: RunStats,
    facts: RunFacts,
    verify: Mapping[str, int] | None = None,
) -> bool:
    """Write the page (whole or not at all: a temporary file renamed); False, logged,
    when it cannot be written."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(render(samples, stats, facts, verify), encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        log.error("report: cannot write %s: %s", path, exc.strerror or exc)
        temporary.unlink(missing_ok=True)
        return False
    log.info("report written to %s", path)
    return True
