"""Read a topology file: bounded YAML, the models, the references; every problem named as
`file:line: path.to.key: message`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from connector.synth.model import Loc, Topology, references
from connector.yaml_limits import MAX_BYTES, LimitedLoader, YamlLimit

__all__ = ["TopologyError", "load_topology", "parse_topology"]


class TopologyError(Exception):
    """The topology cannot be used: `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def load_topology(path: str | Path) -> Topology:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise TopologyError([f"{path}: cannot read topology: {exc.strerror or exc}"]) from None
    if len(data) > MAX_BYTES:
        raise TopologyError([f"{path}: topology file is larger than {MAX_BYTES >> 20} MiB"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TopologyError(
            [f"{path}: not UTF-8 at byte offset {exc.start} (byte 0x{data[exc.start]:02x})"]
        ) from None
    return parse_topology(text, str(path))


def parse_topology(text: str, name: str = "topology") -> Topology:
    """A topology from YAML text; `name` starts every problem line (the file's name)."""
    try:
        node = LimitedLoader(text).get_single_node()
        raw = LimitedLoader(text).get_single_data() if node is not None else None
    except YamlLimit as exc:
        raise TopologyError([f"{name}:{exc.mark.line + 1}: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise TopologyError([f"{where}: invalid YAML: {problem}"]) from None
    except Exception as exc:  # PyYAML's constructors let odd values through (!!timestamp x)
        raise TopologyError([f"{name}: invalid YAML value ({type(exc).__name__})"]) from None
    if not isinstance(raw, dict):
        raise TopologyError([f"{name}:1: expected a map with services and traces"])
    try:
        topology = Topology.model_validate(raw)
    except ValidationError as exc:
        problems = [_line(name, node, e["loc"], _message(e)) for e in exc.errors()]
        raise TopologyError(problems) from None
    problems = [_line(name, node, loc, message) for loc, message in references(topology)]
    if problems:
        raise TopologyError(problems)
    return topology


def _message(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    return err["msg"].removeprefix("Value error, ")


def _keys(loc: tuple) -> list[Any]:
    """pydantic's loc without its own steps (union members, validator names)."""
    out = []
    for part in loc:
        if isinstance(part, str) and (
            part.startswith("function-")
            or "[" in part
            or part in ("spec", "scalar", "str", "int", "float", "bool")
        ):
            continue
        out.append(part)
    return out


def _line(name: str, node: yaml.Node | None, loc: Loc, message: str) -> str:
    """`file:line: path.to.key: message`, the line of the deepest key the YAML has."""
    keys, line = _keys(loc), 1
    path = ""
    for part in keys:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    for part in keys:
        if node is None:
            break
        line = node.start_mark.line + 1
        node = _child(node, part)
        if node is not None:
            line = node.start_mark.line + 1
    return f"{name}:{line}: {path or '(top level)'}: {message}"


def _child(node: yaml.Node, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None
