"""How the run is scheduled: a test that uses a private service (a broker or Jaeger of its
own, to kill) joins the pytest-xdist group `private`, so a parallel run (`--dist loadgroup`)
starts each private service once, in one worker, and those tests never hurt each other.
A test that needs the wall clock says so with the `wallclock` marker."""

from __future__ import annotations

import pytest

PRIVATE = {"private_kafka", "_private_kafka", "private_jaeger", "_private_jaeger"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "wallclock: the test waits for real time to pass (a live run paced by the "
        "clock, an outage of some seconds, a deadline in seconds); its length is its own")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PRIVATE & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("private"))
