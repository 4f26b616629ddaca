"""Config loading: the exact messages for bad configs, env interpolation, paths."""

from pathlib import Path

import pytest

from connector.config import ConfigError, load_config, parse_config

SCRIPT = "def produce(params):\n    return 'x'\n"

# (yaml, expected problems) -- every problem is reported, each as `path.to.key: message`.
BAD = [
    (
        """
        input:
          - cron: {expression: "*/5 * * * * *"}
          - cron: {expression: "*/5 * *"}
        event: {script: {path: s.py}}
        """,
        ["input[1].cron.expression: invalid cron expression '*/5 * *' (5 fields: minute hour "
         "day month weekday; 6 fields: second minute hour day month weekday)"],
    ),
    (
        """
        input: [{cron: {expression: "* * * * *", count: 0, tag: [a]}}]
        event: {script: {path: s.py}}
        """,
        ["input[0].cron.count: Input should be greater than 0", "input[0].cron.tag: unknown key"],
    ),
    (
        """
        input: [{crons: {expression: "* * * * *"}}]
        event: {script: {path: s.py}}
        """,
        ["input[0]: unknown input plugin 'crons'; expected one of: cron, rate, recorded"],
    ),
    (
        """
        input: [{rate: {per_second: 0}}, {rate: {}}]
        event: {script: {path: s.py}}
        output: [{stdout: {formatter: {format: xml}}}, {s3: {}}]
        """,
        [
            "input[0].rate.per_second: Input should be greater than 0",
            "input[1].rate: give either per_second or stages, not both (nor neither)",
            "output[0].stdout.formatter.format: Input should be 'plain' or 'json'",
            "output[1]: unknown output plugin 's3'; expected one of: stdout, file, kafka, otlp, "
            "null",
        ],
    ),
    (
        """
        input: [{cron: {expression: "* * * * *", start: yesterday}}]
        event: {script: {path: missing.py}}
        timezone: Mars/Olympus
        extra: 1
        """,
        [
            "input[0].cron.start: invalid time 'yesterday': use ISO-8601 like "
            "2026-02-20T10:00:00+00:00, 'now', or a relative time like '+1h', '-30m', '+90s'",
            "event.script.path: script not found: {dir}/missing.py",
            "timezone: unknown timezone 'Mars/Olympus' (use an IANA name like 'Europe/Berlin')",
            "extra: unknown key",
        ],
    ),
    (
        """
        input: []
        event: {}
        """,
        ["input: List should have at least 1 item after validation, not 0",
         "event.script: required key is missing"],
    ),
    (
        """
        input: [{cron: {expression: "* * * * *"}, rate: {per_second: 1}}]
        event: {script: {path: s.py}}
        output: [{kafka: {bootstrap_servers: x, topic: t, producer: {no.such.thing: 1}}}]
        """,
        [
            "input[0]: expected exactly one input plugin (cron, rate, recorded), got 2",
            'output[0].kafka.producer: No such configuration property: "no.such.thing"',
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_config_reports_every_problem(write, text, expected):
    write("s.py", SCRIPT)
    path = write("config.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert sorted(err.value.problems) == sorted(
        e.format(dir=path.parent) for e in expected
    )


def test_validate_cli_prints_problems_and_exits_2(write):
    from tests.harness.cli import run_cli

    write("s.py", SCRIPT)
    path = write("c.yaml", BAD[0][0])
    result = run_cli("validate", path)
    assert result.code == 2
    assert "input[1].cron.expression: invalid cron expression '*/5 * *'" in result.stderr


def test_invalid_yaml_names_the_line(write):
    path = write("c.yaml", "input:\n  - cron: {expression: '* * * * *'\nevent: x\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.problems[0].startswith(f"{path}:")
    assert "invalid YAML" in err.value.problems[0]


def test_env_interpolation(write, monkeypatch):
    write("s.py", SCRIPT)
    monkeypatch.setenv("TOPIC_TAG", "blue")
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    path = write(
        "c.yaml",
        """
        input: [{cron: {expression: "* * * * *", tags: ["${TOPIC_TAG}", "${UNSET_VAR:-dflt}",
                 "${EMPTY:-fallback}", "${EMPTY-kept}", "$${LITERAL}"]}}]
        event: {script: {path: s.py}}
        """,
    )
    config = load_config(path)
    assert config.input[0].settings.tags == ("blue", "dflt", "fallback", "", "${LITERAL}")


def test_missing_env_variable_is_named(write, monkeypatch):
    write("s.py", SCRIPT)
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    path = write(
        "c.yaml",
        """
        input: [{cron: {expression: "* * * * *"}}]
        event: {script: {path: s.py}}
        output: [{kafka: {bootstrap_servers: "${NOPE_NOT_SET}", topic: t}}]
        """,
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.problems == [
        "output[0].kafka.bootstrap_servers: environment variable 'NOPE_NOT_SET' is not set"
    ]


def test_relative_paths_resolve_against_the_config_folder(write, tmp_path, monkeypatch):
    write("sub/s.py", SCRIPT)
    path = write(
        "sub/c.yaml",
        """
        input: [{cron: {expression: "* * * * *"}}]
        event: {script: {path: s.py}}
        output: [{file: {path: out/events.jsonl}}]
        """,
    )
    monkeypatch.chdir(Path("/"))
    config = load_config(path)
    assert config.event.script.path == tmp_path / "sub" / "s.py"
    assert config.output[0].settings.path == tmp_path / "sub" / "out" / "events.jsonl"


def test_defaults_and_names():
    config = parse_config(
        {
            "input": [{"cron": {"expression": "* * * * *"}}, {"name": "load", "rate": {"per_second": 5}}],
            "event": {"script": {"path": __file__}},
        },
        Path("."),
    )
    assert config.input_names() == ["cron-0", "load"]
    assert config.output_names() == ["stdout-0"]
    assert config.timezone == "UTC" and config.mode == "live"
