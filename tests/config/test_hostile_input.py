"""Hostile config files, through the real `connector validate`.

Every byte string given as a config ends in exit 0 or 2, never a traceback, with the
file named; a config is refused within seconds and well under 200 MB; each limit
(1 MiB, nesting depth 64, 100 alias references, values after aliases are expanded) is
named in the message when hit.
"""

from __future__ import annotations

import codecs
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from connector.config import MAX_VALUES, ConfigError, load_config
from tests.harness.cli import ROOT, Result, run_cli
from tests.harness.fuzz import run_subprocess

SCRIPT = "def produce(params):\n    return 'x'\n"
VALID = 'input: [{cron: {expression: "* * * * *"}}]\nevent: {script: {path: s.py}}\n'


def validate(path: Path, timeout: float = 60) -> tuple[Result, float, int]:
    """`connector validate path`: the result, its seconds and its own peak memory in MiB."""
    run = run_subprocess(["validate", str(path)], ROOT, timeout)
    if run.killed:
        pytest.fail(f"validate {path.name} ran longer than {timeout} s")
    return Result(run.code, run.out.decode("utf-8", "replace"), run.err), run.seconds, int(
        run.peak_mib
    )


def assert_refused(result: Result, path: Path, *words: str) -> None:
    assert result.code == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert f"{path}: invalid config" in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "s.py").write_text(SCRIPT)
    return tmp_path


# -- encodings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "encode"),
    [
        ("utf-8", lambda t: t.encode()),
        ("utf-8 with bom", lambda t: codecs.BOM_UTF8 + t.encode()),
        ("utf-16", lambda t: t.encode("utf-16")),  # Python writes the BOM
        ("utf-16-be with bom", lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be")),
        ("utf-32", lambda t: t.encode("utf-32")),
        ("utf-32-be with bom", lambda t: codecs.BOM_UTF32_BE + t.encode("utf-32-be")),
    ],
)
def test_yaml_encodings_with_a_bom_are_read(folder, name, encode):
    path = folder / "c.yaml"
    path.write_bytes(encode(VALID))
    result, _, _ = validate(path)
    assert result.code == 0, f"{name}: {result.stderr}"
    assert f"{path}: valid" in result.stdout


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (VALID.encode("utf-16-le"), 1),  # no BOM: read as UTF-8, and the NUL after 'i'...
        (b"input: [1]\nname: caf\xe9\n", 20),  # Latin-1
        (b"name: ok\n" + b"\xff\xfe\xfd", 9),
    ],
)
def test_undecodable_files_name_the_byte_offset(folder, data, offset):
    path = folder / "c.yaml"
    path.write_bytes(data)
    result, _, _ = validate(path)
    if offset == 1:  # UTF-16 without a BOM is valid UTF-8 with NULs: YAML refuses the NUL
        assert_refused(result, path, "invalid YAML", "#x0000")
    else:
        assert_refused(result, path, f"byte offset {offset}", "not UTF-8")


def test_utf16_with_a_bad_surrogate_names_the_byte_offset(folder):
    path = folder / "c.yaml"
    path.write_bytes(codecs.BOM_UTF16_LE + "name: a".encode("utf-16-le") + b"\x00\xdc" + b"b\x00")
    result, _, _ = validate(path)
    assert_refused(result, path, "not UTF-16-LE at byte offset 16")


def test_random_bytes_never_show_a_traceback(folder):
    rng = random.Random(11)
    cases = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))) for _ in range(6)]
    # and valid text cut at random places: YAML errors of every kind
    cases += [VALID.encode()[: rng.randrange(len(VALID))] + b"]{&*!|>%@`" for _ in range(4)]
    for i, data in enumerate(cases):
        path = folder / f"r{i}.yaml"
        path.write_bytes(data)
        result = run_cli("validate", path)
        assert result.code in (0, 2), (data, result.stderr)
        assert "Traceback" not in result.stderr, (data, result.stderr)
        if result.code == 2:
            assert f"{path}: invalid config" in result.stderr


# -- size, depth, aliases -------------------------------------------------------------------

BOMB = "\n".join(
    [f"l0: &l0 [{', '.join(['lol'] * 9)}]"]
    + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
) + "\n"


def test_alias_bomb_is_refused_fast_and_small(folder):
    path = folder / "c.yaml"
    path.write_text(BOMB)
    result, seconds, mib = validate(path)
    assert_refused(result, path, f"more than {MAX_VALUES:,} values", "aliases")
    assert seconds < 10 and mib < 200, (seconds, mib)


def test_deep_nesting_is_refused_without_recursion_error(folder):
    path = folder / "c.yaml"
    path.write_text("[" * 20_000 + "]" * 20_000)
    result, seconds, mib = validate(path)
    assert_refused(result, path, "nested deeper than 64 levels", f"{path}:1:65")
    assert "RecursionError" not in result.stderr
    assert seconds < 10 and mib < 200


def test_nesting_of_64_levels_is_allowed(folder):
    path = folder / "c.yaml"
    path.write_text("a: " + "[" * 63 + "]" * 63 + "\n")  # the map is the 64th level
    with pytest.raises(ConfigError) as err:  # refused for the unknown key, not the depth
        load_config(path)
    assert "deeper" not in str(err.value.problems)


def test_nesting_reached_through_an_alias_is_counted(folder):
    path = folder / "c.yaml"
    path.write_text("a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n")
    result, _, _ = validate(path)
    assert_refused(result, path, "nested deeper than 64 levels (aliases expanded)")


def test_recursive_alias_is_refused(folder):
    path = folder / "c.yaml"
    path.write_text("a: &a [*a]\n")
    result, _, _ = validate(path)
    assert_refused(result, path, "nested deeper than 64 levels")


def test_alias_references_are_limited_to_100(folder):
    path = folder / "c.yaml"
    path.write_text("x: &x 1\nl: [" + ", ".join(["*x"] * 101) + "]\n")
    result, _, _ = validate(path)
    assert_refused(result, path, "more than 100 alias references")
    path.write_text(VALID + "name: &n x\ncheck_traces: false\n" + "# " + "*n " * 5 + "\n")
    assert validate(path)[0].code == 0


def test_files_above_1_mib_are_refused(folder):
    path = folder / "c.yaml"
    path.write_text(VALID + "#" * (1 << 20))
    result, seconds, _ = validate(path)
    assert_refused(result, path, "larger than 1 MiB")
    assert seconds < 10


def test_a_1_mib_file_of_small_values_is_refused_fast(folder):
    path = folder / "c.yaml"
    path.write_text("a: [" + ",".join(["abcdefghi"] * 100_000) + "]\n")
    result, seconds, mib = validate(path)
    assert_refused(result, path, f"more than {MAX_VALUES:,} values")
    assert seconds < 10 and mib < 200, (seconds, mib)


# -- the file itself, values PyYAML lets through, paths and times ---------------------------


def test_a_directory_or_missing_file_is_a_config_error(folder):
    assert_refused(validate(folder)[0], folder, "it is a directory")
    missing = folder / "nope.yaml"
    assert_refused(validate(missing)[0], missing, "No such file or directory")
    link = folder / "dangling.yaml"
    link.symlink_to(folder / "gone")
    assert_refused(validate(link)[0], link, "cannot read config")
    below_a_file = folder / "s.py" / "c.yaml"
    assert_refused(validate(below_a_file)[0], below_a_file, "Not a directory")


def test_an_unreadable_file_is_a_config_error(folder):
    path = folder / "c.yaml"
    path.write_text(VALID)
    path.chmod(0)
    # root reads any file: drop the capabilities that let it (util-linux's setpriv)
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    result = subprocess.run([*drop, sys.executable, "-m", "connector", "validate", str(path)],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert_refused(Result(result.returncode, result.stdout, result.stderr), path,
                   "cannot read config: Permission denied")


@pytest.mark.parametrize("command", ["run", "preview"])
def test_every_command_refuses_a_hostile_config_the_same_way(folder, command):
    path = folder / "c.yaml"
    path.write_text(BOMB)
    result = run_cli(command, path, timeout=60)
    assert_refused(result, path, f"more than {MAX_VALUES:,} values")
    path.write_bytes(b"\xff\xfeinput")  # a UTF-16 BOM, then an odd number of bytes
    assert_refused(run_cli(command, path, timeout=60), path, "not UTF-16-LE at byte offset 6")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", ["(top level): expected a map"]),
        ("- a\n- b\n", ["(top level): expected a map"]),
        ("just a string\n", ["(top level): expected a map"]),
        ("a: 1\n---\nb: 2\n", ["invalid YAML", "single document"]),
        ("a: " + "1" * 5000 + "\n", ["invalid YAML value", "4300 digits"]),
        ("a: 2026-99-99\n", ["invalid YAML value", "month must be in 1..12"]),
        ("a: !!timestamp nope\n", ["invalid YAML value", "!!timestamp"]),
        ("a: !!python/object:os.system x\n", ["invalid YAML", "could not determine"]),
        ("a: \x00\n", ["invalid YAML", "#x0000"]),
        ("{[1]: 2}\n", ["invalid YAML", "unhashable"]),
    ],
)
def test_yaml_that_python_cannot_take_is_a_config_error(folder, text, words):
    path = folder / "c.yaml"
    path.write_bytes(text.encode())
    assert_refused(validate(path)[0], path, *words)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ('output: [{file: {path: "a\\0b"}}]\n', ["output[0].file.path", "NUL"]),
        (None, ["event.script.path: cannot read script", "File name too long"]),
        ("input: [{cron: {expression: '* * * * *', start: '+99999999999999999999w'}}]\n",
         ["input[0].cron.start", "more than 1000 years"]),
        ("input: [{cron: {expression: '* * * * *', start: '0001-01-01T00:00:00+14:00'}}]\n",
         ["input[0].cron.start", "outside the years"]),
        ("input: [{cron: {expression: '* * * * *', end: 9999-12-31T23:59:59-14:00}}]\n",
         ["input[0].cron.end", "outside the years"]),
    ],
)
def test_values_the_os_or_datetime_cannot_take_are_config_errors(folder, extra, words):
    path = folder / "c.yaml"
    if extra is None:  # a script path longer than any file name
        path.write_text(VALID.replace("s.py", "s" * 5000 + ".py"))
    else:
        path.write_text(
            "\n".join(ln for ln in VALID.splitlines() if not ln.startswith(extra.split(":")[0]))
            + "\n" + extra
        )
    assert_refused(validate(path)[0], path, *words)


def test_a_script_calling_sys_exit_at_load_is_a_config_error(folder):
    (folder / "s.py").write_text("import sys\nsys.exit(3)\n")
    path = folder / "c.yaml"
    path.write_text(VALID)
    assert_refused(
        validate(path)[0], path, "s.py:2: loading the script raised SystemExit: 3"
    )
