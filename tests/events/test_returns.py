"""What produce() returns, as the run takes it: subclasses of str and list are str and
list (numpy.str_ is a str), events are what the call returned at its return, and one
event of tens of MB is delivered whole."""

from __future__ import annotations

import textwrap
from pathlib import Path

import orjson
import pytest

from connector.events.script import ScriptConfig, load_script
from tests.harness.cli import run_cli

# A str subclass as hostile as they come: every method an output might call answers
# something else than the characters it holds. numpy.str_ is a milder one.
HOSTILE = '''
class Text(str):
    def __str__(self):
        return "not me"
    def __repr__(self):
        return "not me"
    def __len__(self):
        return 0
    def __eq__(self, other):
        return False
    def __hash__(self):
        return 0
    def __iter__(self):
        return iter(())
    def encode(self, *args, **kwargs):
        return b"not me"
    def __contains__(self, item):
        return False


class Events(list):
    def __iter__(self):
        return iter(["not me"])
    def __len__(self):
        return 1
    def __getitem__(self, item):
        return "not me"


class Faker:
    __class__ = list  # isinstance(Faker(), list) is True; it is no list
'''


def script(tmp_path: Path, body: str):
    path = tmp_path / "s.py"
    path.write_text(HOSTILE + textwrap.dedent(body))
    return load_script(ScriptConfig(path=path))


@pytest.mark.parametrize(
    ("value", "events"),
    [
        ("Text('a\\u00e9')", ["a\u00e9"]),
        ("Text('')", [""]),
        ("Events(['x', 'y'])", ["x", "y"]),
        ("Events()", []),
        ("[Text('x'), 'y', Text('\\U0001f600')]", ["x", "y", "\U0001f600"]),
        ("Events([Text('x')])", ["x"]),
    ],
)
def test_subclasses_of_str_and_list_are_plain_events(tmp_path, value, events):
    s = script(tmp_path, f"def produce(params):\n    return {value}\n")
    got = s.events({})
    assert got == events and type(got) is list
    assert all(type(e) is str for e in got)  # no subclass method reaches an output
    assert not s.errors


@pytest.mark.parametrize(
    "value", ["Faker()", "('a',)", "[Text('a'), b'b']", "Events(['a', 1])", "iter(['a'])"]
)
def test_other_returns_stay_bad_return_types(tmp_path, value):
    s = script(tmp_path, f"def produce(params):\n    return {value}\n")
    assert s.events({}) == []
    assert s.errors == {"bad_return_type": 1}


def test_a_list_changed_after_the_return_is_taken_as_returned(tmp_path):
    # the script keeps its list and changes it afterwards (a later call, or a thread of
    # its own): the events are what it held at the return
    s = script(tmp_path, """
        kept = []
        def produce(params):
            kept.append(Text("e%d" % len(kept)))
            return kept
        """)
    first = s.events({})
    second = s.events({})
    assert (first, second) == (["e0"], ["e0", "e1"])
    s.produce({}).append(7)  # a non-str put in afterwards changes none of them
    assert (first, second) == (["e0"], ["e0", "e1"])


def test_numpy_like_strings_run_through_every_line_output(write):
    # numpy.random.choice(["a", "b"]) returns numpy.str_: every call was dropped as a bad
    # return type; now they are events, written as the characters they hold
    write("s.py", HOSTILE + textwrap.dedent("""
        def produce(params):
            n = params["timestamp"].second
            return Text('{"n": %d}' % n) if n % 2 else [Text("odd"), '{"n": %d}' % n]
        """))
    config = write("c.yaml", """
        mode: backfill
        metrics: {port: 0}
        input:
          - cron: {expression: "* * * * * *", start: "2026-02-20T10:00:00+00:00",
                   end: "2026-02-20T10:00:04+00:00"}
        event:
          script: {path: s.py}
        output:
          - file: {path: out.txt, mode: overwrite, formatter: {format: json}}
          - stdout: {}
        """)
    result = run_cli("run", config, "--quiet")
    want = ["odd", '{"n": 0}', '{"n": 1}', "odd", '{"n": 2}', '{"n": 3}']
    assert result.code == 1, result.stderr  # "odd" is not JSON for the json formatter
    assert result.lines == want
    assert (config.parent / "out.txt").read_text().split("\n")[:-1] == [
        w.replace(" ", "") for w in want if w != "odd"  # as orjson writes it
    ]
    assert result.summary("stdout-1") == {
        "timestamps": 4, "produced": 6, "script_errors": 0, "delivered": 6, "failed": 0
    }
    assert "failed: not JSON: 2" in result.stderr


def test_one_event_of_tens_of_megabytes_is_delivered_whole(write):
    size = 24 * 2**20
    write("s.py", f"""
        import json
        def produce(params):
            return [json.dumps({{"big": "\\u00e9" * {size // 2}, "n": 1}}), "{{}}"]
        """)
    config = write("c.yaml", """
        mode: backfill
        metrics: {port: 0}
        input:
          - cron: {expression: "* * * * * *", start: "2026-02-20T10:00:00+00:00",
                   end: "2026-02-20T10:00:01+00:00"}
        event:
          script: {path: s.py}
        output:
          - file: {path: plain.txt, mode: overwrite}
          - file: {path: json.txt, mode: overwrite, formatter: {format: json}}
          - stdout: {}
        """)
    result = run_cli("run", config, "--quiet", timeout=300)
    assert result.code == 0, result.stderr[-3000:]
    event = orjson.dumps({"big": "\u00e9" * (size // 2), "n": 1}).decode()
    for name in ("plain.txt", "json.txt"):
        lines = (config.parent / name).read_text().split("\n")
        assert len(lines) == 3 and lines[2] == "" and lines[1] == "{}", name
        assert orjson.loads(lines[0]) == orjson.loads(event), name
    assert (config.parent / "json.txt").read_text() == event + "\n{}\n"  # orjson's spelling
    assert len(result.stdout.encode()) > size and result.lines[1] == "{}"
