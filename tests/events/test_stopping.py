"""How a run ends when the script does not cooperate: a produce() call that never
returns, threads that never end.

- From the first SIGTERM the run ends within flush_timeout plus a second or so, even when
  produce() never returns (a sleep, a blocking read, a busy loop): the call is interrupted,
  named by file and line in the log and in the summary (`stopped: produce() did not
  return (s.py:N)`), counted as the script error `did_not_return`; what came before it is
  delivered and counted. A second signal ends the run at once.
- A call that swallows the interruption is ended by the last resort: the stacks on stderr
  and exit 1, HARD_AFTER seconds past flush_timeout.
- After its summary the process exits, whatever threads the script left running.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from connector.testing import free_port

pytestmark = pytest.mark.timeout(120)

BOUND = 3.0  # seconds past the grace a stopping run may take here (process exit included)

CONFIG = """
mode: backfill
metrics: {{port: 0}}
input:
  - cron: {{expression: "* * * * * *", start: "2026-02-20T10:00:00+00:00",
           end: "2026-02-20T12:00:00+00:00"}}
event:
  script: {{path: s.py}}
output:
  - file: {{path: out.txt, mode: overwrite, flush_timeout: {flush}}}
"""

HANGS = {
    "sleep": "time.sleep(3600)",
    "socket": "pair = socket.socketpair(); pair[0].recv(1)",
    "busy": "while True: pass",
    "event": "threading.Event().wait()",
}

SCRIPT = """
import os, socket, threading, time
n = 0
def produce(params):
    global n
    n += 1
    if n == 5:
        open("inside", "w").close()
        {hang}
    return "e%d" % n
"""


def start(folder: Path, hang: str, flush: float = 1.0, *args: str,
          command: list[str] | None = None) -> subprocess.Popen:
    (folder / "s.py").write_text(SCRIPT.format(hang=HANGS.get(hang, hang)))
    (folder / "c.yaml").write_text(CONFIG.format(flush=flush))
    command = command or [sys.executable, "-m", "connector"]
    with open(folder / "err.txt", "wb") as err:
        proc = subprocess.Popen([*command, "run", "c.yaml", "--quiet", *args], cwd=folder,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 60
    while not (folder / "inside").exists():  # produce() is in its fifth call, hung
        assert proc.poll() is None, (folder / "err.txt").read_text()
        assert time.monotonic() < deadline, "the script never reached its hang"
        time.sleep(0.05)
    time.sleep(0.2)
    return proc


def stop(proc: subprocess.Popen, *signals: float) -> float:
    """SIGTERM at each of `signals` (seconds from the first); seconds until the exit."""
    began = time.monotonic()
    for at in signals:
        time.sleep(max(0.0, began + at - time.monotonic()))
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the run did not end within 60 s of SIGTERM") from None
    return time.monotonic() - began


@pytest.mark.parametrize("hang", ["sleep", "busy"])  # more kinds: tests/fuzz/test_misbehaving
def test_a_hung_produce_is_interrupted_within_flush_timeout(tmp_path, hang):
    proc = start(tmp_path, hang, flush=1.0)
    took = stop(proc, 0)
    err = (tmp_path / "err.txt").read_text()
    assert took <= 1.0 + BOUND, (took, err)
    assert proc.returncode == 1, err
    assert "Traceback" not in err, err
    assert "summary: stopped: produce() did not return (s.py:9)" in err, err
    assert "interrupted at s.py:9" in err  # the log line names the call too
    assert "script errors: 1, did_not_return: 1" in err
    assert "timestamps: 5" in err and "events produced: 4 " in err
    assert "output file-0: delivered 4, failed 0" in err  # what came before is flushed
    assert (tmp_path / "out.txt").read_text() == "e1\ne2\ne3\ne4\n"


def test_a_hung_produce_gives_way_to_a_second_signal_at_once(tmp_path):
    proc = start(tmp_path, "sleep", flush=30.0)  # the grace would be 5 s
    took = stop(proc, 0, 0.5)
    err = (tmp_path / "err.txt").read_text()
    assert took <= 0.5 + BOUND, (took, err)
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "stopped: SIGTERM received; interrupted" in err
    assert "output file-0: delivered 4, failed 0" in err


def test_a_hung_produce_under_workers_ends_within_flush_timeout(tmp_path):
    proc = start(tmp_path, "sleep", 1.0, "--workers", "2")
    took = stop(proc, 0)
    err = (tmp_path / "err.txt").read_text()
    assert took <= 1.0 + BOUND, (took, err)
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "did_not_return: 2" in err and "interrupted at s.py:9" in err  # one per worker
    assert "summary: stopped: produce() did not return (s.py:9)" in err
    assert "output file-0: delivered 8, failed 0" in err


def test_a_script_that_swallows_the_interruption_meets_the_last_resort(tmp_path):
    # `except BaseException: pass` in a loop keeps even ProduceHung: the process ends
    # HARD_AFTER s past flush_timeout, with the stacks (faulthandler) and exit 1. A short
    # HARD_AFTER keeps the test quick.
    hang = "while True:\n            try:\n                time.sleep(100)\n" \
           "            except BaseException:\n                pass"
    launch = [sys.executable, "-c", "import sys; import connector.events.script as s; "
              "s.HARD_AFTER = 1.0; sys.argv[0] = 'connector'; "
              "from connector.__main__ import entry; entry()"]
    proc = start(tmp_path, hang, 1.0, command=launch)
    took = stop(proc, 0)
    err = (tmp_path / "err.txt").read_text()
    assert 2.0 <= took <= 2.0 + BOUND, (took, err)  # flush_timeout + HARD_AFTER
    assert proc.returncode == 1, err
    assert "Timeout" in err and 's.py", line 11 in produce' in err, err


THREADS = """
import threading, time
def forever():
    while True:
        time.sleep(0.1)
threading.Thread(target=forever, name="at-load").start()  # not a daemon
started = []
def produce(params):
    if not started:
        started.append(threading.Thread(target=forever, name="in-produce"))
        started[0].start()
    return "x"
"""


@pytest.mark.parametrize("workers", ["2"])  # one process: tests/fuzz/test_misbehaving
def test_threads_the_script_leaves_running_do_not_keep_the_process(tmp_path, workers):
    (tmp_path / "s.py").write_text(THREADS)
    (tmp_path / "c.yaml").write_text(CONFIG.format(flush=1).replace("12:00:00", "10:00:05"))
    began = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "connector", "run", "c.yaml", "--quiet",
                           "--workers", workers], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "summary: schedule complete" in proc.stderr
    assert (tmp_path / "out.txt").read_text() == "x\n" * 5
    assert time.monotonic() - began < 30


def test_linger_still_serves_after_the_summary_then_the_process_exits(tmp_path):
    (tmp_path / "s.py").write_text(THREADS)
    (tmp_path / "c.yaml").write_text(CONFIG.format(flush=1).replace("12:00:00", "10:00:05"))
    port = free_port()
    with open(tmp_path / "err.txt", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "connector", "run", "c.yaml",
                                 "--quiet", "--metrics-port", str(port), "--linger", "3"],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 30
    while "summary:" not in (tmp_path / "err.txt").read_text():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
        assert b"connector_events_delivered_total" in page.read()
    assert proc.wait(30) == 0


FORKS = """
import os
n = 0
def produce(params):
    global n
    n += 1
    if n == 2:  # a child that does not exit: it returns into the run with the parent
        if os.fork():
            os.wait()
    return "e%d" % n
"""


def test_a_child_forked_in_produce_never_runs_the_schedule_again(tmp_path):
    (tmp_path / "s.py").write_text(FORKS)
    (tmp_path / "c.yaml").write_text(CONFIG.format(flush=1).replace("12:00:00", "10:00:04"))
    proc = subprocess.run([sys.executable, "-m", "connector", "run", "c.yaml", "--quiet"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.txt").read_text() == "e1\ne2\ne3\ne4\n"  # once each
    assert proc.stderr.count("summary:") == 1, proc.stderr
    assert "a process forked inside produce() returned from it" in proc.stderr


ATEXIT = """
import atexit, sys, time
def record():
    with open("atexit.txt", "w") as f:
        f.write("ran")
atexit.register(record)
if "--hang" in open("hang.flag").read():
    atexit.register(time.sleep, 3600)  # registered last: runs first, and never returns
def produce(params):
    return "x"
"""


@pytest.mark.parametrize("hang", [False, True], ids=["plain", "a-handler-hangs"])
def test_the_scripts_atexit_handlers_run_and_a_hung_one_is_left(tmp_path, hang):
    """os._exit skips atexit: the entry runs the handlers first (a script may flush what it
    recorded there), and a handler that never returns holds the exit ATEXIT_BOUND at most."""
    from connector.ending import ATEXIT_BOUND

    (tmp_path / "s.py").write_text(ATEXIT)
    (tmp_path / "hang.flag").write_text("--hang" if hang else "")
    (tmp_path / "c.yaml").write_text(CONFIG.format(flush=1).replace("12:00:00", "10:00:05"))
    began = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "connector", "run", "c.yaml", "--quiet"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - began
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.txt").read_text() == "x\n" * 5
    if hang:  # the hung handler ran first and was left: the recording one never got its turn
        assert not (tmp_path / "atexit.txt").exists()
        assert took >= ATEXIT_BOUND
    else:
        assert (tmp_path / "atexit.txt").read_text() == "ran"
    assert took < ATEXIT_BOUND + 30
