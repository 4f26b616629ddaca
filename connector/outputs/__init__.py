"""Outputs: where events go. The registry maps config names to plugins.

base.py        the contract: Output, Batch, the capability protocols, Acks (accounting)
handle.py      OutputHandle: one per output, its routing, state and deadlines
fanout.py      every handle at once: one batch built, selected and handed to each
validate.py    what `validate` and `preview` ask the plugins (time window, schemas)
formatter.py   event -> line for stdout and file
stdout.py, file.py, null.py, otlp.py: the plugins, each with its config model beside
               its code; kafka/: the Kafka plugin as a package (see its own map)
"""

from connector.outputs import file, kafka, null, otlp, stdout
from connector.outputs.base import Acks, Output, OutputConfig, OutputError, OutputPlugin

__all__ = ["OUTPUTS", "Acks", "Output", "OutputConfig", "OutputError", "OutputPlugin"]

OUTPUTS: dict[str, OutputPlugin] = {
    "stdout": stdout,
    "file": file,
    "kafka": kafka,
    "otlp": otlp,
    "null": null,
}
