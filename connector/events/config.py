"""`event:`, what makes the events: the seed's `script`, a `topology` (no script), or a
`replay` of recorded traffic (which a script may transform)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from connector.events.script import ScriptConfig
from connector.events.topology import TopologyConfig
from connector.fields import Strict
from connector.replay.config import ReplayConfig

__all__ = ["EventConfig"]

_NO_SCRIPT = object()  # `topology:` given, so no script is needed


class EventConfig(Strict):
    """`script` (the seed's), `topology` (connector/events/topology.py), or `replay`
    (connector/replay/: a recording played again, which a script may transform)."""

    replay: ReplayConfig | None = None
    topology: TopologyConfig | None = None
    script: ScriptConfig | None = Field(None, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _topology_given(cls, data: Any) -> Any:
        if isinstance(data, dict) and "topology" in data:
            for other in ("script", "replay"):
                if other in data:
                    raise ValueError(f"give either {other} or topology, not both")
            return {**data, "script": _NO_SCRIPT}
        return data

    @field_validator("script", mode="before")
    @classmethod
    def _required(cls, value: Any, info: ValidationInfo) -> Any:
        if value is _NO_SCRIPT:
            return None
        # an invalid replay is not in info.data: its own errors say enough
        if value is None and "replay" in info.data and info.data["replay"] is None:
            raise PydanticCustomError("missing", "required key is missing")
        return value
