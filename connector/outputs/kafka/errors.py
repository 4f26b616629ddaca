"""Kafka's failures: the bounded reasons users see, classified as every output's are
(`connector.delivery`: permanent, retryable, or throttled).

A reason is a metric label, so it comes from a fixed set: a client error's name and the
fixed text of its code, never the client's message (that is the detail, for the dead
letter). librdkafka has already retried what it could when a delivery fails; the kind
says what the failure was, for whoever acts on it next.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from connector.delivery import Failure, Kind

__all__ = [
    "CALL_FAILED",
    "FENCED",
    "INVALID_TOPIC",
    "NOT_COMMITTED",
    "PURGED",
    "UNFINISHED",
    "UNKNOWN_TOPIC",
    "UTF8",
    "code_failure",
    "delivery_failure",
    "fenced",
    "json_reason",
    "kind",
    "produce_failure",
    "txn_trouble",
]

INVALID_TOPIC = "invalid topic name (from the topic template)"
UNKNOWN_TOPIC = "unknown topic (does it exist? is auto-creation off?)"
FENCED = "transaction fenced (another producer uses its transactional id)"
NOT_COMMITTED = "transaction not committed at shutdown"
# the stop deadline passed with a commit (or the abort after it) still under way: the
# broker may complete a commit it had received
UNFINISHED = "transaction unfinished at shutdown (possibly committed)"
CALL_FAILED = "another event of its produce() call failed (transactions)"
UTF8 = "cannot encode as UTF-8 (lone surrogate)"
# purged at the flush deadline: the client had taken it, and may have sent it already (a
# request the broker received is written even when its answer never comes)
PURGED = "undelivered at the flush deadline (possibly written)"

# the broker asks the client to slow down: the same request a moment later goes through
_THROTTLED = {KafkaError.THROTTLING_QUOTA_EXCEEDED, KafkaError._QUEUE_FULL}
# librdkafka marks transaction errors retriable; for a delivery report, these codes say so
_TRANSIENT = {
    KafkaError._MSG_TIMED_OUT,
    KafkaError._TIMED_OUT,
    KafkaError._TIMED_OUT_QUEUE,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._PURGE_QUEUE,
    KafkaError._PURGE_INFLIGHT,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NETWORK_EXCEPTION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.NOT_ENOUGH_REPLICAS,
    KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
}
_TXN_STATE = {KafkaError._STATE, KafkaError._FATAL, KafkaError._FENCED}
_FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED}
_DEFAULT_TEXT: dict[int, str] = {}


def kind(err: KafkaError) -> Kind:
    """A client error's kind: a fatal one is permanent (the producer is done)."""
    if err.fatal():
        return Kind.PERMANENT
    code = err.code()
    if code in _THROTTLED:
        return Kind.THROTTLED
    if err.retriable() or err.txn_requires_abort() or code in _TRANSIENT:
        return Kind.RETRYABLE
    return Kind.PERMANENT


def code_failure(err: KafkaError) -> Failure:
    """A bounded reason for a client error (its name and the fixed text of its code), and
    the client's own message as the detail when it says more."""
    code = err.code()
    if code not in _DEFAULT_TEXT:
        _DEFAULT_TEXT[code] = KafkaError(code).str()
    text = err.str()
    detail = text if text != _DEFAULT_TEXT[code] else None
    return Failure(f"{err.name()}: {_DEFAULT_TEXT[code]}", detail, kind(err))


def produce_failure(exc: Exception) -> Failure:
    """produce() refused a message up front (too large, not UTF-8, a bad topic...)."""
    if isinstance(exc, KafkaException):
        err = exc.args[0]
        code = err.code()
        if code == KafkaError.TOPIC_EXCEPTION:
            return Failure(INVALID_TOPIC, err.str())
        if code == KafkaError._UNKNOWN_TOPIC:
            return Failure(UNKNOWN_TOPIC, err.str())
        return code_failure(err)
    if isinstance(exc, UnicodeEncodeError):
        return Failure(UTF8, str(exc))
    return Failure(f"cannot produce: {type(exc).__name__}", str(exc))


def delivery_failure(err: KafkaError) -> Failure:
    """A delivery report's error: the message was taken, and it failed for good."""
    code = err.code()
    if code in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
        return Failure(PURGED, None, Kind.RETRYABLE)
    if code == KafkaError._MSG_TIMED_OUT:  # sent, maybe written, never acknowledged
        return Failure("timed out (possibly written)", err.str(), Kind.RETRYABLE)
    if code == KafkaError._TIMED_OUT_QUEUE:
        return Failure("timed out in the local queue (not sent)", err.str(), Kind.RETRYABLE)
    if code == KafkaError.TOPIC_EXCEPTION:
        return Failure(INVALID_TOPIC, err.str())
    if code in (KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART):
        return Failure(UNKNOWN_TOPIC, err.str(), kind(err))
    return code_failure(err)


def json_reason(exc: Exception) -> str:
    """An event the routing could not parse."""
    if "surrogates" in str(exc):
        return UTF8
    return "not JSON (needed for topic/key/header fields)"


def txn_trouble(err: KafkaError) -> bool:
    """produce() refused because of the transaction, not because of the message."""
    return err.fatal() or err.txn_requires_abort() or err.code() in _TXN_STATE


def fenced(err: KafkaError) -> bool:
    return err.code() in _FENCED_CODES or "fenced" in err.str().lower()
