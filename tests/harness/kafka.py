"""Kafka for tests: where the shared broker is ($KAFKA_BOOTSTRAP_SERVERS, testcontainers or
scripts/local-kafka), its topics and consumer groups, the one topic reader, and a private
broker to kill, pause or restart (never the shared one). Plain helpers, no fixtures."""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from connector.testing import free_port
from tests.harness.cli import wait_for
from tests.harness.services import start_service

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "local-kafka"
HOW_TO = "start one with `scripts/local-kafka start` or set KAFKA_BOOTSTRAP_SERVERS=host:port"
KEY = "KAFKA_BOOTSTRAP_SERVERS"

_container_bootstrap: str | None = None


def _docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        r = subprocess.run(["docker", "info"], capture_output=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def _container() -> str | None:
    global _container_bootstrap
    if _container_bootstrap is None:
        if importlib.util.find_spec("testcontainers") is None or not _docker_answers():
            return None
        from testcontainers.kafka import KafkaContainer

        kafka = KafkaContainer().with_env("KAFKA_NUM_PARTITIONS", "3")
        kafka.start()
        atexit.register(kafka.stop)
        _container_bootstrap = kafka.get_bootstrap_server()
    return _container_bootstrap


def start_local_kafka() -> str:
    """Start (or reuse) the scripts/local-kafka broker and return its bootstrap address."""
    # the first start may download jars with Maven: allow minutes
    return start_service(SCRIPT, "Kafka broker", [KEY], HOW_TO, 600)[KEY]


def kafka_bootstrap() -> str:
    """Bootstrap address of a reachable broker; RuntimeError (saying how to start one) if none."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or _container() or start_local_kafka()


# -- the broker's topics and consumer groups (tests leave nothing behind) --------------------

INTERNAL = ("__", "_confluent", "_schemas")  # broker-internal topics, never a test's
PROBE_TOPIC = "local-kafka-probe"  # scripts/local-kafka's readiness probe


def admin(bootstrap: str):
    import logging

    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger("tests.kafka.admin")  # not librdkafka's own lines on stderr
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    return AdminClient({"bootstrap.servers": bootstrap}, logger=quiet)


def topics(bootstrap: str) -> set[str]:
    names = admin(bootstrap).list_topics(timeout=30).topics
    return {t for t in names if not t.startswith(INTERNAL) and t != PROBE_TOPIC}


def groups(bootstrap: str) -> set[str]:
    client = admin(bootstrap)  # kept alive until the future is resolved
    result = client.list_consumer_groups(request_timeout=30).result()
    return {g.group_id for g in result.valid}


def create_topic(bootstrap: str, name: str, partitions: int = 3) -> None:
    from confluent_kafka.admin import NewTopic

    client = admin(bootstrap)  # kept alive until the future is resolved
    futures = client.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)], request_timeout=30
    )
    futures[name].result(timeout=60)


def delete(bootstrap: str, topic_names: set[str], group_ids: set[str] = frozenset()) -> None:
    """Delete topics and consumer groups; ones already gone are fine."""
    from confluent_kafka import KafkaError, KafkaException

    client = admin(bootstrap)
    gone = (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.GROUP_ID_NOT_FOUND)
    futures = []
    if topic_names:
        futures += client.delete_topics(sorted(topic_names), operation_timeout=30).values()
    if group_ids:
        futures += client.delete_consumer_groups(sorted(group_ids), request_timeout=30).values()
    for future in futures:
        try:
            future.result(timeout=60)
        except KafkaException as exc:
            if exc.args[0].code() not in gone:
                raise


# -- what a topic holds --------------------------------------------------------------------


def read_topic(bootstrap: str, topic: str | list[str], *, read_committed: bool = False,
               timeout: float = 60) -> list:
    """Every record the topics hold now (confluent_kafka Messages, in each partition's
    order), each partition read to its end: the high watermark, or with read_committed (as
    an exactly-once job reads) the last stable offset, aborted records skipped. Exact: no
    idle guessing. Partitions are assigned, not subscribed: no consumer group is made.
    A topic that does not exist holds nothing."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    names = [topic] if isinstance(topic, str) else list(topic)
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "unused (assign only, nothing committed)",
        "enable.auto.commit": False, "enable.auto.offset.store": False,
        "enable.partition.eof": True, "fetch.max.bytes": 50 * 1024 * 1024,
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
    })
    try:
        metadata = consumer.list_topics(timeout=30).topics
        left = {(t, p) for t in names if t in metadata for p in metadata[t].partitions}
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in left])
        messages: list = []
        deadline = time.monotonic() + timeout
        while left:
            assert time.monotonic() < deadline, f"the ends of {sorted(left)} never came"
            for msg in consumer.consume(10_000, timeout=0.5):
                if msg.error() is None:
                    messages.append(msg)
                elif msg.error().code() == KafkaError._PARTITION_EOF:
                    left.discard((msg.topic(), msg.partition()))
                else:
                    raise AssertionError(f"reading {sorted(names)}: {msg.error()}")
        return messages
    finally:
        consumer.close()


# -- a broker of a test's own, to kill (never the shared one) --------------------------------


def _alive(pid: int) -> bool:
    """Running (a zombie or a reused-and-gone pid is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


class PrivateKafka:
    """scripts/local-kafka on its own ports (broker, controller) and state folder: start,
    stop, kill -9, pause, wipe. Data and port are kept across a stop or kill."""

    def __init__(self, state: Path, port: int | None = None):
        self.state = Path(state)
        self.port = port or free_port(2)
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.env = os.environ | {
            "LOCAL_KAFKA_DIR": str(self.state),
            "LOCAL_KAFKA_PORT": str(self.port),
            "LOCAL_KAFKA_HEAP": "-Xms256m -Xmx512m",
        }
        self._starting: subprocess.Popen | None = None

    def _script(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        r = subprocess.run(
            [sys.executable, str(SCRIPT), command],
            capture_output=True, text=True, timeout=timeout, env=self.env,
        )
        if command != "status" and r.returncode != 0:
            raise RuntimeError(f"local-kafka {command} exited {r.returncode}: {r.stderr[-2000:]}")
        return r

    @property
    def pid(self) -> int | None:
        try:
            pid = int((self.state / "kafka.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(self) -> str:
        """Start (or restart after a kill) and wait until it acknowledges a produce."""
        self.start_in_background()
        self.wait_started()
        return self.bootstrap

    def start_in_background(self) -> None:
        """Begin a (re)start without waiting: the test goes on while the broker boots."""
        self._starting = subprocess.Popen(
            [sys.executable, str(SCRIPT), "start"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env,
        )

    def wait_started(self, timeout: float = 180) -> None:
        proc, self._starting = self._starting, None
        if proc is None:
            return
        _out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"local-kafka start exited {proc.returncode}: {err[-2000:]}")

    def ensure_running(self) -> None:
        """Running and not paused, whatever the test before left."""
        self.wait_started()
        if self.pid is None:
            self.start()
        else:
            self.resume()

    def stop(self) -> None:
        """A controlled shutdown (a paused broker is woken first)."""
        self.wait_started()
        if self.pid is not None:
            self.resume()
            self._script("stop", timeout=90)

    def kill(self) -> None:
        """kill -9: no controlled shutdown, every connection just dies."""
        pid = self._pid()
        os.kill(pid, signal.SIGCONT)  # a paused broker dies as well
        os.kill(pid, signal.SIGKILL)
        wait_for("the killed broker to go", lambda: not _alive(pid), 15, 0.05)
        # its threads may hold the ports a moment longer (scripts/local-kafka start waits too)
        wait_for("the killed broker's ports to close", lambda: not any(
            _listening(p) for p in (self.port, self.port + 1)), 30, 0.05)

    def wipe(self) -> None:
        """Stopped, its data gone: the next start formats a fresh broker."""
        self.stop()
        shutil.rmtree(self.state, ignore_errors=True)

    def pause(self) -> None:
        os.kill(self._pid(), signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self._pid(), signal.SIGCONT)

    def _pid(self) -> int:
        pid = self.pid
        assert pid, "the private broker is not running"
        return pid

    def close(self) -> None:
        """The fixture's finalizer: whatever state it is in, it ends stopped."""
        with contextlib.suppress(Exception):
            self.wait_started(60)
        pid = self.pid
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
            try:
                self._script("stop", timeout=90)
            except Exception:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
