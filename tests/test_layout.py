"""The suite's own layout: helpers have one home (tests/harness/), no test module imports
another (nor conftest), tests live in a folder per component, and bench/ stands alone."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.harness.cli import ROOT

TESTS = ROOT / "tests"


def imported(path: Path, source: str | None = None) -> set[str]:
    """Every module an import statement in the file names (relative ones resolved);
    `source` instead of the file's text."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            # `from tests.x import test_y` imports a module too
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def is_test_module(name: str) -> bool:
    return name.startswith("tests.") and (
        name.rsplit(".", 1)[-1].startswith("test_") or name.rsplit(".", 1)[-1] == "conftest"
    )


def test_no_module_under_tests_imports_a_test_module():
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for name in sorted(imported(path))
        if is_test_module(name)
    ]
    assert not offenders, "helpers belong in tests/harness/:\n" + "\n".join(offenders)


def test_the_check_sees_every_form_of_importing_a_test_module():
    where = TESTS / "outputs" / "probe.py"  # read as if it lived in tests/outputs/
    for source in ("from tests.outputs.kafka.test_kafka import x",
                   "import tests.cli.test_cli",
                   "from tests.outputs import test_file",
                   "from .test_when import y",
                   "from tests.conftest import ROOT"):
        names = imported(where, source)
        assert any(is_test_module(n) for n in names), (source, names)
    assert not any(is_test_module(n) for n in imported(where, "from tests.harness import cli"))


def test_helpers_hold_no_tests_and_tests_live_in_component_folders():
    harness = [p.name for p in (TESTS / "harness").glob("test_*.py")]
    assert not harness, f"tests/harness/ is for helpers only: {harness}"
    # the two checks of the code's own shape (tests/, connector/) are the only loose ones
    shape = {"test_layout.py", "test_layering.py"}
    loose = sorted(p.name for p in TESTS.glob("test_*.py") if p.name not in shape)
    assert not loose, f"tests at the top of tests/: put them in a component's folder: {loose}"
    for folder in {p.parent for p in TESTS.rglob("test_*.py")}:
        assert (folder / "__init__.py").exists(), f"{folder}: a package (equal basenames)"


def test_bench_does_not_import_the_tests():
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "bench").rglob("*.py"))
        for name in sorted(imported(path))
        if name == "tests" or name.startswith("tests.")
    ]
    assert not offenders, offenders
