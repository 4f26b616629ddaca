"""A transaction's requests (commit, abort) asked again while they fail retriably, and
the failures that make the transaction abort, stop the run, or give up at the stop
deadline (transactions.py)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException

from connector.outputs.kafka.sink import KafkaSink, Stop

__all__ = ["TxFailed", "Unfinished", "retry_request"]


class TxFailed(Exception):
    """A transaction request or produce failed: abort and send again, or (fatal) stop.
    `cause`: the failure the abort was for, when the abort itself failed."""

    def __init__(
        self,
        err: KafkaError | None,
        fatal: bool = False,
        consume: bool = True,
        cause: KafkaError | None = None,
    ):
        super().__init__(err)
        self.err, self.fatal, self.consume, self.cause = err, fatal, consume, cause


class Unfinished(Stop):
    """The stop deadline passed while a commit or abort was still under way."""

    def __init__(self):
        super().__init__(interrupted=False, taken=False)


def retry_request(request, deadline: Callable[[], float], sink: KafkaSink) -> None:
    """A transaction request (commit, abort), asked again while it fails retriably, up
    to deadline(). Each retry waits a jittered, doubling backoff (at most 1 s): an
    abort refused at once while the timed-out commit is still under way in the client
    (_CONFLICT, retriable) is not asked again in a busy loop. Past the stop deadline,
    Unfinished."""
    backoff = 0.05
    while True:
        left = deadline() - time.monotonic()
        try:
            request(max(0.1, min(left, 5.0)))
            return
        except KafkaException as exc:
            err = exc.args[0]
        if err.fatal():
            raise TxFailed(err, fatal=True)
        if err.txn_requires_abort() or not err.retriable():
            raise TxFailed(err)
        stop, now = sink.stop_deadline, time.monotonic()
        if stop is not None and now >= stop:
            raise Unfinished()
        if now >= deadline():
            raise TxFailed(err)
        sink.client_log.check()
        time.sleep(max(0.0, min(backoff * random.uniform(0.5, 1), deadline() - now)))
        backoff = min(backoff * 2, 1.0)
