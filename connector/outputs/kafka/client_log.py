"""librdkafka's log lines, reported by one rule: a condition is held open, logged at WARNING
only when it outlives a grace period, and its recovery is said once.

The producer is created with `logger=ClientLog(acks)`, so librdkafka's own lines (and the
error callback's events, which it also logs) arrive at `log()` on the client's thread
through poll(); nothing here runs on the per-event path.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from connector.outputs.base import Acks

__all__ = ["ClientLog", "client_log", "strip"]


class ClientLog:
    """librdkafka's log lines, reported by one rule (librdkafka calls `log()`).

    A warning or error is held as an open condition. It clears when the client shows it is
    healthy again (a delivery or a metadata answer after its last occurrence). One that
    clears within GRACE seconds is logged at DEBUG only (a broker still loading its
    coordinator on a fresh start); one still open after GRACE is logged once at WARNING
    with its repeat count, then `recovered after N s` at INFO. Repeats are only counted.
    Each event is logged once: the error callback logs nothing.

    A condition is judged when it would warn, not only by what passed meanwhile: an idle
    producer delivers nothing and may have no ready() caller, so before a warning (and at
    close) `probe` (set once the output has started) asks the client for a metadata answer;
    one that comes means the condition has cleared. A failed probe is trusted PROBE_FOR s.
    """

    GRACE = 10.0
    REMIND = 60.0  # a condition still open says so again, with its count, this often
    PROBE_FOR = 5.0

    def __init__(self, acks: Acks, probe: Callable[[], bool] | None = None):
        self.acks = acks
        self.healthy = 0  # bumped on a metadata answer; deliveries count too
        self.open: dict[str, list] = {}  # key -> [first, last, count, message, warned at, health]
        self.probe = probe  # () -> the client has an answer from the cluster now
        self._next = 0.0
        self._failed_probe = -1e9  # when a probe last got no answer

    def _judge(self, now: float, seen: int) -> int:
        """The health now, for a condition about to be warned of that nothing has cleared
        since `seen`: probed (a failed probe is trusted PROBE_FOR s)."""
        if self.probe is None or now - self._failed_probe < self.PROBE_FOR:
            return seen
        if self.probe():
            self.healthy += 1
        else:
            self._failed_probe = time.monotonic()
        return self._health()

    def _health(self) -> int:
        return self.healthy + self.acks.delivered

    def log(self, level: int, fmt: str, *args) -> None:
        if len(args) == 3:
            fac, _name, message = args
        else:
            fac, message = "", fmt % args if args else fmt
        if level < logging.WARNING:
            client_log.debug("%s: %s %s", self.acks.name, fac, message)
            return
        if fac == "CONFWARN":  # a configuration warning never clears: say it now
            client_log.warning("%s: %s", self.acks.name, message)
            return
        now = time.monotonic()
        # by the message alone: librdkafka reports one event under several facilities
        # (FAIL, ERROR...), and it must be logged once
        key = _NUMBERS.sub("#", strip(message))
        entry = self.open.get(key)
        if entry is None:
            if len(self.open) >= 100:  # bounded: a flood of distinct lines is coalesced
                key = "other client errors"
                entry = self.open.get(key)
            if entry is None:
                entry = self.open[key] = [now, now, 0, strip(message), 0.0, 0]
                client_log.debug("%s: %s %s", self.acks.name, fac, message)
        entry[1], entry[2], entry[5] = now, entry[2] + 1, self._health()
        # no promotion here (inside the client's poll): check(), after it, judges and warns

    def check(self, now: float | None = None) -> None:
        """Promote, remind or clear open conditions (cheap when there are none)."""
        if not self.open:
            return
        now = now or time.monotonic()
        if now < self._next:
            return
        self._next = now + 0.5
        health = self._health()
        for key, entry in list(self.open.items()):
            first, _last, count, message, warned, seen = entry
            due = now - first >= self.GRACE and now - warned >= self.REMIND
            if due and health == seen:
                health = self._judge(now, seen)
            if health != seen:
                del self.open[key]
                if warned:
                    client_log.info(
                        "%s: recovered after %d s: %s", self.acks.name, now - first, message
                    )
            elif due:
                client_log.warning(
                    "%s: %s (%d time(s) in %d s)%s",
                    self.acks.name,
                    message,
                    count,
                    now - first,
                    "; still failing" if warned else "",
                )
                entry[4] = now

    def close(self) -> None:
        """At shutdown: a condition that never cleared is reported, however young."""
        self._next = 0.0
        self.check()
        if self.open and any(not entry[4] for entry in self.open.values()):
            health = self._judge(time.monotonic(), self._health())
            for key, entry in list(self.open.items()):
                if entry[5] != health and not entry[4]:
                    del self.open[key]  # cleared: never warned, nothing to say
        for entry in self.open.values():
            first, _last, count, message, warned, _seen = entry
            if not warned:
                client_log.warning(
                    "%s: %s (%d time(s) in %d s, unresolved at shutdown)",
                    self.acks.name,
                    message,
                    count,
                    time.monotonic() - first,
                )
        self.open.clear()


client_log = logging.getLogger("connector.kafka.client")
_NUMBERS = re.compile(r"\d+")
_AFTER = re.compile(
    r"^\[thrd:[^\]]*\]: |\s*\(after \d+ms in state \w+(?:, \d+ identical error\(s\) suppressed)?\)"
)


def strip(message: str) -> str:
    """A client message without its thread prefix and its state suffix (they vary)."""
    return _AFTER.sub("", message)
