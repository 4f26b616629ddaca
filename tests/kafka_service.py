"""Where tests find Kafka: $KAFKA_BOOTSTRAP_SERVERS, testcontainers, or scripts/local-kafka.

Plain helpers, no pytest fixtures. The local broker keeps its data dir and port across
stop_local_kafka()/start_local_kafka(), so data produced before a stop is readable after.
"""

import atexit
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "local-kafka"
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
