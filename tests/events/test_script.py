"""The script contract and each of its error cases, through the real CLI."""

import pytest

from tests.harness.accounts import dead_letters
from tests.harness.cli import run_cli

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
    assert result.code == 1  # a script error is no clean run
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


# -- hostile scripts: whatever produce() does, the run goes on and accounts for it ---------

OUTPUT_CONFIG = """
input:
  - cron: {expression: "* * * * * *", start: "2026-02-20T10:00:00+00:00",
           end: "2026-02-20T10:00:%02d+00:00"}
event:
  script: {path: s.py, on_error: %s}
output:
  - file: {path: out.txt, dead_letter: dead.jsonl}
"""


def run_to_file(write, body, seconds=10, on_error="skip", *args):
    """Run `body` as the script into a file output; (result, file lines, dead letters)."""
    write("s.py", body)
    config = write("c.yaml", OUTPUT_CONFIG % (seconds, on_error))
    result = run_cli("run", config, "--mode", "backfill", "--metrics-port", "0", *args)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.code in (0, 1, 2)
    out, dead = config.parent / "out.txt", config.parent / "dead.jsonl"
    lines = out.read_bytes().split(b"\n")[:-1] if out.exists() else []
    return result, lines, dead_letters(dead)


@pytest.mark.parametrize(
    ("raise_", "kind", "text"),
    [
        ("sys.exit(3)", "SystemExit", "SystemExit: 3"),
        ("sys.exit()", "SystemExit", "SystemExit: "),
        ("raise Custom('deep')", "Custom", "Custom: deep"),
        ("raise GeneratorExit()", "GeneratorExit", "GeneratorExit"),
        ("raise Unprintable()", "Unprintable", "its message cannot be shown"),
    ],
)
def test_base_exceptions_from_produce_are_script_errors(write, raise_, kind, text):
    body = f"""
        import sys
        class Custom(BaseException):
            pass
        class Unprintable(Exception):
            def __str__(self):
                raise RuntimeError('no')
        def produce(params):
            if params['timestamp'].second == 3:
                {raise_}
            return str(params['timestamp'].second)
        """
    result, lines, dead = run_to_file(write, body)
    assert result.code == 1  # a script error happened: no clean exit
    s = result.accounts("file-0", held=lines, dead=dead)
    assert s == {"timestamps": 10, "produced": 9, "script_errors": 1, "delivered": 9, "failed": 0}
    assert f"{kind}: 1" in result.stderr  # counted by class in the summary
    logged = [ln for ln in result.stderr.splitlines() if "ERROR connector.script" in ln]
    assert len(logged) == 1, result.stderr
    # the script's own frame: file, line, function and code, so produce() can be debugged
    assert text in logged[0] and "s.py:9 in produce:" in logged[0], logged[0]
    assert raise_.split("(")[0] in logged[0]


def test_sys_exit_with_on_error_stop_ends_the_run_with_the_summary(write):
    body = """
        import sys
        def produce(params):
            if params['timestamp'].second == 3:
                sys.exit(0)
            return str(params['timestamp'].second)
        """
    result, lines, dead = run_to_file(write, body, on_error="stop")
    assert result.code == 1
    assert "summary:" in result.stderr and "on_error: stop" in result.stderr
    assert [ln.decode() for ln in lines] == ["0", "1", "2"]
    assert result.accounts("file-0", held=lines, dead=dead)["script_errors"] == 1


def test_preview_counts_sys_exit_as_a_script_error(write):
    write("s.py", "import sys\ndef produce(params):\n    sys.exit(4)\n")
    config = write("c.yaml", CONFIG % "")
    result = run_cli("preview", config, "--events", "3")
    assert result.code == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "script error(s)" in result.stderr and "SystemExit: 4" in result.stderr


@pytest.mark.parametrize(
    "value",
    [
        "b'{}'",
        "None",
        "1.5",
        "{'a': 1}",
        "('a', 'b')",
        "(e for e in ['a'])",
        "['a', b'b']",
        "['a', None]",
        "['a', ['b']]",
        "bytearray(b'x')",
        "range(3)",
        "object()",
    ],
)
def test_hostile_return_values_are_bad_return_types(write, value):
    body = f"""
        class Str(str):
            pass
        class List(list):
            pass
        def produce(params):
            return {value}
        """
    result, lines, dead = run_to_file(write, body)
    assert result.code == 1
    s = result.accounts("file-0", held=lines, dead=dead)
    assert s["produced"] == 0 and s["script_errors"] == 10, result.stderr
    assert "bad_return_type: 10" in result.stderr


def test_a_list_holding_one_non_str_drops_that_whole_call(write):
    body = """
        def produce(params):
            n = params['timestamp'].second
            return ['a', 'b', 7] if n == 3 else ['a', 'b']
        """
    result, lines, dead = run_to_file(write, body)
    s = result.accounts("file-0", held=lines, dead=dead)
    assert s["produced"] == 18 and s["script_errors"] == 1  # 9 calls of 2, one call dropped


def test_large_lists_and_strange_strings_are_events(write):
    # 10^5 events from one call, empty strings and NUL: all valid str events, all written
    body = """
        def produce(params):
            if params['timestamp'].second == 0:
                return [str(i) for i in range(100_000)]
            return ['', 'nul\\x00here', '']
        """
    result, lines, dead = run_to_file(write, body, 4)
    assert result.code == 0, result.stderr
    s = result.accounts("file-0", held=lines, dead=dead)
    assert s["produced"] == 100_000 + 3 * 3 and s["failed"] == 0
    assert lines[:2] == [b"0", b"1"] and lines[100_000:100_003] == [b"", b"nul\x00here", b""]
