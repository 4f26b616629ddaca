"""The reliability layer (connector/delivery.py): one classification for every output's
failures, and Retry around one send function. In-process, no service needed."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import KafkaError

from connector.delivery import (
    THROTTLED,
    DeliveryError,
    Failure,
    Kind,
    Retry,
    RetryConfig,
    kind_of,
    not_sent,
)
from connector.otlp.sender import ExportError
from connector.outputs.kafka import errors

LOG = logging.getLogger("test.delivery")


@pytest.mark.parametrize(("retryable", "delay", "kind"), [
    (False, None, Kind.PERMANENT),
    (False, 3.0, Kind.PERMANENT),  # a delay on a refusal does not make it worth retrying
    (True, None, Kind.RETRYABLE),
    (True, 0.0, Kind.THROTTLED),
    (True, 3.0, Kind.THROTTLED),
])
def test_otlp_export_errors_map_onto_the_one_classification(retryable, delay, kind):
    exc = ExportError("HTTP 429", retryable, "slow down", delay)
    assert isinstance(exc, DeliveryError)
    assert exc.failure == Failure("HTTP 429", "slow down", kind, delay)
    assert kind_of(retryable, delay) is kind


def test_kafka_errors_map_onto_the_one_classification_with_their_reasons_unchanged():
    def err(code, **kw):
        return KafkaError(code, "the client's own words", **kw)

    timed_out = errors.delivery_failure(err(KafkaError._MSG_TIMED_OUT))
    assert timed_out == Failure("timed out (possibly written)", "the client's own words",
                                Kind.RETRYABLE)
    purged = errors.delivery_failure(err(KafkaError._PURGE_QUEUE))
    assert (purged.reason, purged.detail, purged.kind) == (errors.PURGED, None, Kind.RETRYABLE)
    assert errors.PURGED == "undelivered at the flush deadline (possibly written)"
    in_flight = errors.delivery_failure(err(KafkaError._PURGE_INFLIGHT))
    assert in_flight.reason == errors.PURGED
    assert errors.delivery_failure(err(KafkaError.TOPIC_EXCEPTION)).reason == errors.INVALID_TOPIC
    too_large = errors.delivery_failure(err(KafkaError.MSG_SIZE_TOO_LARGE))
    assert too_large.reason == "MSG_SIZE_TOO_LARGE: " + KafkaError(
        KafkaError.MSG_SIZE_TOO_LARGE).str()
    assert too_large.kind is Kind.PERMANENT
    assert errors.kind(err(KafkaError.THROTTLING_QUOTA_EXCEEDED)) is Kind.THROTTLED
    assert errors.kind(err(KafkaError.NOT_ENOUGH_REPLICAS)) is Kind.RETRYABLE
    assert errors.kind(err(KafkaError.NOT_ENOUGH_REPLICAS, fatal=True)) is Kind.PERMANENT
    assert errors.produce_failure(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "x")).reason == (
        errors.UTF8
    )
    assert (not_sent(KeyboardInterrupt()), not_sent(MemoryError())) == (
        "not sent: stopping", "not sent: MemoryError"
    )


def retry(deadline=None, attempts=3) -> Retry:
    policy = RetryConfig(attempts=attempts, initial_backoff=0.001, max_backoff=0.002)
    return Retry(policy, lambda: deadline, "test send", LOG)


def failing(*failures: Failure, then=7):
    """A send that fails with each failure in turn, then returns `then`."""
    left = list(failures)
    calls = []

    def send():
        calls.append(time.monotonic())
        if left:
            raise DeliveryError(left.pop(0))
        return then

    return send, calls


def test_retry_sends_again_until_it_works_and_stops_at_a_permanent_failure():
    send, calls = failing(Failure("gRPC UNAVAILABLE", "", Kind.RETRYABLE))
    assert retry().send(send) == (7, None)
    assert len(calls) == 2
    send, calls = failing(Failure("HTTP 400", "bad", Kind.PERMANENT))
    assert retry().send(send) == (None, Failure("HTTP 400 (after 1 attempt(s))", "bad"))
    assert len(calls) == 1


def test_retry_spends_its_attempts_then_reports_the_last_failure():
    down = Failure("gRPC UNAVAILABLE", "down", Kind.RETRYABLE)
    send, calls = failing(down, down, down, down)
    result, failure = retry(attempts=3).send(send)
    assert (result, failure.reason, failure.detail, len(calls)) == (
        None, "gRPC UNAVAILABLE (after 3 attempt(s))", "down", 3
    )


def test_a_server_delay_is_honoured_and_one_past_the_deadline_ends_at_once():
    send, calls = failing(Failure("HTTP 429", "", Kind.THROTTLED, 0.2))
    assert retry().send(send) == (7, None)
    assert calls[1] - calls[0] >= 0.2
    send, calls = failing(Failure("HTTP 429", "slow", Kind.THROTTLED, 30.0))
    started = time.monotonic()
    result, failure = retry(deadline=time.monotonic() + 1).send(send)
    assert result is None
    assert time.monotonic() - started < 1
    assert failure.reason == THROTTLED
    assert failure.detail == "HTTP 429: slow; asked to retry after 30 s, past the deadline"


def test_stop_ends_a_wait_and_the_failure_in_hand_is_the_last():
    r = retry()
    send, calls = failing(Failure("HTTP 503", "", Kind.THROTTLED, 30.0))

    def send_then_stop():
        try:
            return send()
        finally:
            r.stop()  # as close() does while the sender waits

    started = time.monotonic()
    assert r.send(send_then_stop) == (None, Failure("HTTP 503 (after 1 attempt(s))", "",
                                                    Kind.THROTTLED, 30.0))
    assert time.monotonic() - started < 1 and len(calls) == 1
