"""librdkafka's warning rule (client_log.py), in-process: a condition is judged when it would
warn. An idle producer delivers nothing and may have no ready() caller, so nothing else
shows that its condition has cleared: before warning, the rule asks the client."""

from __future__ import annotations

import logging
import time
import types

import pytest

from connector.outputs.base import Acks
from connector.outputs.kafka import Config, KafkaOutput
from connector.outputs.kafka import client_log as module
from connector.outputs.kafka.client_log import ClientLog

K = "kafka-0"
LINE = "[thrd:127.0.0.1:9/bootstrap]: 127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(module, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    return clock


def client_lines(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "connector.kafka.client" and r.levelno == level]


@pytest.mark.parametrize("answers", [True, False])
def test_a_condition_is_judged_when_it_would_warn(clock, caplog, answers):
    probes = []

    def probe() -> bool:
        probes.append(clock.now)
        return answers

    log = ClientLog(Acks(K, "kafka"), probe)
    caplog.set_level(logging.DEBUG, logger="connector.kafka.client")
    log.log(logging.ERROR, "%s", "FAIL", "rdkafka", LINE)
    for _ in range(40):  # idle: no delivery, no ready(); polled every half second
        clock.now += 0.5
        log.check()
    warnings = client_lines(caplog, logging.WARNING)
    if answers:  # the client has an answer: the condition had cleared, nothing to warn of
        assert warnings == [] and log.open == {}
        assert probes == [pytest.approx(1000.0 + ClientLog.GRACE)]
    else:  # still failing: warned once, and the failed probe is not asked again at once
        assert len(warnings) == 1 and "Connect to ipv4#127.0.0.1:9 failed" in warnings[0]
        assert len(probes) == 1 and len(log.open) == 1
    assert client_lines(caplog, logging.INFO) == []


def test_a_warned_condition_recovers_when_it_would_remind(clock, caplog):
    answers = [False, True]
    log = ClientLog(Acks(K, "kafka"), lambda: answers.pop(0))
    caplog.set_level(logging.DEBUG, logger="connector.kafka.client")
    log.log(logging.ERROR, "%s", "FAIL", "rdkafka", LINE)
    clock.now += ClientLog.GRACE
    log.check()
    assert len(client_lines(caplog, logging.WARNING)) == 1
    clock.now += ClientLog.REMIND
    log.check()  # the reminder is due: the client answers, so it recovered instead
    assert len(client_lines(caplog, logging.WARNING)) == 1
    assert [m for m in client_lines(caplog, logging.INFO) if "recovered after" in m]
    assert log.open == {} and answers == []


@pytest.mark.parametrize("answers", [True, False])
def test_a_young_condition_at_close_is_judged_too(clock, caplog, answers):
    log = ClientLog(Acks(K, "kafka"), lambda: answers)
    caplog.set_level(logging.DEBUG, logger="connector.kafka.client")
    log.log(logging.ERROR, "%s", "FAIL", "rdkafka", LINE)
    clock.now += 1
    log.close()
    unresolved = [m for m in client_lines(caplog, logging.WARNING) if "unresolved" in m]
    assert len(unresolved) == (0 if answers else 1)


def test_an_idle_producer_judges_its_condition_against_the_real_broker(private_kafka, caplog,
                                                                       monkeypatch):
    """A real, idle producer: a condition that has cleared (the broker answers) is not
    warned of; with the broker stalled (SIGSTOP) it is, and recovers once it answers."""
    monkeypatch.setattr(ClientLog, "GRACE", 1.0)
    monkeypatch.setattr(ClientLog, "REMIND", 2.0)
    monkeypatch.setattr(ClientLog, "PROBE_FOR", 1.0)
    caplog.set_level(logging.DEBUG, logger="connector.kafka.client")
    out = KafkaOutput(Config(bootstrap_servers=private_kafka.bootstrap, topic="idle"),
                      Acks(K, "kafka"))
    out.start()
    try:
        def idle(seconds: float) -> None:  # what the pipeline does while nothing is due
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                out.poll()
                time.sleep(0.05)

        out.client_log.log(logging.ERROR, "%s", "FAIL", "rdkafka", LINE)  # a past condition
        idle(2.5)
        assert client_lines(caplog, logging.WARNING) == [], "warned of a cleared condition"
        assert out.client_log.open == {}

        private_kafka.pause()
        try:
            out.client_log.log(logging.ERROR, "%s", "FAIL", "rdkafka", LINE)
            idle(2.0)
            assert len(client_lines(caplog, logging.WARNING)) == 1, "a live condition unsaid"
        finally:
            private_kafka.resume()
        out.producer.list_topics(timeout=30)  # answering again (this is no health signal)
        idle(3.0)  # the reminder is due: judged again, the broker answers
        assert len(client_lines(caplog, logging.WARNING)) == 1
        assert [m for m in client_lines(caplog, logging.INFO) if "recovered after" in m]
        assert out.client_log.open == {}
    finally:
        out.close()
