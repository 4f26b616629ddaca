"""What the README tells a newcomer is true when they try it."""

from __future__ import annotations

import re

from tests.harness.cli import ROOT, run_cli

README = (ROOT / "README.md").read_text()


def test_the_seed_tracing_preview_command_shows_its_orphans():
    command = re.search(r"`connector (preview examples/tracing/seed-original\.yaml [^`]*)`", README)
    assert command, "the README gives the command that previews the seed's tracing script"
    result = run_cli(*command[1].split())
    assert result.code == 1, result.stderr
    traces = [line for line in result.lines if line.startswith("trace ")]
    assert traces and all("7 orphan(s)" in line and "BROKEN" in line for line in traces)
    assert "tests/data/seed_tracing.py" in README
    assert (ROOT / "tests/data/seed_tracing.py").exists()


def test_a_config_without_output_writes_to_stdout(write):
    write("p.py", "def produce(params):\n    return f'event at {params[\"timestamp\"]:%H:%M:%S}'\n")
    config = write("c.yaml", """
        input:
          - cron: {expression: "* * * * * *", start: "2026-01-01T00:00:00Z", end: "2026-01-01T00:00:03Z"}
        event: {script: {path: p.py}}
    """)
    assert "without `output:` writes the events to stdout" in README
    result = run_cli("run", config, "--mode", "backfill", "--metrics-port", "0", "--quiet")
    assert result.code == 0, result.stderr
    assert result.lines == ["event at 00:00:00", "event at 00:00:01", "event at 00:00:02"]


def test_helm_values_are_called_what_they_are():
    assert "**Helm values**" in README
    for values in (ROOT / "examples/helm").glob("*.yaml"):
        result = run_cli("validate", values)
        assert result.code == 2, f"{values.name} is Helm values, not a connector config"
