"""Shared test helpers: run the real CLI, write configs, reach the real services."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import tests.harness.hypothesis_profiles  # noqa: F401  (HYPOTHESIS_PROFILE: default | long | discover)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    @property
    def json(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]

    def summary(self, output: str | None = None) -> dict[str, int]:
        """Numbers from the run summary on stderr: timestamps, produced, script_errors,
        and for `output` its delivered / failed (/ filtered, with a `when` rule)."""
        out: dict[str, int] = {}
        for line in self.stderr.splitlines():
            line = line.strip()
            if line.startswith("timestamps:"):
                out["timestamps"] = int(line.split()[1])
            elif line.startswith("events produced:"):
                out["produced"] = int(line.split()[2])
            elif line.startswith("script errors:"):
                out["script_errors"] = int(line.split()[2].rstrip(","))
            elif output and line.startswith(f"output {output}:"):
                parts = line.split(":", 1)[1].replace(",", "").split()
                out["delivered"], out["failed"] = int(parts[1]), int(parts[3])
                if len(parts) > 5:  # an output with a `when` rule
                    out["filtered"] = int(parts[5])
        return out


def run_cli(*args: str, timeout: float = 120, env: dict | None = None, **kw) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "connector", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env, **kw,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def write(tmp_path: Path):
    """write('name', 'text') -> path, dedented, in a fresh folder."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    return _write


def _service(script: str, get):
    """Yield get()'s endpoints; stop scripts/<script> afterwards if this session started it."""
    tool = ROOT / "scripts" / script
    started_here = subprocess.run([tool, "status"], capture_output=True).returncode != 0
    yield get()
    if started_here:
        subprocess.run([tool, "stop"], capture_output=True)


# Every topic and consumer group a test makes on the broker starts with this session's prefix,
# so the session can prove at its end that it left none behind (other sessions may share
# the broker). KAFKA_TEST_STRICT=1 also fails on ANY topic or group that appeared during
# the session, prefix or not (for a broker of this session's own).
SESSION_PREFIX = f"pytest-{uuid.uuid4().hex[:6]}-"


@pytest.fixture(scope="session")
def kafka_bootstrap():
    from tests.harness import kafka as ks

    service = _service("local-kafka", ks.kafka_bootstrap)
    bootstrap = next(service)
    before = (ks.topics(bootstrap), ks.groups(bootstrap))
    yield bootstrap
    left_topics, left_groups = ks.topics(bootstrap), ks.groups(bootstrap)
    strict = os.environ.get("KAFKA_TEST_STRICT") == "1"
    mine = [t for t in left_topics if t.startswith(SESSION_PREFIX)]
    mine += [f"group {g}" for g in left_groups if g.startswith(SESSION_PREFIX)]
    if strict:
        mine = sorted(left_topics - before[0]) + [f"group {g}" for g in left_groups - before[1]]
    next(service, None)  # stops the broker if this session started it
    if mine:
        pytest.fail(
            f"the tests left {len(mine)} topic(s)/consumer group(s) on the broker at "
            f"{bootstrap}: {', '.join(sorted(mine))}. Make them with the kafka_topic fixture "
            "(it deletes them, and the groups, after the test)",
            pytrace=False,
        )


@dataclass
class KafkaTopics:
    """kafka_topic('name') -> a new topic, created now and deleted after the test.

    `prefix` is this test's own: topics a run creates by routing (`{prefix}alpha`) and
    consumer groups named with it (`group()`) are deleted after the test as well."""

    bootstrap: str
    prefix: str
    made: set[str] = field(default_factory=set)

    def __call__(self, name: str = "t", partitions: int = 3, create: bool = True) -> str:
        from tests.harness.kafka import create_topic

        topic = f"{self.prefix}{name}-{uuid.uuid4().hex[:6]}"
        if create:
            create_topic(self.bootstrap, topic, partitions)
        self.made.add(topic)
        return topic

    def group(self) -> str:
        return f"{self.prefix}group-{uuid.uuid4().hex[:6]}"

    def cleanup(self) -> None:
        from tests.harness.kafka import delete, groups, topics

        delete(
            self.bootstrap,
            {t for t in topics(self.bootstrap) if t.startswith(self.prefix)} | self.made,
            {g for g in groups(self.bootstrap) if g.startswith(self.prefix)},
        )


@pytest.fixture
def kafka_topic(kafka_bootstrap):
    topics = KafkaTopics(kafka_bootstrap, f"{SESSION_PREFIX}{uuid.uuid4().hex[:6]}-")
    yield topics
    topics.cleanup()


@pytest.fixture(scope="session")
def schema_registry_url():
    from tests.harness.schema_registry import schema_registry_url

    yield from _service("local-schema-registry", schema_registry_url)


@pytest.fixture
def schema_registry(schema_registry_url, kafka_topic):
    """The registry's URL; subjects named after this test's topics are deleted after it."""
    from tests.harness.schema_registry import delete_subjects

    yield schema_registry_url
    delete_subjects(schema_registry_url, kafka_topic.prefix)


@pytest.fixture(scope="session")
def jaeger():
    from tests.harness.jaeger import jaeger_endpoints

    yield from _service("local-jaeger", jaeger_endpoints)


@pytest.fixture
def collector(kafka_topic, tmp_path):
    """collector('name') -> a Collector (tests/collector_service.py), stopped after the test,
    before kafka_topic deletes the topics and the consumer group its kafka receiver made."""
    from tests.harness.collector import Collector

    made: list[Collector] = []

    def _make(name: str = "collector") -> Collector:
        made.append(Collector(tmp_path / name))
        return made[-1]

    yield _make
    for c in made:
        c.stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A broker of the module's own (own ports and state) for tests that kill, pause or
    restart it: a service you pointed the tests at is never touched."""
    from tests.harness.faults import PrivateKafka

    state = tmp_path_factory.mktemp("kafka")
    kafka = PrivateKafka(state / "broker")
    try:
        kafka.start()
        yield kafka
    finally:  # stopped (or killed) even when a test failed
        kafka.close()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def kafka(broker):
    """The module's own broker, running (the test before may have left it killed)."""
    broker.ensure_running()
    return broker
