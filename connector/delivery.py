"""One reliability layer for every output: how a failure is classified, and how a send is
retried.

Every output's failures map onto one classification, as in the Collector's exporterhelper
and Vector's services: **permanent** (sending again gets the same answer), **retryable**
(it may work a moment later) or **throttled** (the server said when to come back). A
`Failure` carries its kind with the bounded reason users see; `DeliveryError` raises one
from a send function.

`Retry` wraps one send function: a retryable failure is sent again after an exponential,
jittered backoff, a throttled one after the server's own delay, a permanent one not at
all; a server's delay that would pass the deadline ends it at once, and `stop()` ends a
wait. The reasons every output shares live here too, below the outputs and the OTLP
library alike: this module imports neither.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeVar

from pydantic import Field

from connector.fields import Strict

__all__ = [
    "NOT_SENT",
    "THROTTLED",
    "UNDELIVERED",
    "Accounts",
    "DeliveryError",
    "Failure",
    "Kind",
    "Retry",
    "RetryConfig",
    "kind_of",
    "not_sent",
    "retry_after",
]

NOT_SENT = "not sent: stopping"  # events a stopping output never handed on
UNDELIVERED = "undelivered at the flush deadline (flush_timeout)"
THROTTLED = "throttled"  # the server's retry delay would pass the flush deadline


def not_sent(exc: BaseException) -> str:
    """The reason for the events a write never handed on because `exc` interrupted it."""
    if isinstance(exc, KeyboardInterrupt):
        return NOT_SENT
    return f"not sent: {type(exc).__name__}"


class Kind(enum.Enum):
    PERMANENT = "permanent"  # the same answer every time: never sent again
    RETRYABLE = "retryable"  # may work a moment later: sent again after a backoff
    THROTTLED = "throttled"  # the server gave a delay: sent again after it


def kind_of(retryable: bool, delay: float | None = None) -> Kind:
    """A failure's kind from the two facts a transport reports: retryable or not, and the
    server's delay when it gave one."""
    if not retryable:
        return Kind.PERMANENT
    return Kind.RETRYABLE if delay is None else Kind.THROTTLED


@dataclass(frozen=True, slots=True)
class Failure:
    """A failure, classified. `reason` comes from a bounded set (a metric label); `detail`
    says more, for the dead letter (the client's own message); `delay`: the server's
    delay in seconds, for a throttled failure."""

    reason: str
    detail: str | None = None
    kind: Kind = Kind.PERMANENT
    delay: float | None = None


class DeliveryError(Exception):
    """A send failed, with its classified failure (what `Retry` reads)."""

    def __init__(self, failure: Failure):
        super().__init__(failure.reason)
        self.failure = failure


class Accounts(Protocol):
    """What a sender needs of an output's delivery accounting (the outputs' `Acks`)."""

    delivered: int
    latency: Any

    @property
    def pending(self) -> int: ...
    def fail(self, reason: str, value: Any, detail: str | None = None, **where: Any) -> None: ...
    def fail_all(self, reason: str, values: Any, detail: str | None = None, **where: Any) -> None:
        ...


class RetryConfig(Strict):
    attempts: int = Field(5, ge=1)
    initial_backoff: float = Field(0.2, gt=0)
    max_backoff: float = Field(5.0, gt=0)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """HTTP Retry-After: delay-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


T = TypeVar("T")


class Retry:
    """Sends through one function with retries, on the caller's thread (a sender's own).

    `deadline()` is read before and during each wait: a throttled retry that would start
    after it is not waited for (THROTTLED). `what` names the send in the retry's warning.
    """

    def __init__(
        self,
        policy: RetryConfig,
        deadline: Callable[[], float | None],
        what: str,
        log: logging.Logger,
    ):
        self.policy, self.deadline, self.what, self.log = policy, deadline, what, log
        self.stopped = False
        self._wake = threading.Event()  # ends a wait early: a new deadline, or stop()

    def nudge(self) -> None:
        """The deadline may have changed: a waiting retry looks at it again."""
        self._wake.set()

    def stop(self) -> None:
        """No more retries: a wait ends now, and the failure in hand is the last."""
        self.stopped = True
        self._wake.set()

    def send(self, attempt: Callable[[], T]) -> tuple[T | None, Failure | None]:
        """(what `attempt` returned, None) once it succeeds; (None, the failure) once it
        fails for good: permanent, the attempts spent, stopped, or throttled past the
        deadline. Only DeliveryError is retried; anything else propagates."""
        policy = self.policy
        backoff = policy.initial_backoff
        tries = 0
        while True:
            tries += 1
            try:
                return attempt(), None
            except DeliveryError as exc:
                found = exc.failure
            failed = Failure(
                f"{found.reason} (after {tries} attempt(s))", found.detail, found.kind, found.delay
            )
            if found.kind is Kind.PERMANENT or tries == policy.attempts or self.stopped:
                return None, failed
            said = f"{found.reason}: {found.detail}" if found.detail else found.reason
            throttled = found.kind is Kind.THROTTLED
            if throttled:  # the server said when: that, not our backoff
                wait = found.delay
            else:
                wait = backoff * random.uniform(0.5, 1)
                backoff = min(backoff * 2, policy.max_backoff)
            self.log.warning(
                "%s failed (%s); retry %d/%d in %.1f s",
                self.what,
                said,
                tries,
                policy.attempts - 1,
                wait,
            )
            if self._wait(wait, throttled):
                late = f"{said}; asked to retry after {wait:g} s, past the deadline"
                return None, Failure(THROTTLED, late, Kind.THROTTLED, wait)
            if self.stopped:
                return None, failed

    def _wait(self, seconds: float, throttled: bool) -> bool:
        """Sleep before a retry, ended early by stop(). True when a server's delay would
        pass the deadline (known now, or set meanwhile)."""
        until = time.monotonic() + seconds
        while True:
            deadline = self.deadline()
            if throttled and deadline is not None and until > deadline:
                return True
            left = until - time.monotonic()
            if left <= 0 or self.stopped:
                return False
            self._wake.wait(left)
            self._wake.clear()
