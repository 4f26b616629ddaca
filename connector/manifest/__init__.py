"""The run manifest: what each output acknowledged, kept by a recorder an output
(recorders.py) and written as the run goes (writer.py), in a chunked binary format
(format.py), read back as one run by `connector verify` (reader.py). Outputs feed it
through the `Recorded` capability (outputs/base.py)."""

from connector.manifest.format import ManifestError
from connector.manifest.reader import Manifest, read_manifest
from connector.manifest.writer import ManifestWriter

__all__ = ["Manifest", "ManifestError", "ManifestWriter", "read_manifest"]
