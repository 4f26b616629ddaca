"""Outputs: where events go. The registry maps config names to plugins."""

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
