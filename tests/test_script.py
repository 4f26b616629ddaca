"""The script contract and each of its error cases, through the real CLI."""

import pytest

from tests.conftest import run_cli

CONFIG = """
input:
  - cron: {expression: "* * * * * *", start: "2026-02-20T10:00:00+00:00",
           end: "2026-02-20T10:00:10+00:00", tags: [a, b]}
event:
  script: {path: s.py%s}
"""


def run_script(write, body, *args, on_error=""):
    write("s.py", body)
    config = write("c.yaml", CONFIG % (f", on_error: {on_error}" if on_error else ""))
    return run_cli("run", config, "--mode", "backfill", *args)


def test_params_and_return_types(write):
    result = run_script(write, """
        import datetime
        def produce(params):
            ts, tags = params['timestamp'], params['tags']
            assert isinstance(ts, datetime.datetime) and ts.tzinfo is not None
            assert tags == ('a', 'b') and isinstance(tags, tuple)
            if ts.second % 3 == 0:
                return []
            if ts.second % 3 == 1:
                return ts.isoformat()
            return [ts.isoformat(), 'second']
        """)
    assert result.code == 0, result.stderr
    assert result.lines[:3] == ["2026-02-20T10:00:01+00:00", "2026-02-20T10:00:02+00:00", "second"]
    assert result.summary("stdout-0") == {
        "timestamps": 10, "produced": 9, "script_errors": 0, "delivered": 9, "failed": 0,
    }


def test_module_state_persists_and_helper_modules_import(write):
    write("helper.py", "PREFIX = 'n='\n")
    result = run_script(write, """
        from helper import PREFIX
        calls = 0
        def produce(params):
            global calls
            calls += 1
            return f'{PREFIX}{calls}'
        """)
    assert result.lines == [f"n={i}" for i in range(1, 11)]


@pytest.mark.parametrize(
    ("body", "kind", "line"),
    [
        ("def produce(params):\n    return 1 / 0\n", "ZeroDivisionError", "s.py:2"),
        ("def produce(params):\n    return None\n", "bad_return_type", None),
        ("def produce(params):\n    return 42\n", "bad_return_type", None),
        ("def produce(params):\n    return ['ok', 7]\n", "bad_return_type", None),
    ],
)
def test_runtime_errors_are_counted_logged_once_and_skipped(write, body, kind, line):
    result = run_script(write, body)
    assert result.code == 0
    assert result.lines == []
    assert result.summary()["script_errors"] == 10 and result.summary()["produced"] == 0
    assert f"{kind}: 10" in result.stderr
    logged = [ln for ln in result.stderr.splitlines() if "ERROR connector.script" in ln]
    assert len(logged) == 1
    if line:
        assert line in logged[0] and "return 1 / 0" in logged[0]


def test_errors_skip_only_their_timestamp(write):
    result = run_script(write, """
        def produce(params):
            if params['timestamp'].second == 3:
                raise ValueError('bad tick')
            return str(params['timestamp'].second)
        """)
    assert result.lines == ["0", "1", "2", "4", "5", "6", "7", "8", "9"]


def test_on_error_stop_ends_the_run(write):
    result = run_script(write, """
        def produce(params):
            if params['timestamp'].second == 3:
                raise ValueError('bad tick')
            return str(params['timestamp'].second)
        """, on_error="stop")
    assert result.code == 1
    assert result.lines == ["0", "1", "2"]  # what was produced before is still delivered
    assert result.summary("stdout-0") | {} == {
        "timestamps": 4, "produced": 3, "script_errors": 1, "delivered": 3, "failed": 0}
    assert "on_error: stop" in result.stderr and "ValueError: bad tick" in result.stderr


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("def produce(params)\n    return 'x'\n", "s.py:1: SyntaxError"),
        ("import nope_no_such_module\n", "s.py:1: loading the script raised ModuleNotFoundError"),
        ("x = 1\n", "s.py: defines no produce(params) function"),
        ("produce = 5\n", "s.py: produce is a int, not a function"),
    ],
)
def test_load_errors_are_config_errors_with_file_and_line(write, body, message):
    write("s.py", body)
    config = write("c.yaml", CONFIG % "")
    for command in ("validate", "run"):
        result = run_cli(command, config)
        assert result.code == 2
        assert "event.script.path:" in result.stderr and message in result.stderr


def test_missing_script_is_a_config_error(write):
    config = write("c.yaml", CONFIG % "")
    result = run_cli("validate", config)
    assert result.code == 2
    assert f"event.script.path: script not found: {config.parent / 's.py'}" in result.stderr


def test_seed_makes_runs_reproducible(write):
    body = "import random\nSALT = random.random()\ndef produce(p):\n    return f'{SALT} {random.random()}'\n"
    first = run_script(write, body, "--seed", "7").lines
    assert first == run_script(write, body, "--seed", "7").lines
    assert first != run_script(write, body, "--seed", "8").lines
