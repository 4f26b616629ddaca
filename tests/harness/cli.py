"""The connector as a process: `run_cli` to completion, `Run` in the background (to signal,
kill or scrape while it runs), and waiting for a moment the test controls."""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from connector.testing import free_port
from tests.harness.accounts import check_accounts
from tests.harness.metrics import Samples, metric, scrape
from tests.harness.summary import Summary

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def wait_for(what: str, check: Callable[[], object], timeout: float = 30, every: float = 0.1):
    """check()'s first truthy value; AssertionError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def pipe_held(fd: int) -> int:
    """Bytes waiting in a pipe (read end `fd`): what its writer wrote and nobody read."""
    held = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, held)
    return held[0]


def wait_pipe_full(fd: int, timeout: float = 60) -> None:
    """Until the pipe (read end `fd`, never read) is nearly full and its writer stalled:
    the moment a test wants the writer blocked, read from the pipe rather than guessed."""
    capacity = fcntl.fcntl(fd, 1032)  # F_GETPIPE_SZ

    def stalled() -> bool:
        now = pipe_held(fd)
        if now < capacity - 16384:
            return False
        time.sleep(0.3)  # and it stays: the writer waits for room
        return pipe_held(fd) == now

    wait_for(f"the pipe to fill ({capacity} bytes)", stalled, timeout, 0.1)


def worker_pids(pid: int) -> list[int]:
    """The worker processes of a `connector run --workers N` of process `pid` (its
    children spawned by multiprocessing), sorted."""
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
            children += [int(c) for c in f.read().split()]
    workers = []
    for child in children:
        with contextlib.suppress(OSError), open(f"/proc/{child}/cmdline", "rb") as f:
            if b"spawn_main" in f.read():
                workers.append(child)
    return sorted(workers)


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr[-4000:]


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
        return Summary.parse(self.stderr).numbers(output)

    def accounts(self, output: str, **what_arrived) -> dict[str, int]:
        """check_accounts (tests/harness/accounts.py) on the run's summary, given what
        arrived (held=, dead=, ...); the summary's numbers for the output."""
        summary = Summary.parse(self.stderr)
        check_accounts(summary, output, **what_arrived)
        return summary.numbers(output)


def run_cli(*args: str, timeout: float = 120, env: dict | None = None, **kw) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "connector", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env, **kw,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def start_run(config: Path, *args: str, **kw) -> subprocess.Popen:
    """`connector run CONFIG ARGS` in the background, stdout and stderr piped (text)."""
    return subprocess.Popen([sys.executable, "-m", "connector", "run", str(config), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def through_outage(config: Path, duration: float, down: Callable[[], None],
                   up: Callable[[], None], *, before: float = 4, outage: float = 4,
                   timeout: float = 120) -> Result:
    """`connector run CONFIG --duration D` with its service taken away `before` seconds in
    (`down()`) and brought back `outage` seconds later (`up()`); run to its end."""
    proc = start_run(config, "--duration", f"{duration:g}")
    try:
        time.sleep(before)
        down()
        time.sleep(outage)
        up()
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return Result(proc.returncode, out, err)


def run_clis(*commands: tuple[str, ...], timeout: float = 120, **kw) -> list[Result]:
    """Several `connector` commands at once, each to completion (independent processes: a
    test that waits for timeouts waits for them together, not one after another)."""
    procs = [subprocess.Popen([sys.executable, "-m", "connector", *map(str, args)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
             for args in commands]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            results.append(Result(proc.returncode, out, err))
    finally:
        for proc in procs:
            proc.kill()
    return results


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
        return metric(scrape(self.metrics_port), name, **labels)

    def metrics_after_summary(self, timeout: float = 120) -> Samples:
        """With --linger: the last /metrics, scraped once the summary is printed."""
        wait_for("the summary", lambda: "summary: " in self.stderr or self.proc.poll() is not None,
                 timeout, 0.05)
        return scrape(self.metrics_port) or {}

    def wait_delivered(self, at_least: int, timeout: float = 60) -> None:
        wait_for(f"{at_least} events delivered", lambda: (
            self.check_alive() and self.metric("connector_events_delivered_total") >= at_least
        ), timeout, 0.05)

    def check_alive(self) -> bool:
        assert self.proc.poll() is None, "the connector exited early:\n" + self.stderr[-3000:]
        return True
