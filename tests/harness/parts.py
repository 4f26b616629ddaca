"""How the run is scheduled: a test that uses a private service (a broker or Jaeger of its
own, to kill) joins the pytest-xdist group `private`, so a parallel run (`--dist loadgroup`)
starts each private service once, in one worker, and those tests never hurt each other."""

from __future__ import annotations

import pytest

PRIVATE = {"private_kafka", "_private_kafka", "private_jaeger", "_private_jaeger"}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PRIVATE & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("private"))
