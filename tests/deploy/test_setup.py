"""A fresh machine: the lock is the install, prerequisites are checked before anything,
and a cold build shows that it is alive."""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from tests.harness.lock import uv, uv_export

ROOT = Path(__file__).resolve().parents[2]


def test_lock_is_current_with_pyproject():
    done = subprocess.run([uv(), "lock", "--check", "--offline"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"uv.lock is stale; refresh it with scripts/lock\n{done.stderr}"


def test_the_test_environment_is_exactly_the_lock():
    """What pytest runs in holds the lock's runtime and test packages at their locked
    versions and nothing else: nothing was resolved against today's index."""
    assert Path(sys.prefix).resolve() == (ROOT / ".venv").resolve(), (
        f"tests run in {sys.prefix}, not the project's .venv: run them with scripts/test"
    )
    locked = uv_export("--extra", "test")
    installed = {canonicalize_name(d.metadata["Name"]): d.version
                 for d in metadata.distributions(path=sys.path)
                 if Path(d.locate_file("")).resolve().is_relative_to(Path(sys.prefix).resolve())}
    installed.pop("connector", None)
    assert installed == locked


def _bare_path(tmp_path: Path, keep: list[str]) -> str:
    """A PATH holding only the named tools (symlinks), to play a machine that lacks the rest."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in keep:  # python3 may be a pyenv shim: link the real interpreter
        found = os.path.realpath(sys.executable) if tool == "python3" else shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


BASICS = ["bash", "env", "dirname", "basename", "cat", "id", "sed", "awk", "printf", "rm",
          "python3"]


def test_missing_prerequisites_are_named_before_anything_is_installed(tmp_path):
    java = tmp_path / "fake-java"
    java.write_text('#!/bin/sh\necho "    java.specification.version = 11" >&2\n')
    java.chmod(0o755)
    path = _bare_path(tmp_path, BASICS)
    (Path(path) / "java").symlink_to(java)
    cache = tmp_path / "cache"
    done = subprocess.run(
        [str(ROOT / "scripts/test")], capture_output=True, text=True, timeout=60,
        env={"PATH": path, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(cache)},
    )
    assert done.returncode == 1
    err = done.stderr
    assert "missing prerequisites, nothing was installed" in err
    assert "Java 17 or newer (found Java 11)" in err
    assert "Maven" in err and "apt-get install maven" in err
    assert "Go 1.24 or newer" in err
    assert "cargo" in err and "rustup.rs" in err
    assert "prometheus" in err
    assert not cache.exists(), "nothing was installed before the check"


def test_an_old_go_is_refused(tmp_path):
    go = tmp_path / "go"
    go.write_text("#!/bin/sh\necho go1.22.5\n")
    go.chmod(0o755)
    done = subprocess.run(
        ["bash", "-c", "source scripts/setup.sh; require go"], cwd=ROOT,
        capture_output=True, text=True, timeout=30,
        env={"PATH": f"{tmp_path}:{os.environ['PATH']}"},
    )
    assert done.returncode == 1
    assert "Go 1.24 or newer (found go1.22.5" in done.stderr


def test_a_machine_with_everything_passes_the_check():
    done = subprocess.run(["bash", "-c", "source scripts/setup.sh; require python java maven go cargo"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_a_cold_jaeger_build_says_it_is_alive(capsys, monkeypatch):
    monkeypatch.setenv("LOCAL_JAEGER_HEARTBEAT", "0.2")
    tool = runpy.run_path(str(ROOT / "scripts/local-jaeger"), run_name="local_jaeger")
    import time

    code, output = tool["run_with_heartbeat"](
        ["sh", "-c", "sleep 1; echo done"], str(ROOT), dict(os.environ), time.monotonic()
    )
    assert (code, output.strip()) == (0, "done")
    beats = [line for line in capsys.readouterr().err.splitlines() if "still building" in line]
    assert len(beats) >= 3, beats
    assert beats[-1].startswith("local-jaeger: still building Jaeger (go -c): 0m0")


def test_readme_names_every_prerequisite_and_the_caches():
    readme = (ROOT / "README.md").read_text()
    for needed in ("python3-venv", "Java 17", "Maven", "Go 1.24", "cargo", "prometheus", "apt-get",
                   "1.6 GB", "scripts/lock", "uv.lock"):
        assert needed in readme, needed
