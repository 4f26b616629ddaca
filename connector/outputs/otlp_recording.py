"""The otlp output's part of the run manifest (--manifest), fed by the sender's thread
with each batch the endpoint took whole: traces as trace id -> span ids (read back from
the trace store by `connector verify`), logs and metrics as counts per resource (not
read back: the manifest says so)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connector.manifest import ManifestWriter
    from connector.otlp.sender import Sender

__all__ = ["record_to"]


def record_to(sender: Sender, settings: dict, writer: ManifestWriter, name: str) -> None:
    """`settings`: the output's endpoint, protocol and signal (no headers: they carry
    tokens)."""
    if settings["signal"] == "traces":
        recorder = writer.traces(name, "otlp", settings)
        add = recorder.add

        def accepted(items: list) -> None:
            # an item is (resource key, trace id, Span bytes); a Span message begins with
            # its trace id (field 1, 16 bytes) and span id (field 2, 8 bytes)
            add([(trace_id, span[20:28]) for _, trace_id, span in items])

    else:
        counts = writer.counts(name, "otlp", settings)
        add_counts = counts.add

        def accepted(items: list) -> None:
            add_counts([str(item[0][0]) for item in items])

    sender.accepted.append(accepted)
