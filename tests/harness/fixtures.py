"""The suite's fixtures (loaded by tests/conftest.py): the shared services, a topic of the
test's own, and one private service of each kind to kill, pause or restart.

The shared broker, Jaeger and Schema Registry are started once per run when nothing runs
yet (and stopped at the end by whoever started them). The private broker and Jaeger are
started once per test process, on their own ports and folders, for the tests that hurt
them; each test gets them running (`private_kafka`) or as they are (`private_jaeger`),
whatever the test before did. Those tests share one pytest-xdist group (`private`), so a
parallel run starts each private service once, not once per worker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.harness import kafka as ks
from tests.harness.cli import ROOT

# Every topic and consumer group a test makes on the broker starts with this session's prefix,
# so the session can prove at its end that it left none behind (other sessions may share
# the broker). KAFKA_TEST_STRICT=1 also fails on ANY topic or group that appeared during
# the session, prefix or not (for a broker of this session's own).
SESSION_PREFIX = f"pytest-{uuid.uuid4().hex[:6]}-"


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
    """Yield get()'s endpoints; stop scripts/<script> afterwards if this session started it
    (never from a worker of a parallel run: the other workers may still use it)."""
    tool = ROOT / "scripts" / script

    def running() -> bool:
        return subprocess.run([tool, "status"], capture_output=True).returncode == 0

    was_running = running()
    endpoints = get()  # an address given in the environment starts nothing
    started_here = not was_running and running()
    yield endpoints
    if started_here and "PYTEST_XDIST_WORKER" not in os.environ:
        subprocess.run([tool, "stop"], capture_output=True)


def _left_behind(bootstrap: str, mine: list[str]) -> None:
    if mine:
        pytest.fail(
            f"the tests left {len(mine)} topic(s)/consumer group(s) on the broker at "
            f"{bootstrap}: {', '.join(sorted(mine))}. Make them with the kafka_topic fixture "
            "(it deletes them, and the groups, after the test)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def kafka_bootstrap():
    """The shared broker. At the end, no topic or consumer group of this test process's
    prefix may be left on it (KAFKA_TEST_STRICT=1: none at all, checked once for the
    whole run in pytest_sessionfinish below)."""
    service = _service("local-kafka", ks.kafka_bootstrap)
    bootstrap = next(service)
    yield bootstrap
    mine = [t for t in ks.topics(bootstrap) if t.startswith(SESSION_PREFIX)]
    mine += [f"group {g}" for g in ks.groups(bootstrap) if g.startswith(SESSION_PREFIX)]
    next(service, None)  # stops the broker if this session started it
    _left_behind(bootstrap, mine)


# KAFKA_TEST_STRICT=1 (scripts/test, with a broker of the run's own): any topic or group
# that appeared during the run fails it, whoever made it. Checked by the process that runs
# the session (the controller of a parallel run), after every worker has finished.
_strict: dict = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("KAFKA_TEST_STRICT") == "1" and not hasattr(session.config,
                                                                  "workerinput"):
        bootstrap = ks.kafka_bootstrap()
        _strict.update(bootstrap=bootstrap, topics=ks.topics(bootstrap),
                       groups=ks.groups(bootstrap))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _strict:
        return
    bootstrap = _strict["bootstrap"]
    try:
        new = sorted(ks.topics(bootstrap) - _strict["topics"])
        new += [f"group {g}" for g in sorted(ks.groups(bootstrap) - _strict["groups"])]
    except Exception as exc:  # the broker is gone: say so, do not hide the run's result
        new = [f"(the broker at {bootstrap} could not be asked: {exc})"]
    if new:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        tr.ensure_newline()
        tr.write_line(
            f"KAFKA_TEST_STRICT: the tests left {len(new)} topic(s)/consumer group(s) on the "
            f"broker at {bootstrap}: {', '.join(new)}. Make them with the kafka_topic "
            "fixture (it deletes them, and the groups, after the test)", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@dataclass
class KafkaTopics:
    """kafka_topic('name') -> a new topic, created now and deleted after the test.

    `prefix` is this test's own: topics a run creates by routing (`{prefix}alpha`) and
    consumer groups named with it (`group()`) are deleted after the test as well."""

    bootstrap: str
    prefix: str
    made: set[str] = field(default_factory=set)

    def __call__(self, name: str = "t", partitions: int = 3, create: bool = True) -> str:
        topic = f"{self.prefix}{name}-{uuid.uuid4().hex[:6]}"
        if create:
            ks.create_topic(self.bootstrap, topic, partitions)
        self.made.add(topic)
        return topic

    def group(self) -> str:
        return f"{self.prefix}group-{uuid.uuid4().hex[:6]}"

    def cleanup(self) -> None:
        ks.delete(
            self.bootstrap,
            {t for t in ks.topics(self.bootstrap) if t.startswith(self.prefix)} | self.made,
            {g for g in ks.groups(self.bootstrap) if g.startswith(self.prefix)},
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
    """collector('name') -> a Collector (tests/harness/collector.py), stopped after the test,
    before kafka_topic deletes the topics and the consumer group its kafka receiver made.
    One per test: each has a config of its own."""
    from tests.harness.collector import Collector

    made: list[Collector] = []

    def _make(name: str = "collector") -> Collector:
        made.append(Collector(tmp_path / name))
        return made[-1]

    yield _make
    for c in made:
        c.stop()


# -- private services: once per test process, to hurt -----------------------------------------


@pytest.fixture(scope="session")
def _private_kafka(tmp_path_factory):
    state = tmp_path_factory.mktemp("private-kafka")
    kafka = ks.PrivateKafka(state / "broker")
    try:
        yield kafka
    finally:  # stopped (or killed) even when a test failed
        kafka.close()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def private_kafka(_private_kafka):
    """A broker of this test process's own (own ports and state), running and not paused:
    the test may kill, pause, stop or wipe it. A service you pointed the tests at is never
    touched. Topics on it are the test's to name uniquely (other tests use it too)."""
    _private_kafka.ensure_running()
    return _private_kafka


@pytest.fixture
def retention_kafka(tmp_path_factory):
    """A broker of the test's own that enforces retention every second (the shared one
    checks every 5 minutes, a setting no client can change), stopped after the test."""
    state = tmp_path_factory.mktemp("retention-kafka")
    kafka = ks.PrivateKafka(state / "broker")
    kafka.env["LOCAL_KAFKA_PROPERTIES"] = (
        "log.retention.check.interval.ms=1000\nlog.initial.task.delay.ms=0\n"
    )
    try:
        kafka.start()
        yield kafka
    finally:
        kafka.close()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory):
    """A secured broker of this test process's own (tests/harness/secure_kafka.py), started
    once, stopped at the end: SASL_SSL (SCRAM, PLAIN) and SSL (mTLS...) listeners."""
    from tests.harness.secure_kafka import start_secure_kafka

    state = tmp_path_factory.mktemp("secure-kafka")
    kafka = start_secure_kafka(state / "broker")
    try:
        yield kafka
    finally:
        kafka.broker.close()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def _private_jaeger(tmp_path_factory):
    from tests.harness.jaeger import PrivateJaeger

    state = tmp_path_factory.mktemp("private-jaeger")
    jaeger = PrivateJaeger(state)
    try:
        yield jaeger
    finally:
        jaeger.stop()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def private_jaeger(_private_jaeger):
    """A Jaeger of this test process's own (free ports, badger storage in its own folder,
    so traces survive a kill -9), running: the test may kill, stop and start it."""
    _private_jaeger.ensure_running()
    return _private_jaeger
