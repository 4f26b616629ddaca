"""Scripts that misbehave without raising, generated: sleeps and hangs at random calls,
threads (daemon or not), os._exit, signal handlers, sys.exit, KeyboardInterrupt, forks,
huge, empty and odd returns (subclasses of str and list included), a list changed after
its return, writes to stdout and stderr. Each drawn script runs as `connector run` in its
own process, bounded in CPU time and address space, into a file output; a script that
hangs is sent SIGTERM (sometimes twice) once it is inside the hang.

Whatever the script does, the run keeps the invariants of issue 22:
- it stops in bounded time: by itself, or within flush_timeout and a small bound of the
  SIGTERM (at once after a second one);
- exit 0, 1 or 2 (0 exactly when every call returned its events), no traceback, and a
  summary, unless the script itself ended the process (os._exit: then its code);
- the accounts are true: timestamps, events produced and delivered, script errors by
  kind, and the file holds exactly the events of the calls, in order, as returned.
"""

from __future__ import annotations

import os
import pickle
import re
import resource
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from tests.harness.hypothesis_profiles import budget

CPU_SECONDS = 60  # per run: a script spinning for ever is stopped by the kernel at most
ADDRESS_SPACE = 3 << 30  # bytes: a runaway allocation fails inside the script
FLUSH = 1.0  # the outputs' flush_timeout: the hung call's grace too
BOUND = 4.0  # seconds past flush_timeout a run stopping on SIGTERM may take (exit included)

# -- behaviours: what one produce() call does (plain data, pickled into the script) ---------
#   ("return", kind)            one of RETURNS (events depend on the call's number)
#   ("mutate",)                 return a list it keeps, changed by the next call
#   ("sleep", seconds)          sleep, then return one event
#   ("hang", how)               never return: sleep, socket, busy, event, swallow-once
#   ("raise", kind)             ValueError, SystemExit, KeyboardInterrupt
#   ("exit", code)              os._exit(code)
#   ("thread", daemon)          start a thread that never ends, then return one event
#   ("fork", child)             fork; the child returns or os._exit(0)s; the parent waits
#   ("signal", which)           change a signal's handler (and use it), then return
#   ("write", where)            print to stdout or stderr (or os.write), then return

RETURNS = ["str", "list", "empty", "empty-list", "str-sub", "list-sub", "list-of-subs",
           "huge", "bytes", "none", "tuple", "gen", "list-with-int"]
BAD = {"bytes", "none", "tuple", "gen", "list-with-int"}
HANGS = ["sleep", "socket", "busy", "event", "swallow-once"]
SIGNALS = ["usr1", "hup-ignored", "alarm"]

behaviour = st.one_of(
    st.tuples(st.just("return"), st.sampled_from(RETURNS)),
    st.tuples(st.just("return"), st.sampled_from(["str", "list", "str-sub", "list-sub"])),
    st.tuples(st.just("mutate")),
    st.tuples(st.just("sleep"), st.sampled_from([0.01, 0.1])),
    st.tuples(st.just("raise"), st.sampled_from(["ValueError", "SystemExit",
                                                 "KeyboardInterrupt"])),
    st.tuples(st.just("thread"), st.booleans()),
    st.tuples(st.just("fork"), st.sampled_from(["return", "exit"])),
    st.tuples(st.just("signal"), st.sampled_from(SIGNALS)),
    st.tuples(st.just("write"), st.sampled_from(["stdout", "stderr", "fd1", "fd2"])),
)
rare = st.one_of(st.tuples(st.just("hang"), st.sampled_from(HANGS)),
                 st.tuples(st.just("exit"), st.just(3)))

SCRIPT = textwrap.dedent('''
    import os, pickle, signal, socket, sys, threading, time

    BEHAVIOURS = pickle.loads({blob!r})
    calls = 0
    kept = []


    class Text(str):
        def __str__(self):
            return "not me"


    class Events(list):
        def __iter__(self):
            return iter(["not me"])


    def forever():
        while True:
            time.sleep(0.05)


    def events(kind, n):
        e = "e%d" % n
        return {{
            "str": lambda: e, "list": lambda: [e + "a", e + "b"], "empty": lambda: "",
            "empty-list": lambda: [], "str-sub": lambda: Text(e),
            "list-sub": lambda: Events([e + "a", e + "b"]),
            "list-of-subs": lambda: [Text(e + "a"), e + "b"],
            "huge": lambda: e + "h" * (5 << 20), "bytes": lambda: e.encode(),
            "none": lambda: None, "tuple": lambda: (e,), "gen": lambda: (x for x in [e]),
            "list-with-int": lambda: [e, 1],
        }}[kind]()


    def hang(how):
        open("inside", "w").close()
        if how == "sleep":
            time.sleep(3600)
        elif how == "socket":
            pair = socket.socketpair()
            pair[0].recv(1)
        elif how == "busy":
            while True:
                pass
        elif how == "event":
            threading.Event().wait()
        else:  # keeps the first interruption, then sleeps on
            try:
                time.sleep(3600)
            except BaseException:
                time.sleep(3600)


    def produce(params):
        global calls
        calls += 1
        b = BEHAVIOURS[(calls - 1) % len(BEHAVIOURS)]
        kind, arg = b[0], (b[1] if len(b) > 1 else None)
        if kind == "return":
            return events(arg, calls)
        if kind == "mutate":
            kept.clear()
            kept.extend(["e%dm" % calls, "e%dn" % calls])
            return kept
        if kind == "sleep":
            time.sleep(arg)
        elif kind == "hang":
            hang(arg)
        elif kind == "raise":
            raise {{"ValueError": ValueError, "SystemExit": SystemExit,
                    "KeyboardInterrupt": KeyboardInterrupt}}[arg]("drawn")
        elif kind == "exit":
            os._exit(arg)
        elif kind == "thread":
            threading.Thread(target=forever, daemon=arg).start()
        elif kind == "fork":
            pid = os.fork()
            if pid == 0 and arg == "exit":
                os._exit(0)
            if pid:
                os.waitpid(pid, 0)
        elif kind == "signal":
            if arg == "usr1":
                signal.signal(signal.SIGUSR1, lambda *a: None)
                os.kill(os.getpid(), signal.SIGUSR1)
            elif arg == "hup-ignored":
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
            else:  # the script's own alarm, as a timeout helper would set one
                signal.signal(signal.SIGALRM, lambda *a: None)
                signal.setitimer(signal.ITIMER_REAL, 0.01)
        elif kind == "write":
            {{"stdout": lambda: print("noise", flush=True),
              "stderr": lambda: print("noise", file=sys.stderr, flush=True),
              "fd1": lambda: os.write(1, b"raw noise\\n"),
              "fd2": lambda: os.write(2, b"raw noise\\n")}}[arg]()
        return "e%d" % calls
''')

CONFIG = """\
mode: backfill
metrics: {{port: 0}}
input:
  - cron: {{expression: "* * * * * *", start: "2026-02-20T10:00:00+00:00",
           end: "2026-02-20T10:{minutes:02d}:{seconds:02d}+00:00"}}
event:
  script: {{path: s.py}}
output:
  - file: {{path: out.txt, mode: overwrite, dead_letter: dead.jsonl, flush_timeout: {flush}}}
"""


# -- what must happen -----------------------------------------------------------------------

@dataclass
class Expected:
    events: list[str]
    errors: Counter
    calls: int  # produce() calls the summary counts (timestamps)
    hang: str | None = None  # the call never returns: the test signals the run
    exit: int | None = None  # the script ends the process itself
    interrupted: bool = False  # KeyboardInterrupt from produce(): the run stops there


def returned(kind: str, n: int) -> list[str] | None:
    e = f"e{n}"
    if kind in BAD:
        return None
    return {"str": [e], "list": [e + "a", e + "b"], "empty": [""], "empty-list": [],
            "str-sub": [e], "list-sub": [e + "a", e + "b"], "list-of-subs": [e + "a", e + "b"],
            "huge": [e + "h" * (5 << 20)]}[kind]


def expected(bs: list[tuple], calls: int) -> Expected:
    out = Expected([], Counter(), 0)
    for n in range(1, calls + 1):
        b = bs[(n - 1) % len(bs)]
        out.calls = n
        if b[0] == "return":
            got = returned(b[1], n)
            if got is None:
                out.errors["bad_return_type"] += 1
            else:
                out.events += got
        elif b[0] == "mutate":
            out.events += [f"e{n}m", f"e{n}n"]  # as at its return, whatever came next
        elif b[0] == "hang":
            out.hang = b[1]
            return out
        elif b[0] == "raise":
            if b[1] == "KeyboardInterrupt":
                out.interrupted = True
                return out
            out.errors[b[1]] += 1
        elif b[0] == "exit":
            out.exit = b[1]
            return out
        else:
            out.events.append(f"e{n}")
    return out


# -- running it -----------------------------------------------------------------------------

def bounded() -> None:
    """In the child: limits that end a runaway script, whatever it draws."""
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


@dataclass
class Ran:
    code: int
    err: str
    seconds_after_signal: float | None
    out: str


def run(folder: Path, bs: list[tuple], calls: int, second_signal: bool) -> Ran:
    (folder / "s.py").write_text(SCRIPT.format(blob=pickle.dumps(bs)))
    (folder / "c.yaml").write_text(CONFIG.format(minutes=calls // 60, seconds=calls % 60,
                                                 flush=FLUSH))
    with open(folder / "err.txt", "wb") as err, open(folder / "stdout.txt", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "connector", "run", "c.yaml", "--quiet"], cwd=folder,
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, preexec_fn=bounded,
            start_new_session=True,
        )
    signalled = None
    try:
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            if (folder / "inside").exists() and signalled is None:
                time.sleep(0.2)
                signalled = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                if second_signal:
                    time.sleep(0.3)
                    proc.send_signal(signal.SIGTERM)
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError("the run did not end: " + (folder / "err.txt").read_text())
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    after = None if signalled is None else time.monotonic() - signalled
    return Ran(proc.returncode, (folder / "err.txt").read_text(errors="replace"), after,
               (folder / "out.txt").read_text() if (folder / "out.txt").exists() else "")


def summary(err: str) -> dict:
    s: dict = {"printed": "summary: " in err, "errors": Counter()}
    if m := re.search(r"^summary: (.*) after", err, re.M):
        s["reason"] = m[1]
    for pattern, key in ((r"^  timestamps: (\d+)", "timestamps"),
                         (r"^  events produced: (\d+)", "produced"),
                         (r"^  output file-0: delivered (\d+)", "delivered"),
                         (r"^  output file-0: delivered \d+, failed (\d+)", "failed")):
        if m := re.search(pattern, err, re.M):
            s[key] = int(m[1])
    if m := re.search(r"^  script errors: \d+(.*)$", err, re.M):
        for part in filter(None, m[1].split(", ")):
            name, n = part.rsplit(": ", 1)
            s["errors"][name] = int(n)
    return s


def check(ran: Ran, want: Expected, second_signal: bool) -> None:
    err = ran.err[-4000:]
    assert "Traceback" not in ran.err, err
    if want.exit is not None:  # the script ended the process itself: its code, nothing else
        assert ran.code == want.exit, (ran.code, err)
        return
    assert ran.code in (0, 1, 2), (ran.code, err)
    s = summary(ran.err)
    assert s["printed"], f"no summary: {err}"
    errors = Counter(want.errors)
    if want.hang is not None:
        assert ran.seconds_after_signal is not None, f"never reached its hang: {err}"
        limit = BOUND if second_signal else FLUSH + BOUND
        assert ran.seconds_after_signal <= limit, (ran.seconds_after_signal, err)
        if not second_signal:
            errors["did_not_return"] += 1
            assert s["reason"].startswith("stopped: produce() did not return (s.py:"), err
    assert s["timestamps"] == want.calls, (s["timestamps"], want.calls, err)
    assert s["errors"] == errors, (s["errors"], errors, err)
    assert s["produced"] == len(want.events), (s["produced"], len(want.events), err)
    assert s["delivered"] == len(want.events) and s["failed"] == 0, err
    assert ran.out.split("\n")[:-1] == want.events, "the file holds other events"
    clean = not errors and want.hang is None and not want.interrupted
    assert ran.code == (0 if clean else 1), (ran.code, errors, err)


# -- the property ---------------------------------------------------------------------------

# Defects the generator found, each kept as an explicit example:
# (behaviours, calls, second signal)
FOUND = [
    ([("return", "str-sub"), ("return", "list-of-subs")], 3, False),  # dropped as bad returns
    ([("thread", False)], 2, False),  # the process never exited after its summary
    ([("return", "str"), ("hang", "sleep")], 4, False),  # SIGTERM was ignored for ever
    ([("return", "list"), ("hang", "socket")], 3, True),  # a second signal, at once
    ([("fork", "return"), ("return", "str")], 3, False),  # the child ran the schedule again
    ([("mutate",), ("mutate",)], 3, False),
    ([("hang", "swallow-once")], 1, False),  # a call that keeps the first interruption
    ([("signal", "alarm"), ("hang", "busy")], 2, False),  # the script's own SIGALRM
    ([("write", "fd2"), ("raise", "KeyboardInterrupt"), ("return", "str")], 3, False),
    ([("return", "str"), ("exit", 3)], 3, False),
]


def found(test):
    for args in reversed(FOUND):
        test = example(*args)(test)
    return test


@budget(6)
@given(
    st.lists(behaviour, min_size=1, max_size=4).flatmap(
        lambda bs: st.one_of(st.just(bs), rare.map(lambda r: [*bs, r]))),
    st.integers(1, 6),
    st.booleans(),
)
@found
def test_a_misbehaving_script_never_breaks_the_run(tmp_path_factory, bs, calls, second):
    folder = tmp_path_factory.mktemp("script")
    want = expected(bs, calls)
    ran = run(folder, bs, calls, second and want.hang is not None)
    check(ran, want, second and want.hang is not None)
