"""Fitting checkpoints in dnerv's own container format (never pickle): a JSON section with the
state of the run and a raw little-endian tensor section indexed by that JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..archive.container import ContainerReader, write_container
from ..errors import ArchiveError, ResumeError

MAGIC = b"DNCK"
VERSION = 1
_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "uint8": np.uint8}


def pack_tensors(tensors: dict[str, torch.Tensor]) -> tuple[list[dict[str, Any]], bytes]:
    """Concatenate tensors as little-endian raw bytes; returns (index, payload)."""
    index, chunks, offset = [], [], 0
    for name, tensor in tensors.items():
        array = tensor.detach().cpu().contiguous().numpy()
        dtype = array.dtype.name
        if dtype not in _DTYPES:
            raise TypeError(f"cannot checkpoint tensor {name} of dtype {dtype}")
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        index.append({"name": name, "dtype": dtype, "shape": list(array.shape), "offset": offset})
        chunks.append(data)
        offset += len(data)
    return index, b"".join(chunks)


def unpack_tensors(index: list[dict[str, Any]], payload: bytes) -> dict[str, torch.Tensor]:
    out = {}
    for entry in index:
        dtype = np.dtype(_DTYPES[entry["dtype"]]).newbyteorder("<")
        count = int(np.prod(entry["shape"], dtype=np.int64))
        end = entry["offset"] + count * dtype.itemsize
        if end > len(payload):
            raise ArchiveError(f"checkpoint tensor {entry['name']} runs past its section")
        array = np.frombuffer(payload, dtype=dtype, count=count, offset=entry["offset"])
        out[entry["name"]] = torch.from_numpy(array.astype(dtype.newbyteorder("="))).reshape(entry["shape"])
    return out


@dataclass
class Checkpoint:
    """Everything a resumed fit needs besides the inputs themselves."""

    meta: dict[str, Any]  # fingerprint, progress counters, settings
    tensors: dict[str, torch.Tensor]  # model parameters and optimizer moments
    blobs: dict[str, bytes]  # e.g. the coded keyframes, so they are not coded twice

    def save(self, path: Path) -> None:
        index, payload = pack_tensors(self.tensors)
        meta = dict(self.meta, tensor_index=index, blob_names=list(self.blobs))
        sections = [("META", json.dumps(meta).encode()), ("TENS", payload)]
        sections += [(f"B{i:03d}", blob) for i, blob in enumerate(self.blobs.values())]
        write_container(path, MAGIC, VERSION, sections, force=True)

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        if not path.exists():
            raise ResumeError(f"no checkpoint to resume at {path}")
        with ContainerReader(path, MAGIC, {VERSION}) as reader:
            meta = json.loads(reader.read("META"))
            tensors = unpack_tensors(meta.pop("tensor_index"), reader.read("TENS"))
            names = meta.pop("blob_names")
            blobs = {name: reader.read(f"B{i:03d}") for i, name in enumerate(names)}
        return cls(meta, tensors, blobs)
