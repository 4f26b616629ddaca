"""How the run is scheduled and reported (a plugin of tests/conftest.py).

Scheduling: a test that uses a private service (a broker or Jaeger of its own, to kill)
joins the pytest-xdist group `private`, meant to run those tests in one worker
(`--dist loadgroup`). pytest 9.2 ignores the group pytest-xdist 3.8 writes into a test's
id, so today each worker starts the private services it needs, on ports of a slice of its
own (connector.testing.free_port). A test that
needs the wall clock says so with the `wallclock` marker.

Reporting: each test belongs to one part of the suite, and the time of each part is printed
at the end of the run (in the controller of a parallel run, from every worker's reports):
- soak: tests/deploy/test_soak.py; fuzz: tests/fuzz/; battery: tests/outputs/test_compliance.py
- faults: tests/faults/, and any test that uses a private service
- services: a test that uses a shared real service (broker, Jaeger, Schema Registry,
  Collector)
- unit: the rest (in-process, or the CLI as a process, no service)
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

PRIVATE = {"private_kafka", "_private_kafka", "private_jaeger", "_private_jaeger",
           "secure_kafka", "retention_kafka"}
SHARED = {"kafka_bootstrap", "kafka_topic", "jaeger", "schema_registry", "schema_registry_url",
          "collector"}
PARTS = ("unit", "battery", "services", "faults", "fuzz", "soak")


def part_of(item: pytest.Item) -> str:
    path = item.nodeid.split("::", 1)[0]
    fixtures = set(getattr(item, "fixturenames", ()))
    if path == "tests/deploy/test_soak.py":
        return "soak"
    if path.startswith("tests/fuzz/"):
        return "fuzz"
    if path == "tests/outputs/test_compliance.py":
        return "battery"
    if path.startswith("tests/faults/") or PRIVATE & fixtures:
        return "faults"
    if SHARED & fixtures:
        return "services"
    return "unit"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "wallclock: the test waits for real time to pass (a live run paced by the "
        "clock, an outage of some seconds, a deadline in seconds); its length is its own")


def pytest_itemcollected(item: pytest.Item) -> None:
    # as each test is collected: xdist reads the groups in its own collection hook, and a
    # marker added in ours (even tryfirst) came too late, so no group was ever formed
    if PRIVATE & set(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.xdist_group("private"))
    item.user_properties.append(("part", part_of(item)))


class _Times:
    def __init__(self) -> None:
        self.started = time.time()
        self.seconds: dict[str, float] = defaultdict(float)
        self.tests: dict[str, set[str]] = defaultdict(set)
        self.span: dict[str, list[float]] = {}


_times = _Times()


def pytest_sessionstart(session: pytest.Session) -> None:
    _times.started = time.time()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    part = dict(report.user_properties).get("part")
    if part is None:
        return
    _times.seconds[part] += report.duration
    _times.tests[part].add(report.nodeid)
    stop = getattr(report, "stop", None) or time.time()
    start = getattr(report, "start", None) or stop - report.duration
    first, last = _times.span.get(part, (start, stop))
    _times.span[part] = [min(first, start), max(last, stop)]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not _times.tests:
        return  # a worker of a parallel run: the controller reports
    wall = time.time() - _times.started
    workers = getattr(config.option, "numprocesses", None) or 1
    tr = terminalreporter
    tr.section("time per part")
    tr.line(f"{'part':<10}{'tests':>7}{'test time':>12}{'span':>10}   "
            f"(test time: summed over {workers} worker(s); span: first start to last end)")
    for part in sorted(_times.tests, key=lambda p: PARTS.index(p) if p in PARTS else 99):
        first, last = _times.span[part]
        tr.line(f"{part:<10}{len(_times.tests[part]):>7}{_minutes(_times.seconds[part]):>12}"
                f"{_minutes(last - first):>10}")
    total = sum(_times.seconds.values())
    tr.line(f"{'all':<10}{sum(map(len, _times.tests.values())):>7}{_minutes(total):>12}"
            f"{_minutes(wall):>10}   (the run's wall time)")


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"
