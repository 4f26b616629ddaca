"""Replay in the run: the config's cross-checks (and the `recorded` input linked to its
recording), and the Script the pipeline calls."""

from __future__ import annotations

from typing import Any

from connector.events.script import Script, ScriptLoadError, load_script
from connector.replay import recorded
from connector.replay.player import Replay, ReplayScript, replay_seed

__all__ = ["SetupError", "check", "replay_script"]

# `config` below is a connector.config.Config, which imports this module: not imported here


class SetupError(Exception):
    """The replay cannot start; `problems` are `key: message` lines (config errors)."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def check(config: Any) -> list[str]:
    """Problems of the config as a whole (`key: message`); links `recorded` inputs."""
    problems = []
    replay = config.event.replay
    paced = [i for i, e in enumerate(config.input) if e.plugin == "recorded"]
    for i in paced:
        settings = config.input[i].settings
        recorded.link(settings, replay, config.tz)
        where = f"input[{i}].recorded"
        if replay is None:
            problems.append(f"{where}: plays the recording of event.replay, which is missing")
        if settings.count != 1:
            problems.append(f"{where}.count: each recorded time is one record: use count 1")
    if paced and len(config.input) > 1:
        problems.append(
            f"input[{paced[0]}].recorded: the recording's own times pace the replay alone; "
            "remove the other inputs (or pace it with rate/cron inputs only)"
        )
    if replay is not None and replay.group_traces and replay.otlp is not None:
        problems.append("event.replay.group_traces: otlp sources group traces already")
    return problems


def replay_script(config: Any) -> Script:
    """The replay (through the user's script when `event.script` is named too)."""
    replay = Replay(config.event.replay, config.tz, replay_seed())
    if problems := replay.source.check():  # a missing topic, a range past the end
        raise SetupError(problems)
    user = config.event.script
    if user is None:
        # the config file stands for the script in a checkpoint's fingerprint (its whole
        # text is read: never the recording, which may be a gigabyte)
        return ReplayScript(replay, config.source or replay.source_path, "skip")
    try:
        script = load_script(user)
    except ScriptLoadError as exc:
        raise SetupError([f"event.script.path: {exc}"]) from None
    return ReplayScript(replay, script.path, user.on_error, script.produce)
