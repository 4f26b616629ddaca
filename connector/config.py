"""YAML -> validated config models, with ${ENV:-default} interpolation.

The shape follows the seed: `input` (a list of one-key plugin maps), `event`
(one `script` map) and `output` (a list of one-key plugin maps). Each plugin's
settings model lives next to its code; this module only assembles them and turns
pydantic's errors into `path.to.key: message` lines.
"""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from connector.events.config import EventConfig
from connector.fields import ConfigPath, Strict, not_a_file
from connector.inputs import INPUTS
from connector.otlp.mapping import DEFAULT_MAPPING, SpanMapping
from connector.outputs import OUTPUTS
from connector.replay.wiring import check as replay_problems
from connector.yaml_limits import MAX_BYTES, MAX_DEPTH, MAX_VALUES, LimitedLoader, YamlLimit

__all__ = ["Config", "ConfigError", "collisions", "load_config", "parse_config"]


class ConfigError(Exception):
    """Invalid configuration: `problems` holds one `path.to.key: message` per problem."""

    def __init__(self, problems: list[str]):
        # keys and values come from the file: no control character reaches the terminal
        problems = [_printable(p) for p in problems]
        super().__init__("\n".join(problems))
        self.problems = problems


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text)


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


class MetricsConfig(Strict):
    host: str = "0.0.0.0"
    port: int = Field(9464, ge=0, le=65535, description="0 disables the HTTP server")
    stall_after: float = Field(
        300.0,
        gt=0,
        description="/healthz is 503 after this long without a produce() call "
        "(waits for the clock or for an output do not count)",
    )
    memory_warning: float = Field(
        1024.0,
        ge=0,
        description="MiB: warn once when a process's resident memory passes this (0: never)",
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
    report: ConfigPath | None = Field(
        None, description="write the run's HTML report here when it ends (--report overrides)"
    )
    manifest: ConfigPath | None = Field(
        None, description="record what each output acknowledged here (connector verify)"
    )
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
        """The span field names the outputs use: those of the first output that sends spans
        (an otlp output, or kafka with an otlp encoding, with signal traces). An output of
        logs or metrics, or kafka's raw encoding, says nothing about spans."""
        spans = (e.settings.spans() for e in self.output)
        return next((m for m in spans if m is not None), DEFAULT_MAPPING)

    def written_files(self) -> list[tuple[str, Path]]:
        """(key, path) of every file the outputs write: file outputs' paths, dead letters."""
        files = []
        for n, entry in enumerate(self.output):
            settings, key = entry.settings, f"output[{n}].{entry.plugin}"
            if entry.plugin == "file":
                files.append((f"{key}.path", settings.path))
            if settings.dead_letter is not None:
                files.append((f"{key}.dead_letter", settings.dead_letter))
        return files

    def input_names(self) -> list[str]:
        return [e.name or f"{e.plugin}-{i}" for i, e in enumerate(self.input)]

    def output_names(self) -> list[str]:
        return [e.name or f"{e.plugin}-{i}" for i, e in enumerate(self.output)]


_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


class _TooBig(Exception):
    """A limit was hit: the message names it."""


def _short(path: str) -> str:
    return (path[:80] + "...") if len(path) > 80 else path or "(top level)"


@dataclass
class _Interpolator:
    """Replaces ${VAR} in every string. PyYAML shares an aliased node between its uses,
    so this walk is where an alias bomb would expand: it counts what it visits."""

    missing: list[str]
    values: int = 0

    def __call__(self, value: Any, path: str, depth: int = 0) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise _TooBig(
                f"{_short(path)}: the config expands to more than {MAX_VALUES:,} "
                "values (aliases count each time they are used)"
            )
        if isinstance(value, str):
            return _ENV.sub(lambda m: self._one(m, path), value)
        if isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise _TooBig(
                    f"{_short(path)}: nested deeper than {MAX_DEPTH} levels (aliases expanded)"
                )
            if isinstance(value, dict):
                return {
                    k: self(v, f"{path}.{k}" if path else str(k), depth + 1)
                    for k, v in value.items()
                }
            return [self(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
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


def _same_file(path: Path) -> tuple:
    """What two paths must share to be one file: the inode when it exists (hard links and
    symbolic links included), else the path with its folders' links resolved."""
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        try:
            return ("path", str(path.resolve()))
        except (OSError, RuntimeError):  # a loop of links: compared as written
            return ("path", os.path.abspath(path))
    return ("inode", found.st_dev, found.st_ino)


def collisions(files: list[tuple[str, Path]]) -> list[str]:
    """One problem per file that two of `files` ((key, path) pairs) would both write:
    their lines would interleave in it. A file output that is a FIFO or a device (a
    reader on the other end, /dev/null) may be shared: nothing is kept there."""
    seen: dict[tuple, str] = {}
    problems = []
    for key, path in files:
        same = _same_file(path)
        if same in seen and not _shareable(path):
            problems.append(
                f"{key}: {path} is also {seen[same]}; two writers would interleave their "
                "lines in one file (give each its own path)"
            )
        seen.setdefault(same, key)
    return problems


def _shareable(path: Path) -> bool:
    kind = not_a_file(path)
    return kind is not None and kind != "a directory"


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
    try:
        data = interpolate(raw, "")
    except _TooBig as exc:
        raise ConfigError([str(exc)]) from None
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
    if problems := collisions(config.written_files()):
        raise ConfigError(problems)
    if problems := replay_problems(config):
        raise ConfigError(problems)
    return config


# YAML reads UTF-8, and UTF-16 or UTF-32 when a byte order mark says so. UTF-32's marks
# start with UTF-16's, so they are tried first.
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32-LE"),
    (codecs.BOM_UTF32_BE, "UTF-32-BE"),
    (codecs.BOM_UTF8, "UTF-8"),
    (codecs.BOM_UTF16_LE, "UTF-16-LE"),
    (codecs.BOM_UTF16_BE, "UTF-16-BE"),
)


def _read(path: Path) -> str:
    """The config file's text; ConfigError for anything that is not a readable, decodable
    file of at most MAX_BYTES."""
    try:
        # Opened without blocking, then checked: a FIFO without a writer, a device or a
        # socket would hang the read or never end it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if (kind := not_a_file(fd)) is not None:
                raise ConfigError([f"{path}: cannot read config: it is {kind}, not a file"])
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        if (kind := not_a_file(path)) is not None:  # a directory: open() said EISDIR
            raise ConfigError([f"{path}: cannot read config: it is {kind}, not a file"]) from None
        raise ConfigError([f"{path}: cannot read config: {exc.strerror or exc}"]) from None
    except ValueError as exc:  # a NUL in the path
        raise ConfigError([f"{path}: cannot read config: {exc}"]) from None
    if len(data) > MAX_BYTES:
        raise ConfigError([f"{path}: config file is larger than {MAX_BYTES // (1 << 20)} MiB"])
    skip, encoding = next(
        ((len(bom), name) for bom, name in _BOMS if data.startswith(bom)), (0, "UTF-8")
    )
    try:
        return data[skip:].decode(encoding)
    except UnicodeDecodeError as exc:
        offset = skip + exc.start
        raise ConfigError(
            [
                f"{path}: cannot read config: not {encoding} at byte offset {offset} "
                f"({exc.reason}, byte 0x{data[offset]:02x}); write the file as UTF-8 "
                "(UTF-16 and UTF-32 need a byte order mark)"
            ]
        ) from None


def load_config(path: str | Path) -> Config:
    path = Path(path)
    text = _read(path)
    try:
        raw = yaml.load(text, Loader=LimitedLoader)  # a SafeLoader: builds plain values only
    except YamlLimit as exc:
        where = f"{path}:{exc.mark.line + 1}:{exc.mark.column + 1}"
        raise ConfigError([f"{where}: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        said = [getattr(exc, "context", None), getattr(exc, "problem", None)]
        problem = "; ".join(filter(None, said)) or " ".join(str(exc).split())
        raise ConfigError([f"{where}: invalid YAML: {problem}"]) from None
    except (ValueError, OverflowError) as exc:
        # PyYAML's constructors let some values through unchecked: a 2026-99-99 date,
        # an integer of more digits than Python converts.
        raise ConfigError([f"{path}: invalid YAML value: {str(exc).split(';')[0]}"]) from None
    except Exception:  # `!!timestamp x` ends in an AttributeError inside PyYAML
        raise ConfigError(
            [f"{path}: invalid YAML value: a tagged value (like !!timestamp) it cannot read"]
        ) from None
    return parse_config(raw, path.parent, source=path)
