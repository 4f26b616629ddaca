"""What `validate` and `preview` ask the plugins, beside building nothing: warnings about
the run's time window (Kafka judging records by their time), the schemas against the
registry, and whether an event would fit its schema. A plugin answers by having the
function (the protocols below); the others have nothing to say."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from connector.outputs import OUTPUTS
from connector.outputs.base import OutputConfig

if TYPE_CHECKING:
    from connector.config import OutputEntry

__all__ = ["schema_check", "schema_problems", "time_warnings"]

# an event -> None when it fits, else (reason, detail)
EventCheck = Callable[[str], "tuple[str, str | None] | None"]


@runtime_checkable
class WarnsAboutTime(Protocol):
    def warnings(
        self, config: OutputConfig, first: datetime, last: datetime | None
    ) -> list[str]: ...


@runtime_checkable
class HasSchemas(Protocol):
    def schema_problems(self, config: OutputConfig) -> tuple[list[str], list[str]]: ...
    def schema_check(self, config: OutputConfig) -> EventCheck | None: ...


def time_warnings(entry: OutputEntry, first: datetime, last: datetime | None) -> list[str]:
    plugin = OUTPUTS[entry.plugin]
    if not isinstance(plugin, WarnsAboutTime):
        return []
    return plugin.warnings(entry.settings, first, last)


def schema_problems(entry: OutputEntry) -> tuple[list[str], list[str]]:
    """(problems, notes) of the output's schemas against the registry."""
    plugin = OUTPUTS[entry.plugin]
    return plugin.schema_problems(entry.settings) if isinstance(plugin, HasSchemas) else ([], [])


def schema_check(entry: OutputEntry) -> EventCheck | None:
    plugin = OUTPUTS[entry.plugin]
    return plugin.schema_check(entry.settings) if isinstance(plugin, HasSchemas) else None
