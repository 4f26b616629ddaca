"""The kafka canary's callback on the hot path: swapped in only while the canary wants a
sample, and out again once it has it (unit: no thread, no broker)."""

from __future__ import annotations

from connector.canary.config import CanaryConfig
from connector.canary.kafka import KafkaCanary, attach
from connector.outputs.base import Acks


class Report:
    def __init__(self, offset: int):
        self._offset = offset

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> None:
        return None

    def value(self) -> bytes:
        return b"v%d" % self._offset

    def latency(self) -> None:
        return None


class Sink:
    def __init__(self) -> None:
        self.delivered = 0

    def _on_delivery(self, err, msg) -> None:
        self.delivered += 1


def test_the_callback_is_swapped_in_while_a_sample_is_wanted_and_out_after():
    sink = Sink()
    plain = sink._on_delivery
    canary = KafkaCanary(CanaryConfig(sample=3), {}, Acks("k", "kafka"), b"", False)
    attach(canary, sink, None)
    assert sink._on_delivery == plain  # nothing wanted: the plain callback alone
    canary.want = 3
    canary.switch(True)  # what the canary's loop does each `every`
    wrapped = sink._on_delivery
    assert wrapped != plain
    for offset in range(5):
        sink._on_delivery(None, Report(offset))
    assert sink.delivered == 5  # every report still counted by the plain callback
    assert [s.offset for s in canary._taken] == [0, 1, 2]  # the sample, then no more
    assert canary.want == 0 and sink._on_delivery == plain
    wrapped(None, Report(9))  # a message produced while armed, reported after: ignored
    assert [s.offset for s in canary._taken] == [0, 1, 2] and sink.delivered == 6


def test_with_a_manifest_every_report_is_still_recorded_around_the_canarys_sample(tmp_path):
    """--manifest installs its callback after the canary is attached (the output is built
    first): the canary's swap wraps the callback in place then, and puts it back after."""
    from connector.identity import Identity
    from connector.manifest import ManifestWriter, read_manifest
    from connector.outputs.kafka.client_log import ClientLog
    from connector.outputs.kafka.config import Config
    from connector.outputs.kafka.sink import KafkaSink

    acks = Acks("k", "kafka")
    config = Config(bootstrap_servers="127.0.0.1:1", topic="t")
    sink = KafkaSink(config, acks, ClientLog(acks))
    canary = KafkaCanary(CanaryConfig(sample=2), {}, acks, b"", False)
    attach(canary, sink, None)
    writer = ManifestWriter(tmp_path / "m.manifest", Identity())
    sink.record(writer.kafka("k", {"topic": "t"}, b"", "t", keyed=False))
    for round_ in range(2):  # two samples: armed, taken, put back, armed again
        canary.want = 2
        canary.switch(True)
        for offset in range(round_ * 4, round_ * 4 + 4):
            sink._on_delivery(None, Report(offset))
    writer.close()
    assert acks.delivered == 8
    assert [s.offset for s in canary._taken] == [0, 1, 4, 5]
    part = read_manifest(tmp_path / "m.manifest").outputs["k"].kafka[("t", 0)]
    assert [offset for offset, _ in part.sorted_pairs()] == list(range(8))


def test_far_samples_of_a_partition_are_read_apart():
    """A sample gone missing must not make the canary read the log up to the next one."""
    from connector.canary.kafka import _near, _Sample

    def sample(partition: int, offset: int) -> _Sample:
        return _Sample("t", partition, offset, 0, 0.0)

    samples = [sample(0, 501), sample(1, 3), sample(0, 2), sample(0, 0), sample(0, 500),
               sample(0, 1)]
    runs = [(where, sorted(run)) for where, run in _near(samples)]
    assert runs == [(("t", 0), [0, 1, 2]), (("t", 0), [500, 501]), (("t", 1), [3])]
