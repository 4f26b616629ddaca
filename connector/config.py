"""YAML -> validated config models, with ${ENV:-default} interpolation.

The shape follows the seed: `input` (a list of one-key plugin maps), `event`
(one `script` map) and `output` (a list of one-key plugin maps). Each plugin's
settings model lives next to its code; this module only assembles them and turns
pydantic's errors into `path.to.key: message` lines.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError, create_model, field_validator, model_validator

from connector.events.script import ScriptConfig
from connector.fields import Strict
from connector.inputs import INPUTS
from connector.outputs import OUTPUTS
from connector.spans import DEFAULT_MAPPING, SpanMapping

__all__ = ["Config", "ConfigError", "load_config", "parse_config"]


class ConfigError(Exception):
    """Invalid configuration: `problems` holds one `path.to.key: message` per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _one_plugin(kind: str, registry: dict[str, Any]) -> type[Strict]:
    """A model for one item of `input:` or `output:`: exactly one registered plugin key."""
    names = ", ".join(registry)

    class Entry(Strict):
        name: str | None = None

        @model_validator(mode="before")
        @classmethod
        def _exactly_one(cls, data: Any) -> Any:
            if not isinstance(data, dict):
                raise ValueError(f"expected a map with one {kind} plugin ({names})")
            if None in data and "null" in registry:  # YAML reads a bare `null:` key as None
                data = {("null" if k is None else k): v for k, v in data.items()}
            given = [key for key in data if key != "name"]
            unknown = [key for key in given if key not in registry]
            if unknown:
                raise ValueError(f"unknown {kind} plugin '{unknown[0]}'; expected one of: {names}")
            if len(given) != 1:
                raise ValueError(f"expected exactly one {kind} plugin ({names}), got {len(given)}")
            if data[given[0]] is None:  # `- stdout:` with nothing under it means defaults
                data = {**data, given[0]: {}}
            return data

        @property
        def plugin(self) -> str:
            return next(key for key in registry if getattr(self, key) is not None)

        @property
        def settings(self) -> Any:
            return getattr(self, self.plugin)

    fields = {name: (plugin.Config | None, None) for name, plugin in registry.items()}
    return create_model(f"{kind.capitalize()}Entry", __base__=Entry, **fields)


InputEntry = _one_plugin("input", INPUTS)
OutputEntry = _one_plugin("output", OUTPUTS)


class EventConfig(Strict):
    script: ScriptConfig


class MetricsConfig(Strict):
    host: str = "0.0.0.0"
    port: int = Field(9464, ge=0, le=65535, description="0 disables the HTTP server")
    stall_after: float = Field(
        300.0,
        gt=0,
        description="/healthz is 503 after this long without a produce() call "
        "(waits for the clock or for an output do not count)",
    )


class Config(Strict):
    input: list[InputEntry] = Field(min_length=1)  # type: ignore[valid-type]
    event: EventConfig
    output: list[OutputEntry] = Field(  # type: ignore[valid-type]
        default_factory=lambda: [OutputEntry(stdout={})], min_length=1
    )
    name: str | None = Field(None, description="names this config in metrics (connector_info)")
    timezone: str = "UTC"
    mode: Literal["live", "backfill"] = "live"
    metrics: MetricsConfig = MetricsConfig()
    check_traces: bool = False
    source: Path | None = Field(None, exclude=True)  # the file it was read from

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone '{value}' (use an IANA name like 'Europe/Berlin')"
            ) from None
        return value

    @property
    def tz(self) -> tzinfo:
        # datetime's own UTC: the cheapest aware arithmetic for the common case.
        return UTC if self.timezone in ("UTC", "Etc/UTC") else ZoneInfo(self.timezone)

    def span_mapping(self) -> SpanMapping:
        """The span field names the outputs use (an otlp output's, or kafka's otlp encoding)."""
        return next(
            (e.settings.mapping for e in self.output if getattr(e.settings, "mapping", None)),
            DEFAULT_MAPPING,
        )

    def input_names(self) -> list[str]:
        return [e.name or f"{e.plugin}-{i}" for i, e in enumerate(self.input)]

    def output_names(self) -> list[str]:
        return [e.name or f"{e.plugin}-{i}" for i, e in enumerate(self.output)]


_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


@dataclass
class _Interpolator:
    missing: list[str]

    def __call__(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            return _ENV.sub(lambda m: self._one(m, path), value)
        if isinstance(value, dict):
            return {k: self(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    def _one(self, m: re.Match, path: str) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, default = m.groups()
        value = os.environ.get(name)
        if value is None or (value == "" and op == ":-"):
            if default is not None:
                return default
            self.missing.append(f"{path}: environment variable '{name}' is not set")
            return ""
        return value


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before", "function-wrap") or "[" in str(part):
            continue  # pydantic's internal validator steps, not user keys
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _message(err: dict) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def parse_config(raw: Any, base_dir: Path, source: Path | None = None) -> Config:
    """Validate an already-parsed YAML document; relative paths resolve against base_dir."""
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): expected a map with input, event and output"])
    interpolate = _Interpolator(missing=[])
    data = interpolate(raw, "")
    try:
        config = Config.model_validate(
            {**data, "source": source}, context={"base_dir": base_dir.resolve()}
        )
    except ValidationError as exc:
        problems = [f"{_loc(e['loc'])}: {_message(e)}" for e in exc.errors()]
        # An unset variable already explains any complaint about the value it left empty.
        unset = {m.split(": ", 1)[0] for m in interpolate.missing}
        problems = [p for p in problems if p.split(": ", 1)[0] not in unset]
        raise ConfigError(interpolate.missing + problems) from None
    if interpolate.missing:
        raise ConfigError(interpolate.missing)
    return config


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config: {exc.strerror or exc}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: invalid YAML: {problem}"]) from None
    return parse_config(raw, path.parent, source=path)
