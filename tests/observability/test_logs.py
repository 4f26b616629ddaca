"""Logs: text or JSON on stderr, repeated errors rate-limited, secrets never shown; replicas."""

import json
import logging

from connector.logs import add_secret, setup_logging
from tests.harness.cli import run_cli


def test_json_logs_are_one_object_per_line(write):
    write("s.py", "def produce(p):\n    raise ValueError('boom')\n")
    config = write(
        "c.yaml",
        """
        mode: backfill
        input: [{rate: {per_second: 1, start: "2026-01-01T00:00:00Z", end: "2026-01-01T00:00:05Z"}}]
        event: {script: {path: s.py}}
        """,
    )
    result = run_cli("run", config, "--log-format", "json", "--metrics-port", "0")
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert {"time", "level", "logger", "message"} <= records[0].keys()
    errors = [r for r in records if r["level"] == "error"]
    assert len(errors) == 1 and "ValueError: boom" in errors[0]["message"]  # once, not 5 times
    assert "ValueError: 5" in result.stderr


def test_identical_warnings_are_rate_limited_with_a_count(capsys):
    setup_logging("info", "text")
    log = logging.getLogger("connector.test")
    for _ in range(50):
        log.warning("broker down")
    from connector.logs import flush_repeats

    flush_repeats()
    err = capsys.readouterr().err
    assert err.count("broker down") == 2
    assert "broker down (repeated 49 more time(s) within 10s)" in err


def test_secrets_are_redacted_from_every_log_line(capsys):
    setup_logging("info", "json")
    add_secret("s3cr3t-token-value")
    logging.getLogger("connector.test").error("auth failed with %s", "s3cr3t-token-value")
    err = capsys.readouterr().err
    assert "s3cr3t" not in err and "***" in err


def test_seed_is_offset_by_the_replica_index(write, monkeypatch):
    write("s.py", "import random\ndef produce(p):\n    return str(random.random())\n")
    config = write(
        "c.yaml",
        """
        mode: backfill
        input: [{rate: {per_second: 1, start: "2026-01-01T00:00:00Z", end: "2026-01-01T00:00:05Z"}}]
        event: {script: {path: s.py}}
        """,
    )
    import os

    def events(seed: int, index: int) -> list[str]:
        env = {**os.environ, "CONNECTOR_REPLICA_INDEX": str(index), "CONNECTOR_REPLICAS": "4"}
        return run_cli("run", config, "--seed", str(seed), "--metrics-port", "0", env=env).lines

    assert events(5, 1) == events(6, 0) != events(5, 0)


def test_quiet_silences_the_connecting_lines_only(capsys):
    from connector.logs import CONNECTING, LogSetup

    for quiet in (False, True):
        LogSetup("info", "text", quiet, ("c0nnect-secret",)).apply()
        logging.getLogger(CONNECTING).info("connecting to kafka-0 at h:1 (5 s of 30 s)")
        logging.getLogger(CONNECTING).warning("still failing c0nnect-secret")
        logging.getLogger("connector.other").info("other line")
        err = capsys.readouterr().err
        assert ("connecting to kafka-0" in err) is not quiet
        assert "still failing ***" in err and "other line" in err and "c0nnect" not in err
    setup_logging("info", "text")
