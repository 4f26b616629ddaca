"""The lock as the tests read it: the pinned uv that scripts/test installs, and what
`uv export` says the lock holds."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.harness.cli import ROOT


def uv() -> str:
    """The pinned uv that scripts/test installed (it exports UV)."""
    version = re.search(r"uv==(\S+)", (ROOT / "scripts/uv-requirements.txt").read_text())[1]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for found in (os.environ.get("UV"), cache / f"connector/uv-{version}/bin/uv"):
        if found and Path(found).exists():
            return str(found)
    pytest.fail(f"uv {version} is missing: run scripts/test, which installs it")


def uv_export(*args: str) -> dict[str, str]:
    """`uv export` of the lock as it is: name -> version, for this machine's markers."""
    export = subprocess.run(
        [uv(), "export", "--frozen", *args, "--no-hashes", "--no-emit-project", "--no-header",
         "--offline"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    locked = {}
    for line in export.splitlines():
        if line and not line.startswith((" ", "#")):
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate():
                locked[canonicalize_name(req.name)] = str(req.specifier).removeprefix("==")
    return locked
