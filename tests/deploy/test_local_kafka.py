"""Contract of scripts/local-kafka start|stop|status.

Uses the shared broker (left running for other tests) where it can; the restart test runs
its own broker in a temporary state folder on other ports.
"""

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from connector.testing import free_port
from tests.harness.kafka import SCRIPT, read_topic, start_local_kafka

PREFIX = "KAFKA_BOOTSTRAP_SERVERS="


def run(command: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPT), command], capture_output=True, text=True, timeout=300, env=os.environ | env
    )


def pid_of(status: subprocess.CompletedProcess) -> int:
    return int(re.search(r"running \(pid (\d+)\)", status.stdout).group(1))


@pytest.fixture(scope="module")
def bootstrap() -> str:
    return start_local_kafka()


def test_status_prints_bootstrap_line(bootstrap):
    r = run("status")
    assert r.returncode == 0, r
    assert r.stdout.splitlines()[-1] == PREFIX + bootstrap


def test_start_is_noop_on_running_broker(bootstrap):
    pid = pid_of(run("status"))
    r = run("start")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == PREFIX + bootstrap
    assert pid_of(run("status")) == pid


def test_status_not_running(tmp_path):
    r = run("status", LOCAL_KAFKA_DIR=str(tmp_path))
    assert r.returncode == 3
    assert PREFIX not in r.stdout


def produce(bootstrap: str, topic: str, value: bytes) -> None:
    from confluent_kafka import Producer

    errors = []
    p = Producer({"bootstrap.servers": bootstrap})
    p.produce(topic, value, key=b"k", on_delivery=lambda err, _msg: errors.append(err))
    assert p.flush(30) == 0
    assert errors == [None]


def consume_in_group(
    bootstrap: str, topic: str, value: bytes, group: str, timeout: float = 30
) -> None:
    """Subscribe as consumer group `group` (a real group: the broker keeps it until deleted,
    so on the shared broker pass one from kafka_topic.group())."""
    from confluent_kafka import Consumer

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
        }
    )
    c.subscribe([topic])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = c.poll(1)
            if msg is not None and not msg.error() and msg.value() == value:
                return
        pytest.fail(f"{value!r} not consumed from {topic} within {timeout}s")
    finally:
        c.close()


def test_produce_consume_three_partitions(bootstrap, kafka_bootstrap, kafka_topic):
    from confluent_kafka.admin import AdminClient

    if kafka_bootstrap != bootstrap:
        pytest.skip("the tests' broker is not scripts/local-kafka's")
    topic = kafka_topic("local-kafka", create=False)  # auto-created: 3 partitions by default
    produce(bootstrap, topic, b"hello")
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    assert len(meta.topics[topic].partitions) == 3
    consume_in_group(bootstrap, topic, b"hello", kafka_topic.group())


def test_restart_keeps_data_and_stop_leaves_no_process(tmp_path):
    port = free_port(2)  # the broker's and the controller's
    env = {
        "LOCAL_KAFKA_DIR": str(tmp_path),
        "LOCAL_KAFKA_PORT": str(port),
        "LOCAL_KAFKA_HEAP": "-Xms256m -Xmx512m",
    }
    bootstrap = f"127.0.0.1:{port}"
    try:
        assert run("start", **env).stdout.splitlines()[-1] == PREFIX + bootstrap
        meta = (tmp_path / "data" / "meta.properties").read_text()
        produce(bootstrap, "survives-restart", b"before-stop")
        pid = pid_of(run("status", **env))

        assert run("stop", **env).returncode == 0
        assert run("status", **env).returncode == 3
        cmdline = Path(f"/proc/{pid}/cmdline")
        assert not cmdline.exists() or not cmdline.read_bytes()  # gone, or a zombie

        assert run("start", **env).returncode == 0
        assert (tmp_path / "data" / "meta.properties").read_text() == meta  # not reformatted
        assert [m.value() for m in read_topic(bootstrap, "survives-restart")] == [b"before-stop"]
    finally:
        run("stop", **env)


def test_start_after_its_broker_died_waits_for_the_ports_and_says_so(tmp_path):
    """A pid file left by a broker that died without stop (kill -9): start waits a bounded
    time for the ports that broker held before it calls them taken, and says so."""
    import socket

    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "kafka.pid").write_text(str(dead.pid))
    port = free_port(2)
    env = {"LOCAL_KAFKA_DIR": str(tmp_path), "LOCAL_KAFKA_PORT": str(port),
           "LOCAL_KAFKA_PORT_WAIT": "1"}
    with socket.socket() as held:  # as the dead broker's last threads would
        held.bind(("127.0.0.1", port))
        held.listen()
        r = run("start", **env)
    assert r.returncode == 1
    assert (f"port(s) [{port}] still held after the broker (pid {dead.pid}) died without stop; "
            "waiting up to 1s for them") in r.stderr
    assert f"port {port} is already in use by another process" in r.stderr
