"""Fuzzing the config loader: whatever file a user gives, `connector validate` ends in exit 0
or 2, never 1 and never a traceback; on 2 it prints at least one `path: message` line; and
it answers within seconds and well under 200 MB.

The bulk runs in-process against `load_config` (a pure function of the file); the CLI runs
in a forked child (see tests/harness/fuzz.py: run_forked), and a few examples through the real
`python -m connector`.
"""

from __future__ import annotations

import codecs
import copy
import math
import re
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import assume, event, example, given
from hypothesis import strategies as st

from connector.config import Config, ConfigError, load_config
from connector.inputs.schedule import schedule
from tests.harness.fuzz import (
    ODD_CHARS,
    ROOT,
    Run,
    numbers,
    run_forked,
    run_subprocess,
    yaml_text,
    yaml_values,
)
from tests.harness.hypothesis_profiles import budget

# A config is refused (or accepted) within SECONDS of CPU time (not wall time: the test
# machines are shared, and a loaded machine must not fail the property).
SECONDS = 5.0
NOW = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
MIB = 200.0  # and with at most this much memory

EXAMPLE_FILES = sorted(
    p
    for p in (ROOT / "examples").glob("*/*.yaml")
    # the chart's values, a Collector's own config, a topology: not connector configs
    if p.parent.name != "helm" and p.name != "collector.yaml"
    and "event" in yaml.safe_load(p.read_text())
)


def _example(path: Path) -> dict:
    """An example config as data, its script, topology or replayed file made absolute so it
    loads from anywhere."""
    doc = yaml.safe_load(path.read_text())
    event = doc["event"]
    plugins = [event["replay"][k] for k in event["replay"] if k in ("jsonl", "lines", "otlp")] \
        if "replay" in event else [event.get("script") or event["topology"]]
    for plugin in plugins:
        plugin["path"] = str((path.parent / plugin["path"]).resolve())
    return doc


EXAMPLES = {p.relative_to(ROOT).as_posix(): _example(p) for p in EXAMPLE_FILES}


# -- the invariants -------------------------------------------------------------------------


def load_in_process(path: Path) -> Config | ConfigError:
    """load_config and the window check `validate` does: a Config or a ConfigError, within
    SECONDS; any other exception fails the property."""
    started = time.process_time()
    try:
        config = load_config(path)
        schedule(config, config.mode, datetime.now(config.tz))
    except ConfigError as exc:
        outcome: Config | ConfigError = exc
        assert exc.problems, "a ConfigError without a problem"
        for problem in exc.problems:
            assert isinstance(problem, str) and ": " in problem, exc.problems
            assert problem.split(": ", 1)[1].strip(), exc.problems
    else:
        outcome = config
    seconds = time.process_time() - started
    assert seconds < SECONDS, f"load_config took {seconds:.1f} s of CPU"
    return outcome


def assert_validate(run: Run, path: Path) -> None:
    """The invariants of `connector validate` for any file."""
    assert not run.killed, "validate ran longer than 60 s"
    assert run.code in (0, 2), (run.code, run.err[-3000:])
    assert not run.traceback, run.err[-3000:]
    assert run.cpu_seconds < SECONDS, f"validate took {run.cpu_seconds:.1f} s of CPU"
    assert run.peak_mib < MIB, f"validate used {run.peak_mib:.0f} MiB"
    if run.code == 2:
        assert f"{path}: invalid config" in run.err, run.err[-3000:]
        # a line as a terminal shows it: a key or value with a control character (a carriage
        # return, an escape sequence) must not garble or hide the path
        problems = [ln for ln in re.split(r"[\r\n]", run.err)
                    if ln.startswith("  ") and ": " in ln and not CONTROL.search(ln)]
        assert problems, f"exit 2 without a readable `path: message` line: {run.err[-3000:]!r}"
    else:
        assert f"{path}: valid" in run.out.decode(), run.out


def validate(path: Path) -> Run:
    return run_forked(["validate", str(path)], cwd=path.parent, timeout=60)


# -- mutations of the examples --------------------------------------------------------------


def _paths(value, at=()):
    """Every place in a document: () is the document itself."""
    yield at
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*at, i))


def _get(doc, at):
    for part in at:
        doc = doc[part]
    return doc


KNOWN_KEYS = ["input", "event", "output", "script", "path", "cron", "rate", "expression",
              "count", "start", "end", "tags", "per_second", "shard", "kafka", "file", "stdout",
              "null", "otlp", "topic", "key", "headers", "mode", "timezone", "metrics", "port",
              "dead_letter", "flush_timeout", "formatter", "format", "name", "on_error",
              "check_traces", "stall_after", "producer", "encoding", "mapping"]

# Values of the wrong type, out of range, or odd: as a mutation puts them in place of any value.
hostile_values = st.one_of(
    yaml_values(),
    st.sampled_from([None, "", [], {}, True, -1, 0, 10**30, -(10**30), 2**64, math.nan,
                     math.inf, -math.inf, 1e308, "\t", " ", "nan", ".inf", "-1h", "never",
                     "now", "+99999999999999w", "* * * * * * *", "0 0 31 2 *", "*/0 * * * *",
                     "Europe/Nowhere", "../../../../etc/passwd", "/dev/null", "${UNSET_VAR_X}",
                     "${HOME", "$${X}", "a\x00b", "\U0001f600", "{field}", "x" * 5000]),
)


@st.composite
def mutated_examples(draw, most: int = 4, values: st.SearchStrategy | None = None
                     ) -> tuple[str, dict]:
    name = draw(st.sampled_from(sorted(EXAMPLES)))
    doc = copy.deepcopy(EXAMPLES[name])
    # sampled values are shared between examples: never mutate them in place
    hostile = (hostile_values if values is None else values).map(copy.deepcopy)
    for _ in range(draw(st.integers(1, most))):
        places = list(_paths(doc))
        at = draw(st.sampled_from(places))
        op = draw(st.sampled_from(["replace", "delete", "add", "wrap", "listify"]))
        if not at:  # the document itself
            if op == "replace":
                doc = draw(hostile)
            elif isinstance(doc, dict):
                doc[draw(st.sampled_from(KNOWN_KEYS) | yaml_text)] = draw(hostile)
            continue
        parent, key = _get(doc, at[:-1]), at[-1]
        if op == "replace":
            parent[key] = draw(hostile)
        elif op == "delete":
            del parent[key]
        elif op == "add" and isinstance(parent[key], dict):
            extra = draw(st.sampled_from(KNOWN_KEYS) | yaml_text)
            parent[key][extra] = draw(hostile)
        elif op == "wrap":
            parent[key] = [parent[key]]
        elif op == "listify" and isinstance(parent[key], list) and parent[key]:
            parent[key] = parent[key] * draw(st.integers(2, 3))  # duplicated inputs/outputs
        else:
            parent[key] = draw(hostile)
    return name, doc


def _dump(doc) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


@budget(300)
@given(mutated_examples())
def test_mutated_examples_load_or_are_refused_in_process(tmp_path_factory, drawn):
    _, doc = drawn
    path = tmp_path_factory.mktemp("c") / "c.yaml"
    path.write_text(_dump(doc), encoding="utf-8")
    load_in_process(path)


BASIC = EXAMPLES["examples/basic/config.yaml"]


@budget(40)
@given(mutated_examples())
@example(("basic", {**BASIC, "\r": None}))  # printed raw, the key hid the path's line
@example(("basic", {**BASIC, "timezone": "\x1b[2J"}))  # an escape sequence in a value
def test_mutated_examples_through_validate(tmp_path_factory, drawn):
    _, doc = drawn
    path = tmp_path_factory.mktemp("c") / "c.yaml"
    path.write_text(_dump(doc), encoding="utf-8")
    expected = load_in_process(path)
    run = validate(path)
    assert_validate(run, path)
    # the CLI and the loader agree: a refused config is exit 2 (the script may still fail
    # to load for a config the loader took)
    if isinstance(expected, ConfigError):
        assert run.code == 2, run.err


@st.composite
def text_mutations(draw) -> bytes:
    """An example's text with odd characters, raw bytes and tabs put in at random places."""
    name = draw(st.sampled_from(sorted(EXAMPLES)))
    text = _dump(EXAMPLES[name])
    data = text.encode()
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(data)))
        what = draw(
            st.one_of(
                st.sampled_from(ODD_CHARS).map(lambda c: c.encode("utf-8", "surrogatepass")),
                st.binary(min_size=1, max_size=6),
                st.sampled_from([b"\t", b"  \t", b"\n\t", b": ", b"- ", b"&x ", b"*x", b"!!str ",
                                 b"!!binary ", b"? ", b"|\n", b"%YAML 1.1\n", b"---\n"]),
            )
        )
        cut = draw(st.integers(0, 3))
        data = data[:at] + what + data[at + cut :]
    return data


@budget(60)
@given(text_mutations())
@example(b"input: [{cron: {expression: '* * * * *'}}]\n\tevent: x\n")  # a tab indents
@example(b"\xef\xbb\xbfinput: []\n\xef\xbb\xbf")  # a second BOM mid-file
def test_text_mutations_through_validate(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("c") / "c.yaml"
    path.write_bytes(data)
    expected = load_in_process(path)
    run = validate(path)
    assert_validate(run, path)
    if isinstance(expected, ConfigError):
        assert run.code == 2


@budget(40)
@given(st.binary(max_size=2000))
@example(b"\xff\xfe")  # a UTF-16 BOM and nothing else
@example(b"\x00\x00\xfe\xff\x00")  # a UTF-32 BOM, then a cut code unit
@example(b"\xfe\xff\xd8\x00")  # UTF-16-BE: a high surrogate at the end
def test_random_bytes_through_validate(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("c") / "c.yaml"
    path.write_bytes(data)
    load_in_process(path)
    assert_validate(validate(path), path)


# -- encodings ------------------------------------------------------------------------------

ENCODINGS = {  # name -> (encode, read as the UTF-8 text would be)
    "utf-8-sig": (lambda t: codecs.BOM_UTF8 + t.encode(), True),
    "utf-16-le+bom": (lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"), True),
    "utf-16-be+bom": (lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"), True),
    "utf-32-le+bom": (lambda t: codecs.BOM_UTF32_LE + t.encode("utf-32-le"), True),
    "utf-32-be+bom": (lambda t: codecs.BOM_UTF32_BE + t.encode("utf-32-be"), True),
    "utf-16-le": (lambda t: t.encode("utf-16-le"), False),
    "utf-16-be": (lambda t: t.encode("utf-16-be"), False),
    "utf-32-le": (lambda t: t.encode("utf-32-le"), False),
    "utf-32-be": (lambda t: t.encode("utf-32-be"), False),
    "latin-1": (lambda t: t.encode("latin-1"), False),
}


def _same(a: Config | ConfigError, b: Config | ConfigError, a_path: Path, b_path: Path) -> bool:
    if isinstance(a, ConfigError) != isinstance(b, ConfigError):
        return False
    if isinstance(a, ConfigError):  # the same problems, up to the file name and `now`
        def norm(p: str, path: Path) -> str:
            return NOW.sub("NOW", p.replace(str(path), "F"))

        return [norm(p, a_path) for p in a.problems] == [norm(p, b_path) for p in b.problems]
    return a.model_dump(exclude={"source"}) == b.model_dump(exclude={"source"})


@budget(150)
@given(
    mutated_examples() | st.sampled_from(sorted(EXAMPLES)).map(lambda n: (n, EXAMPLES[n])),
    st.sampled_from(sorted(ENCODINGS)),
    st.sampled_from(["", "é", "中", "\U0001f600", "ß\t"]),
)
def test_encodings_in_process(tmp_path_factory, drawn, encoding, extra):
    _, doc = drawn
    text = _dump(doc) + (f"# {extra}\n" if extra else "")
    encode, same_as_utf8 = ENCODINGS[encoding]
    try:
        data = encode(text)
    except UnicodeEncodeError:
        assume(False)  # latin-1 cannot carry every character
    folder = tmp_path_factory.mktemp("c")
    plain, other = folder / "utf8.yaml", folder / "other.yaml"
    plain.write_text(text, encoding="utf-8")
    other.write_bytes(data)
    expected, got = load_in_process(plain), load_in_process(other)
    if same_as_utf8 or data == text.encode():  # latin-1 of ASCII is UTF-8
        assert _same(expected, got, plain, other), (expected, got)
    elif text:
        # UTF-16/32 without a BOM, latin-1 with a non-ASCII character: never read as if it
        # were something else
        assert isinstance(got, ConfigError), f"{encoding} without a BOM was accepted"


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_each_encoding_through_the_cli(tmp_path, encoding):
    text = _dump(EXAMPLES["examples/basic/config.yaml"]) + "# é\n"
    encode, same_as_utf8 = ENCODINGS[encoding]
    path = tmp_path / "c.yaml"
    path.write_bytes(encode(text))
    # one through the real entry point; the others forked (a second each saved)
    runner = run_subprocess if encoding == "utf-16-le+bom" else run_forked
    run = runner(["validate", str(path)], cwd=tmp_path, timeout=60)
    assert_validate(run, path)
    assert run.code == (0 if same_as_utf8 else 2), run.err
    if encoding == "latin-1":
        assert "byte offset" in run.err, run.err


# -- nesting, aliases, size -----------------------------------------------------------------


@st.composite
def nested(draw) -> tuple[str, int]:
    """A config nested `depth` levels somewhere, in flow or block style."""
    depth = draw(st.integers(1, 400) | st.sampled_from([63, 64, 65, 20_000]))
    style = draw(st.sampled_from(["flow-list", "flow-map", "block", "mixed"]))
    if style == "flow-list":
        inner = "[" * depth + "]" * depth
    elif style == "flow-map":
        inner = "{a: " * depth + "1" + "}" * depth
    elif style == "mixed":
        inner = "".join("[" if i % 2 else "{a: " for i in range(depth)) + "1" + "".join(
            "]" if i % 2 else "}" for i in reversed(range(depth))
        )
    else:
        depth = min(depth, 300)
        inner = "\n" + "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(depth)) + (
            "  " * (depth + 1) + "v"
        )
    where = draw(st.sampled_from(["name", "extra"] if style == "block" else
                                 ["name", "extra", "output"]))
    body = {"name": f"name: {inner}", "extra": f"x: {inner}",
            "output": f"output: [{{stdout: {{formatter: {inner}}}}}]"}[where]
    base = _dump({k: v for k, v in EXAMPLES["examples/basic/config.yaml"].items() if k != where})
    return base + body + "\n", depth


@budget(40)
@given(nested())
@example(("x: " + "[" * 20_000 + "]" * 20_000 + "\n", 20_000))  # once a RecursionError
def test_deep_nesting_is_refused_by_name(tmp_path_factory, drawn):
    text, depth = drawn
    path = tmp_path_factory.mktemp("c") / "c.yaml"
    path.write_text(text)
    outcome = load_in_process(path)
    if depth > 64:
        assert isinstance(outcome, ConfigError)
        assert "nested deeper than 64 levels" in str(outcome), outcome.problems
    run = validate(path)
    assert_validate(run, path)
    assert "RecursionError" not in run.err


@st.composite
def alias_bombs(draw) -> tuple[str, int]:
    """`levels` anchors, each a list of `width` references to the one before: width**levels
    values once expanded, from a file of a few hundred bytes."""
    levels, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    where = draw(st.sampled_from(["top", "name", "tags"]))
    last = f"*l{levels - 1}"
    text = "\n".join(lines) + "\n"
    if where == "name":
        text += f"name: {last}\n"
    elif where == "tags":
        text += _dump(EXAMPLES["examples/basic/config.yaml"]).replace(
            "    count: 1", f"    count: 1\n    tags: {last}"
        )
    return text, (levels - 1) * width


@budget(40)
@given(alias_bombs())
@example(("a: &a [*a]\n", 1))  # an alias inside its own anchor
@example(("x: &x 1\nl: [" + ", ".join(["*x"] * 101) + "]\n", 101))
def test_alias_bombs_are_refused_fast_and_small(tmp_path_factory, drawn):
    text, references = drawn
    path = tmp_path_factory.mktemp("c") / "c.yaml"
    path.write_text(text)
    outcome = load_in_process(path)
    if references > 100:
        assert isinstance(outcome, ConfigError)
        assert "more than 100 alias references" in str(outcome), outcome.problems
    assert_validate(validate(path), path)


def test_the_nine_by_nine_bomb_through_the_real_cli(tmp_path):
    # the issue's own bomb: about 30 s and a MemoryError before
    lines = [f"l0: &l0 [{', '.join(['lol'] * 9)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = tmp_path / "c.yaml"
    path.write_text("\n".join(lines) + "\n")
    run = run_subprocess(["validate", str(path)], cwd=tmp_path, timeout=60)
    assert_validate(run, path)
    assert run.code == 2


@budget(10)
@given(st.integers(1 << 20, (1 << 20) + 4096), st.sampled_from(["#", " ", "a: 1\n"]))
def test_files_above_a_mib_are_refused_by_name(tmp_path_factory, size, filler):
    path = tmp_path_factory.mktemp("c") / "c.yaml"
    head = _dump(EXAMPLES["examples/basic/config.yaml"])
    body = (filler * (size // len(filler) + 1))[: max(0, size + 1 - len(head))]
    path.write_text(head + body)
    outcome = load_in_process(path)
    assert isinstance(outcome, ConfigError)
    assert "larger than 1 MiB" in str(outcome), outcome.problems
    assert_validate(validate(path), path)


# -- a config that loads also runs ----------------------------------------------------------


def _local_outputs(doc) -> bool:
    outputs = doc.get("output") if isinstance(doc, dict) else None
    return isinstance(outputs, list) and all(
        isinstance(o, dict) and set(o) - {"name"} <= {"stdout", "file", "null"} for o in outputs
    )


# one value changed to a scalar: most such configs still load, and then they must run
scalar_values = st.one_of(numbers, yaml_text, st.sampled_from(
    [0, 1, 10**6, 10**9, 1e9, 1e-9, 0.001, "now", "-1h", "+1s", "never", "UTC", "Etc/GMT+14",
     "America/St_Johns", "Asia/Kathmandu", "*/59 * * * * *", "0 0 29 2 *", "59 59 23 31 12 *",
     True, False, "null", "x" * 300]))


@budget(200)  # most are refused in-process (cheap); about one in eight runs
@given(mutated_examples(most=1, values=scalar_values), st.sampled_from(["live", "backfill"]))
# count 2**63 passed validate, then the run stopped on an internal OverflowError (a bug)
@example(("basic", {**BASIC, "input": [{"cron": {**BASIC["input"][0]["cron"], "count": 2**63}}]}),
         "backfill")
def test_a_mutated_config_that_loads_also_runs(tmp_path_factory, drawn, mode):
    # Values validate takes (huge counts, odd names, odd timeouts) must not break `run`:
    # exit 0, 1 or 2 (a window error), no traceback, and exact accounts per output.
    _, doc = drawn
    if isinstance(doc, dict) and not _local_outputs(doc):
        doc["output"] = [{"null": {}}]  # the network outputs have their own properties
    if isinstance(doc, dict):
        doc["metrics"] = {"port": 0}
    folder = tmp_path_factory.mktemp("c")
    path = folder / "c.yaml"
    path.write_text(_dump(doc), encoding="utf-8")
    loaded = isinstance(load_in_process(path), Config)
    event("the config loads" if loaded else "the config is refused")
    if not loaded:
        return
    run = run_forked(["run", str(path), "--mode", mode, "--max-events", "50", "--duration",
                      "2", "--quiet"], cwd=folder, timeout=60)
    assert not run.killed, run.err[-3000:]
    assert run.code in (0, 1, 2), (run.code, run.err[-3000:])
    assert not run.traceback, run.err[-3000:]
    if run.code == 2:
        assert "invalid config" in run.err or "invalid environment" in run.err, run.err
        return
    s = run.summary()
    assert s.printed, run.err[-3000:]
    for name, o in s.outputs.items():
        assert o.could_not_start is not None or (
            o.delivered + o.failed + o.filtered == s.produced
        ), (name, o)


# -- cron expressions -------------------------------------------------------------------------

cron_field = st.one_of(
    st.just("*"), st.just("?"), st.just("L"), st.just("LW"), st.just("15W"), st.just("5#3"),
    st.just("5L"), st.integers(-1, 70).map(str), st.sampled_from(["JAN", "feb", "MON", "sun"]),
    st.tuples(st.integers(0, 60), st.integers(0, 60)).map(lambda t: f"{t[0]}-{t[1]}"),
    st.integers(0, 61).map(lambda n: f"*/{n}"),
    st.tuples(st.integers(0, 31), st.integers(0, 31), st.integers(1, 10)).map(
        lambda t: f"{t[0]}-{t[1]}/{t[2]}"),
    st.lists(st.integers(0, 59), min_size=2, max_size=3).map(lambda v: ",".join(map(str, v))),
)
cron_expressions = st.one_of(
    st.lists(cron_field, min_size=4, max_size=7).map(" ".join),
    st.sampled_from(["0 0 31 2 *", "0 0 30 2 *", "59 59 23 31 2 *", "0 0 31 4,6,9,11 *",
                     "0 0 29 2 1", "@yearly", "@reboot", "", " ", "* * * * * * * *"]),
)


@budget(120)
@given(cron_expressions, st.sampled_from(["live", "backfill"]))
@example("0 0 31 2 *", "live")  # never fires: croniter's CroniterBadDateError, a traceback
@example("0 0 31 2 *", "backfill")
def test_any_cron_expression_is_taken_or_refused(tmp_path_factory, expression, mode):
    folder = tmp_path_factory.mktemp("c")
    (folder / "s.py").write_text("def produce(params):\n    return 'x'\n")
    path = folder / "c.yaml"
    path.write_text(_dump({
        "mode": mode, "metrics": {"port": 0},
        "input": [{"cron": {"expression": expression, "start": "2026-02-20T10:00:00+00:00",
                            "end": "2026-02-21T10:00:00+00:00"}}],
        "event": {"script": {"path": "s.py"}}, "output": [{"null": {}}],
    }))
    load_in_process(path)
    assert_validate(validate(path), path)
