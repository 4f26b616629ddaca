"""Helpers for the fault tests: private services to kill, the connector as a process, and
readers for what arrived (topic records, dead letters, summaries, /metrics).

A fault test never touches the services the rest of the suite shares: it starts its own
Kafka broker (scripts/local-kafka on its own port and state folder) and its own Jaeger (the
binary scripts/local-jaeger builds, with badger storage in a state folder of its own, so
traces stored before a kill -9 are still there after the restart). Both are stopped by the
test module's fixture, even when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from tests.harness.kafka import free_port, free_port_pair

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = ROOT / "scripts" / "local-kafka"
JAEGER_SCRIPT = ROOT / "scripts" / "local-jaeger"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# The reasons the outputs count failures by (connector/outputs): the dead letter's `error`
# starts with one of them.
NOT_SENT = "not sent: stopping"
POSSIBLY_WRITTEN = "timed out (possibly written)"
UNDELIVERED = "undelivered at the flush deadline (flush_timeout)"


# -- ports and waiting ---------------------------------------------------------------------


def wait_for(what: str, check: Callable[[], object], timeout: float, every: float = 0.1):
    """check()'s first truthy value; AssertionError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def _alive(pid: int) -> bool:
    """Running (a zombie or a reused-and-gone pid is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# -- a private Kafka broker ----------------------------------------------------------------


class PrivateKafka:
    """scripts/local-kafka on its own port and state folder: start, stop, kill -9, pause."""

    def __init__(self, state: Path):
        self.state = Path(state)
        self.port = free_port_pair()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.env = os.environ | {
            "LOCAL_KAFKA_DIR": str(self.state),
            "LOCAL_KAFKA_PORT": str(self.port),
            "LOCAL_KAFKA_HEAP": "-Xms256m -Xmx512m",
        }
        self._starting: subprocess.Popen | None = None

    def _script(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        r = subprocess.run(
            [sys.executable, str(KAFKA_SCRIPT), command],
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
            [sys.executable, str(KAFKA_SCRIPT), "start"],
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
        self.wait_started()
        if self.pid is None:
            self.start()

    def kill(self) -> None:
        """kill -9: no controlled shutdown, every connection just dies."""
        pid = self.pid
        assert pid, "the private broker is not running"
        os.kill(pid, signal.SIGCONT)  # a paused broker dies as well
        os.kill(pid, signal.SIGKILL)
        wait_for("the killed broker to go", lambda: not _alive(pid), 15, 0.05)

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


# -- a private Jaeger ----------------------------------------------------------------------

JAEGER_CONFIG = """\
# a fault test's own Jaeger: badger on disk, so a kill -9 and restart keeps stored traces
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces: {receivers: [otlp], exporters: [jaeger_storage_exporter]}
  telemetry:
    metrics: {level: none}
    logs: {level: warn}
extensions:
  jaeger_storage:
    backends:
      store:
        badger:
          directories: {keys: "{state}/keys", values: "{state}/values"}
          ephemeral: false
  jaeger_query:
    storage: {traces: store}
    enable_tracing: false
    http: {endpoint: "127.0.0.1:{query}"}
    grpc: {endpoint: "127.0.0.1:{query_grpc}"}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:{grpc}"}
      http: {endpoint: "127.0.0.1:{http}"}
exporters:
  jaeger_storage_exporter: {trace_storage: store}
"""


def jaeger_binary(state: Path) -> Path:
    """The binary scripts/local-jaeger builds and caches; built now (on private ports) if
    this machine has never built it."""
    import runpy

    binary = runpy.run_path(str(JAEGER_SCRIPT), run_name="local_jaeger")["BINARY"]
    if not binary.exists():
        env = os.environ | {"LOCAL_JAEGER_DIR": str(state / "build")} | {
            f"LOCAL_JAEGER_{k.upper()}_PORT": str(free_port())
            for k in ("otlp_grpc", "otlp_http", "query", "query_grpc")
        }
        for command in ("start", "stop"):
            subprocess.run([sys.executable, str(JAEGER_SCRIPT), command], env=env,
                           capture_output=True, timeout=3600, check=True)
    return binary


class PrivateJaeger:
    """Jaeger on free ports with its own badger folder: start, kill -9, restart."""

    def __init__(self, state: Path):
        self.state = Path(state)
        self.state.mkdir(parents=True, exist_ok=True)
        self.ports = {k: free_port() for k in ("grpc", "http", "query", "query_grpc")}
        self.otlp_grpc = f"127.0.0.1:{self.ports['grpc']}"
        self.query = f"http://127.0.0.1:{self.ports['query']}"
        self.binary = jaeger_binary(self.state)
        self.config = self.state / "jaeger.yaml"
        text = JAEGER_CONFIG.replace("{state}", str(self.state))
        for name, port in self.ports.items():
            text = text.replace("{" + name + "}", str(port))
        self.config.write_text(text)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        with open(self.state / "jaeger.log", "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for("the private Jaeger to answer", self.ready, timeout, 0.1)

    def ready(self) -> bool:
        assert self.proc and self.proc.poll() is None, (
            "the private Jaeger exited: " + (self.state / "jaeger.log").read_text()[-2000:]
        )
        try:
            with NO_PROXY.open(f"{self.query}/api/services", timeout=2) as r:
                if r.status != 200:
                    return False
            with socket.create_connection(("127.0.0.1", self.ports["grpc"]), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def trace(self, trace_id: str) -> list[dict]:
        """The spans Jaeger holds for one trace (GET /api/traces/{id}); [] when none."""
        try:
            with NO_PROXY.open(f"{self.query}/api/traces/{trace_id}", timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return []
            raise
        return [s for t in body.get("data") or [] for s in t["spans"]]


# -- the connector as a process ------------------------------------------------------------


BACKFILL_START = "2026-01-01T00:00:00+00:00"


def write_config(path: Path, script: Path, outputs: list[dict], per_second: float,
                 seconds: float | None = None, **top: object) -> Path:
    """A config with one rate input. With `seconds`, a backfill of per_second * seconds
    events from BACKFILL_START; without, a live run (its length is --duration)."""
    rate: dict = {"per_second": per_second}
    if seconds is not None:
        end = datetime.fromisoformat(BACKFILL_START) + timedelta(seconds=seconds)
        rate |= {"start": BACKFILL_START, "end": end.isoformat()}
        top = {"mode": "backfill", **top}
    config = {**top, "metrics": {"port": 0}, "input": [{"rate": rate}],
              "event": {"script": {"path": str(script)}}, "output": outputs}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# One event per call, a JSON object with `id` (the timestamp: unique across workers too)
# and `n` (this process's call count). PAD pads the event; every SLOW_EVERY-th call sleeps
# SLOW seconds (a backfill that lasts long enough to be hurt mid-run); COUNTER names a
# file that holds the call count after each call (what a SIGKILL cannot report).
EVENT_SCRIPT = """\
import json, os, time
PAD = "x" * {pad}
SLOW_EVERY, SLOW = {slow_every}, {slow}
COUNTER = {counter!r}
fd = os.open(COUNTER, os.O_WRONLY | os.O_CREAT) if COUNTER else None
n = 0

def produce(params):
    global n
    n += 1
    if fd is not None:
        os.pwrite(fd, b"%12d" % n, 0)
    if SLOW_EVERY and n % SLOW_EVERY == 0:
        time.sleep(SLOW)
    return json.dumps({{"id": params["timestamp"].isoformat(), "n": n, "pad": PAD}})
"""


def write_script(path: Path, pad: int = 50, slow_every: int = 0, slow: float = 0.0,
                 counter: Path | None = None) -> Path:
    path.write_text(EVENT_SCRIPT.format(
        pad=pad, slow_every=slow_every, slow=slow, counter=str(counter) if counter else None
    ))
    return path


@dataclass
class Summary:
    """The run summary on stderr, read back."""

    text: str
    stop: str = ""
    produced: int | None = None
    outputs: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def parse(cls, stderr: str) -> Summary:
        start = stderr.rfind("\nsummary: ")
        text = stderr[start + 1:] if start >= 0 else ""
        s = cls(text)
        current = None
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith("summary: "):
                s.stop = line
            elif line.startswith("events produced:"):
                s.produced = int(line.split()[2])
            elif line.startswith("output ") and ": " in line:
                name, rest = line[len("output "):].split(": ", 1)
                current = s.outputs[name] = {"reasons": Counter(), "line": rest}
                if rest.startswith("delivered "):
                    parts = rest.replace(",", "").split()
                    current["delivered"], current["failed"] = int(parts[1]), int(parts[3])
                    current["filtered"] = int(parts[5]) if len(parts) > 5 else 0
            elif line.startswith("failed: ") and current is not None:
                reason, n = line[len("failed: "):].rsplit(": ", 1)
                current["reasons"][reason] = int(n)
        return s

    def delivered(self, output: str) -> int:
        return self.outputs[output]["delivered"]

    def failed(self, output: str) -> int:
        return self.outputs[output]["failed"]

    def reasons(self, output: str) -> Counter:
        return self.outputs[output]["reasons"]


class Run:
    """`connector run` as a child process; stdout and stderr go to files (no pipe fills)."""

    def __init__(self, folder: Path, config: Path, *args: str, metrics: bool = True,
                 preexec_fn: Callable[[], None] | None = None):
        self.folder = folder
        self.metrics_port = free_port() if metrics else 0
        command = [sys.executable, "-m", "connector", "run", str(config),
                   "--metrics-port", str(self.metrics_port), "--progress-interval", "5", *args]
        self.out_path, self.err_path = folder / "run.out", folder / "run.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                command, cwd=folder, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                preexec_fn=preexec_fn,
            )
        self.started = time.monotonic()
        self.ended: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the connector did not exit within {timeout:g}s; stderr so far:\n"
                + self.stderr[-3000:]
            ) from None
        self.ended = self.ended or time.monotonic()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    @property
    def summary(self) -> Summary:
        return Summary.parse(self.stderr)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples matching labels (0 when not served yet)."""
        return metric(self.metrics_port, name, **labels)

    def metrics_after_summary(self, timeout: float = 120) -> dict:
        """With --linger: the last /metrics, scraped once the summary is printed."""
        wait_for("the summary", lambda: "summary: " in self.stderr or self.proc.poll() is not None,
                 timeout, 0.05)
        return scrape(self.metrics_port)

    def wait_delivered(self, at_least: int, timeout: float = 60) -> None:
        wait_for(f"{at_least} events delivered", lambda: (
            self.check_alive() and self.metric("connector_events_delivered_total") >= at_least
        ), timeout, 0.05)

    def check_alive(self) -> bool:
        assert self.proc.poll() is None, "the connector exited early:\n" + self.stderr[-3000:]
        return True


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from /metrics; {} when it does not answer."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with NO_PROXY.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def metric(port: int, name: str, **labels: str) -> float:
    return sum(
        v for (n, ls), v in scrape(port).items()
        if n == name and all(dict(ls).get(k) == want for k, want in labels.items())
    )


# -- what arrived --------------------------------------------------------------------------


def read_topic(bootstrap: str, topic: str, timeout: float = 60) -> list[bytes]:
    """Every record of a topic, read to the high watermark of each partition (exact: no
    idle guessing). Partitions are assigned, so no consumer group is left behind."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
        "enable.auto.offset.store": False, "fetch.max.bytes": 50 * 1024 * 1024,
    })
    try:
        metadata = consumer.list_topics(topic, timeout=30)
        parts = metadata.topics[topic].partitions if topic in metadata.topics else {}
        ends = {}
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while ends:
            assert time.monotonic() < deadline, f"reading {topic}: {ends} not reached"
            for msg in consumer.consume(10_000, timeout=0.5):
                assert msg.error() is None, msg.error()
                values.append(msg.value())
                if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                    ends.pop(msg.partition(), None)
        return values
    finally:
        consumer.close()


def ids_of(values: list) -> list[str]:
    """The `id` field of each event (bytes or str)."""
    return [json.loads(v)["id"] for v in values]


def dead_letters(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def field_of(records: list[dict], name: str = "n") -> list:
    """A field of each dead-lettered event; None for a record without the event's value
    (the value was lost: a failure the output could not dead-letter properly)."""
    return [json.loads(r["value"])[name] if r.get("value") else None for r in records]


def ns_of(values: list) -> list[int]:
    """The `n` field (the call number: 1..produced in one process) of each event."""
    return [json.loads(v)["n"] for v in values]


def by_reason(records: list[dict], reason: str) -> list[dict]:
    """Dead-letter records that failed with `reason` (their `error` starts with it)."""
    return [r for r in records if r["error"].startswith(reason)]


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr[-4000:]


def assert_accounts(summary: Summary, output: str, dead: list[dict] | None = None) -> None:
    """Invariant 3 from the summary: delivered + failed + filtered == produced (and the dead
    letter holds one line per failure, when one is given)."""
    o = summary.outputs[output]
    assert "delivered" in o, f"output {output}: {o['line']}"
    assert o["delivered"] + o["failed"] + o["filtered"] == summary.produced, summary.text
    assert sum(o["reasons"].values()) == o["failed"], summary.text
    if dead is not None:
        mine = [r for r in dead if r.get("output") == output]
        assert len(mine) == o["failed"], (
            f"{len(mine)} dead-letter lines for {o['failed']} failed\n{summary.text}"
        )
