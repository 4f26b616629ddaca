"""Shared pieces of the fuzz properties: strategies for hostile values, and two ways to run
the real CLI with its time and peak memory measured.

`run_forked` forks this (already imported) test process and calls `connector.cli.main` in
the child with fresh stdout/stderr files: the same code path as `python -m connector`
without a second interpreter start (about 1 s here), which is what lets the CI profile try
hundreds of inputs. `run_subprocess` is the real `python -m connector`, for the few
examples that must also prove the entry point and for anything that uses librdkafka
(forking a process whose Kafka clients run threads is not safe).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from tests.harness.accounts import check_accounts
from tests.harness.kafka import read_topic, topics
from tests.harness.summary import Summary

ROOT = Path(__file__).resolve().parents[2]

# -- running the CLI ------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    out: bytes
    err: str
    seconds: float
    peak_mib: float  # peak resident memory the run added (forked: above the parent's)
    killed: bool = False
    cpu_seconds: float = 0.0  # user + system: what "fast" means on a loaded machine

    @property
    def traceback(self) -> bool:
        return "Traceback" in self.err

    def summary(self) -> Summary:
        return Summary.parse(self.err)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _wait(
    pid: int, started: float, timeout: float, group: bool = False
) -> tuple[int, float, bool, float]:
    """wait4 the child: (exit code, its peak RSS in MiB, killed for running too long, its
    CPU seconds)."""
    killed = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - started > timeout:
            (os.killpg if group else os.kill)(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            killed = True
            break
        time.sleep(0.005)
    cpu = usage.ru_utime + usage.ru_stime
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024, killed, cpu


def run_forked(argv: list[str], cwd: Path, timeout: float = 60) -> Run:
    """`connector *argv` in a forked child of this process (see the module's docstring).
    While another Python thread runs here (a fixture's server...), a fork could copy a lock
    that thread holds: then the real entry point is used instead."""
    if threading.active_count() > 1:
        return run_subprocess(argv, cwd, timeout)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        base = _rss_mib()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                os.chdir(cwd)
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                # as the interpreter sets them up when stdout/stderr are files
                sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
                sys.stderr = open(  # noqa: SIM115
                    2, "w", buffering=1, encoding="utf-8", errors="backslashreplace",
                    closefd=False,
                )
                sys.stdin = open(0, closefd=False)  # noqa: SIM115
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                code = _child_main(argv)
            except BaseException:  # the harness itself broke: say so where the test looks
                import traceback

                os.write(2, f"fuzz harness: {traceback.format_exc()}".encode())
            finally:
                os._exit(code)
        code, peak, killed, cpu = _wait(pid, started, timeout)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        return Run(code, out.read(), err.read().decode("utf-8", "replace"), seconds,
                   max(0.0, peak - base), killed, cpu)


def _child_main(argv: list[str]) -> int:
    """What `python -m connector` does around main(): SystemExit, an uncaught exception's
    traceback, flushing stdout and logging at exit."""
    import logging
    import traceback

    from connector.cli import main

    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    try:
        logging.shutdown()
        sys.stdout.flush()
    except Exception:
        traceback.print_exc()
        code = 120  # as the interpreter does when flushing stdout at exit fails
    sys.stderr.flush()
    return code


# A child forked from a large test process counts that process's pages in its peak RSS
# until it execs (Linux keeps the high-water mark across exec). So a small launcher
# (python -S) forks and execs the command and reports the command's own peak, in KiB.
_LAUNCH = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execv(sys.argv[2], sys.argv[2:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def measured(cmd: list[str], peak_file: Path) -> list[str]:
    """`cmd` run through the launcher; its own peak RSS lands in `peak_file` (KiB)."""
    return [sys.executable, "-S", "-c", _LAUNCH, str(peak_file), *cmd]


def peak_of(peak_file: Path) -> float:
    """MiB, from measured()'s file (0 when the command was killed before it could say)."""
    try:
        return int(peak_file.read_text()) / 1024
    except (OSError, ValueError):
        return 0.0


def run_subprocess(argv: list[str], cwd: Path, timeout: float = 60,
                   env: dict | None = None) -> Run:
    """The real `python -m connector *argv`, its own peak memory measured."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryDirectory() as scratch:
        started = time.monotonic()
        peak_file = Path(scratch) / "peak"
        proc = subprocess.Popen(
            measured([sys.executable, "-m", "connector", *argv], peak_file),
            stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd, env=env,
            start_new_session=True,
        )
        code, _, killed, cpu = _wait(proc.pid, started, timeout, group=True)
        peak = peak_of(peak_file)
        proc.returncode = code
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        return Run(code, out.read(), err.read().decode("utf-8", "replace"), seconds, peak,
                   killed, cpu)


def check_run(run: Run, events: list[str], dead: list) -> tuple[int, int, Counter]:
    """The invariants every run of write_run's config keeps (exit 0 or 1 and true, no
    traceback, the summary printed, the accounts of output `o` exact, its reasons bounded);
    `dead` is its dead letter (records or values). (delivered, failed, reasons) of `o`."""
    err = run.err[-5000:]
    assert not run.killed, err
    assert run.code in (0, 1), (run.code, err)
    assert not run.traceback, err
    s = run.summary()
    assert s.printed, err
    assert s.produced == len(events), err
    o = check_accounts(s, "o", dead=dead)
    # bounded: a reason names a field and a rule (the config's fields, not the events'
    # values); a few per template field, plus the output's own
    assert len(o.reasons) <= 16, o.reasons
    assert run.code == (0 if o.failed == 0 and s.script_errors == 0 else 1), (run.code, o, err)
    return o.delivered, o.failed, o.reasons


EVENTS_SCRIPT = "import pickle\nEVENTS = pickle.loads({blob!r})\n\n\ndef produce(params):\n" \
                "    return EVENTS\n"


def write_run(folder: Path, events: list[str], output: str) -> Path:
    """A backfill of one call that returns `events`, into one output `o` (its YAML)."""
    (folder / "produce.py").write_text(EVENTS_SCRIPT.format(blob=pickle.dumps(events)))
    config = folder / "c.yaml"
    config.write_text(
        "mode: backfill\nmetrics: {port: 0}\n"
        "input:\n  - cron:\n      expression: '* * * * * *'\n"
        "      start: '2026-02-20T10:00:00+00:00'\n      end: '2026-02-20T10:00:01+00:00'\n"
        f"event:\n  script:\n    path: produce.py\noutput:\n  - name: o\n    {output}\n"
    )
    return config


def read_topics(bootstrap: str, prefix: str) -> list[tuple]:
    """Every record of every topic named with prefix: (topic, key, headers, value)."""
    names = [t for t in topics(bootstrap) if t.startswith(prefix)]
    return [(m.topic(), m.key(), dict(m.headers() or []), m.value())
            for m in read_topic(bootstrap, names)]


# -- hostile values -------------------------------------------------------------------------

# Characters that have broken text handling before: line breaks of every kind, NUL and
# control characters, tabs, a BOM, bidi controls, non-characters, astral characters and
# lone surrogates (valid in a Python str, not encodable as UTF-8).
ODD_CHARS = (
    "\n", "\r", "\r\n", "\t", "\x00", "\x01", "\x1b", "\x7f", "\x85", "\x0b", "\x0c", "\x1c",
    "\u2028", "\u2029", "\ufeff", "\u202e", "\ufffe", "\uffff", "\U0001f600", "\U0010ffff",
    "\udcff", "\ud800", "\udfff", "é", "ß", "中", " ", "\\", '"', "'", "{", "}", "$", "${",
    "%", "#", ":", "- ", "&a", "*a", "!!", "---", "...",
)

odd_text = st.lists(
    st.one_of(st.sampled_from(ODD_CHARS), st.text(max_size=8)), max_size=12
).map("".join)

# Characters YAML and UTF-8 can carry (no surrogates); for values dumped into YAML.
yaml_text = st.text(
    st.characters(blacklist_categories=("Cs",)), max_size=40
) | st.lists(st.sampled_from([c for c in ODD_CHARS if not 0xD800 <= ord(c[0]) <= 0xDFFF]),
             max_size=6).map("".join)

numbers = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63), 10**30, -(10**30), 65536, 65535]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324]),
)

scalars = st.one_of(st.none(), st.booleans(), numbers, yaml_text)


def yaml_values(max_leaves: int = 6) -> st.SearchStrategy:
    """Anything YAML can hold: scalars, lists and maps of them (keys of any scalar type)."""
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4)
        | st.dictionaries(st.one_of(yaml_text, st.integers(), st.booleans(), st.none()), inner,
                          max_size=4),
        max_leaves=max_leaves,
    )


# -- events ---------------------------------------------------------------------------------

# Span-shaped events with hostile fields, for check_traces and the OTLP mapping.
SPANISH = [
    '{"trace_id": "t", "span_id": "a", "start_time": "2026-02-20T10:00:00Z", '
    '"duration_ms": 1e303}',
    '{"trace_id": "t", "span_id": "b", "parent_span_id": "a", '
    '"start_time": "2026-02-20T10:00:00Z", "duration_ms": 1}',
    '{"trace_id": "t", "span_id": [1]}',
    '{"trace_id": "t", "span_id": "c", "parent_span_id": [null]}',
    '{"trace_id": [], "span_id": "d"}',
    '{"trace_id": "t", "span_id": "e", "parent_span_id": "a", "start_time": 1e300, '
    '"duration_ms": 1}',
]

# Strings an event may be: empty, plain, JSON, odd characters, long.
event_text = st.one_of(
    st.just(""),
    st.text(max_size=30),
    odd_text,
    st.builds(json.dumps, st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5),
                                          max_size=3)),
    st.sampled_from(['{"a": 1}', "{", "[1, 2", "nul\x00l", '{"a": NaN}', "1e99999", "null",
                     '"\\ud800"', "x" * 300]),
    st.sampled_from(SPANISH),
)

# Any JSON value (no surrogates: JSON text is UTF-8).
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**63), 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e303, -1e303, 1e19, 2**64, 2**63, -1, 0, 0.5, -0.0, 1e-300]),
    st.text(max_size=12), odd_text.filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF
                                                          for c in s)),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=6,
)

# A span event the OTLP mapping takes as it is.
VALID_SPAN = {"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331",
              "service": "s", "operation": "o", "start_time": "2026-02-20T10:00:00Z",
              "duration_ms": 5, "status": "OK"}
