"""The YAML loader that bounds a config while it is composed, and the limits it and the
config's interpolation keep (config.py)."""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["MAX_ALIASES", "MAX_BYTES", "MAX_DEPTH", "MAX_VALUES", "LimitedLoader", "YamlLimit"]

# Limits that keep a hostile config from running away with time or memory. Each is named
# in the message when hit; a real config is far below all of them.
MAX_BYTES = 1 << 20  # 1 MiB of file
MAX_DEPTH = 64  # nested maps and lists, counted after aliases are expanded
MAX_ALIASES = 100  # `*name` references
MAX_VALUES = 20_000  # values (maps, lists, scalars), counted after aliases are expanded


class YamlLimit(Exception):
    """A limit hit while the YAML is composed, with where in the file."""

    def __init__(self, problem: str, event: yaml.Event):
        super().__init__(problem)
        self.problem, self.mark = problem, event.start_mark


class LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the nesting depth, alias references and values bounded
    while the document is composed: its composer recurses once per level (20,000 nested
    brackets would end in RecursionError), and each node costs memory."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = self._aliases = self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlLimit(f"more than {MAX_ALIASES} alias references (*name)", event)
            return super().compose_node(parent, index)
        self._nodes += 1
        if self._nodes > MAX_VALUES:
            raise YamlLimit(f"more than {MAX_VALUES:,} values", event)
        nested = isinstance(event, yaml.CollectionStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise YamlLimit(f"nested deeper than {MAX_DEPTH} levels", event)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= nested
