"""The live canary of otlp traces outputs against the real Jaeger: traces the endpoint
accepted are found in the store that is asked; asked of a store that never gets them,
they go missing after `timeout`. /metrics and the summary show both."""

from __future__ import annotations

import re
import shutil
import signal

import pytest

from connector.testing import free_port
from tests.harness.cli import EXAMPLES, Run, no_traceback, run_cli, wait_for

pytestmark = pytest.mark.timeout(300)
CHECKED = "connector_verify_checked_total"


def test_the_trace_canary_finds_traces_and_misses_them_in_the_wrong_store(jaeger, tmp_path):
    shutil.copy(EXAMPLES / "tracing" / "tracing.py", tmp_path / "tracing.py")
    canary = "every: 0.5s, sample: 2, delay: 0.5s, timeout: 5s"
    nowhere = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "c.yaml").write_text(
        "input: [{rate: {per_second: 4}}]\nevent: {script: {path: tracing.py}}\noutput:\n"
        f"  - otlp: {{endpoint: '{jaeger['otlp_grpc']}', verify: {{query: '{jaeger['query']}',"
        f" {canary}}}}}\n"
        f"  - otlp: {{endpoint: '{jaeger['otlp_grpc']}', verify: {{query: '{nowhere}', "
        f"{canary}}}}}\n"
    )
    run = Run(tmp_path, tmp_path / "c.yaml", "--duration", "120")
    try:
        wait_for("the canary to find traces", lambda: run.check_alive() and run.metric(
            CHECKED, output="otlp-0", result="found") >= 4, 90, 0.3)
        wait_for("the other store's traces to go missing", lambda: run.metric(
            CHECKED, output="otlp-1", result="missing") >= 2, 90, 0.3)
        assert run.metric(CHECKED, output="otlp-0", result="missing") == 0
        assert run.metric(CHECKED, output="otlp-1", result="found") == 0
        assert run.metric("connector_verify_visible_seconds_count", output="otlp-0") >= 4
        run.signal(signal.SIGTERM)
        assert run.wait(60) == 0, run.stderr
    finally:
        run.kill()
    no_traceback(run.stderr)
    lines = [x for x in run.stderr.splitlines() if x.startswith("    canary: ")]
    assert len(lines) == 2 and re.match(r"    canary: found \d+, missing 0, incomplete 0", lines[0])


def test_a_canary_on_logs_is_a_config_error(tmp_path):
    (tmp_path / "s.py").write_text("def produce(p):\n    return '{}'\n")
    (tmp_path / "c.yaml").write_text(
        "input: [{rate: {per_second: 1}}]\nevent: {script: {path: s.py}}\noutput:\n"
        "  - otlp: {endpoint: '127.0.0.1:1', signal: logs, verify: {query: 'http://x:1'}}\n"
        "  - kafka: {bootstrap_servers: 'x:1', topic: t, verify: {every: soon}}\n"
    )
    result = run_cli("validate", tmp_path / "c.yaml")
    assert result.code == 2, result.stderr
    assert "the live canary reads traces back" in result.stderr
    assert "every: 'soon' is not a duration" in result.stderr
    no_traceback(result.stderr)
