"""Where tests find Kafka: $KAFKA_BOOTSTRAP_SERVERS, testcontainers, or scripts/local-kafka.

Plain helpers, no pytest fixtures. The local broker keeps its data dir and port across
stop_local_kafka()/start_local_kafka(), so data produced before a stop is readable after.
"""

import atexit
import contextlib
import importlib.util
import os
import shutil
import subprocess
import time
from pathlib import Path

from connector.testing import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "local-kafka"
HOW_TO = "start one with `scripts/local-kafka start` or set KAFKA_BOOTSTRAP_SERVERS=host:port"
PREFIX = "KAFKA_BOOTSTRAP_SERVERS="

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


def _local_kafka(command: str) -> subprocess.CompletedProcess:
    try:
        # first start may download jars with Maven: allow minutes
        return subprocess.run([str(SCRIPT), command], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"scripts/local-kafka {command} failed: {e}; {HOW_TO}") from e


def start_local_kafka() -> str:
    """Start (or reuse) the scripts/local-kafka broker and return its bootstrap address."""
    r = _local_kafka("start")
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines or not lines[-1].startswith(PREFIX):
        raise RuntimeError(
            f"no Kafka broker: scripts/local-kafka start exited {r.returncode}:\n"
            f"{r.stderr.strip()}\n{HOW_TO}"
        )
    return lines[-1].removeprefix(PREFIX)


def stop_local_kafka() -> None:
    """Stop the scripts/local-kafka broker (data and port are kept for the next start)."""
    r = _local_kafka("stop")
    if r.returncode != 0:
        raise RuntimeError(f"scripts/local-kafka stop exited {r.returncode}:\n{r.stderr.strip()}")


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


# -- a broker of a test's own, to stop or kill (never the shared one) ------------------------


def free_port_pair() -> int:
    """A port p with p and p+1 free (broker and controller listeners)."""
    return free_port(2)


class OwnBroker:
    """scripts/local-kafka on its own port and state folder: start, stop, kill -9."""

    def __init__(self, state: Path, port: int | None = None):
        self.state, self.port = Path(state), port or free_port_pair()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.env = os.environ | {
            "LOCAL_KAFKA_DIR": str(self.state),
            "LOCAL_KAFKA_PORT": str(self.port),
            "LOCAL_KAFKA_HEAP": "-Xms256m -Xmx512m",
        }

    def _run(self, command: str) -> subprocess.CompletedProcess:
        r = subprocess.run(
            [str(SCRIPT), command], capture_output=True, text=True, timeout=600, env=self.env
        )
        if command != "status" and r.returncode != 0:
            raise RuntimeError(f"scripts/local-kafka {command} exited {r.returncode}: {r.stderr}")
        return r

    def start(self) -> str:
        self._run("start")
        return self.bootstrap

    def stop(self) -> None:
        self._run("stop")

    def kill(self) -> None:
        """SIGKILL: no controlled shutdown, connections just die."""
        import signal

        pid = int((self.state / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}/cmdline").exists() and Path(f"/proc/{pid}/cmdline").read_bytes():
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)

    def __enter__(self) -> "OwnBroker":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop()
