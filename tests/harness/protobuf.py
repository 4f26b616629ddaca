"""A .proto compiled by protoc in the tests' own way (not the connector's), for reading
back Protobuf records independently of the code under test."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool


def compile_here(folder: Path, name: str) -> descriptor_pool.DescriptorPool:
    """The file `name` in `folder`, with its imports and the well-known types, in a pool."""
    import grpc_tools

    wkt = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "set.pb")
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{folder}", f"-I{wkt}",
                        f"--descriptor_set_out={out}", "--include_imports", name], check=True)
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    pool = descriptor_pool.DescriptorPool()
    for proto in files:
        pool.Add(proto)
    return pool
