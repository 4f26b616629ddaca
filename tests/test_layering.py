"""The import graph of `connector/`, read from the source with `ast`: no circle among its
modules, and the OTLP library (`connector/otlp/`) never reaches up into the outputs that use
it. Every import counts, also those inside functions and under TYPE_CHECKING: a circle a
lazy import hides is still one."""

from __future__ import annotations

import ast
from pathlib import Path

# the repository: the first folder up that holds the package (wherever tests/ puts this)
ROOT = next(
    p for p in Path(__file__).resolve().parents if (p / "connector" / "__init__.py").is_file()
)
PACKAGE = ROOT / "connector"


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package (a package is its __init__)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The connector modules `name` imports. `from a.b import c` names a.b.c when that is a
    module, else a.b; a parent package is not counted for its submodule (Python runs it
    first, but a package that imports its own modules is not a circle)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                whole = f"{base}.{alias.name}"
                found.add(whole if whole in known else base)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_reader_sees_the_imports_it_should():
    edges = graph()
    assert "connector.outputs.base" in edges["connector.outputs.file"]
    assert "connector.otlp.mapping" in edges["connector.otlp.signals"]


def test_no_import_circle_in_connector():
    assert circles(graph()) == []


def test_the_otlp_library_imports_no_output():
    reaching_up = {
        (name, target)
        for name, targets in graph().items()
        if name.startswith("connector.otlp")
        for target in targets
        if target == "connector.outputs" or target.startswith("connector.outputs.")
    }
    assert reaching_up == set()
