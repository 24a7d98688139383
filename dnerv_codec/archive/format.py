"""The archive's own layout on top of the container (docs/format.md is the full description).

Sections, in file order:
  HEAD  zlib-compressed UTF-8 JSON: ArchiveHeader (sizes, configs, normalisation, videos)
  KIDX  per keyframe: u32 byte length, u32 crc32 of its bytes (little-endian)
  KEYS  the coded keyframes, concatenated in global keyframe order
  WGTS  the quantized, entropy-coded network parameters (dnerv_codec.compress.weights)
Clips and keyframe positions are not stored: they follow from frame counts and the clip length.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

from ..clips import Layout, VideoEntry
from ..config import KeyframeConfig, ModelConfig, QuantConfig, from_dict, to_dict
from ..errors import ArchiveError, DnervError

MAGIC = b"DNRV"
FORMAT_VERSION = 2
READABLE_VERSIONS = frozenset({1, 2})
SECTION_NAMES = {"HEAD": "header", "KIDX": "keyframe index", "KEYS": "keyframes", "WGTS": "weights"}


@dataclass(frozen=True)
class ArchiveHeader:
    """Everything decode needs besides the keyframe and weight bytes."""

    height: int  # working size of every decoded frame
    width: int
    mean: tuple[float, float, float]  # per-channel normalisation of keyframes
    std: tuple[float, float, float]
    model: ModelConfig
    keyframes: KeyframeConfig
    quant: QuantConfig
    videos: tuple[VideoEntry, ...]
    writer: str = ""  # dnerv version that wrote the file

    def layout(self) -> Layout:
        return Layout.build(list(self.videos), self.model.clip_len)

    def to_bytes(self) -> bytes:
        doc = {
            "writer": self.writer,
            "height": self.height,
            "width": self.width,
            "mean": list(self.mean),
            "std": list(self.std),
            "model": to_dict(self.model),
            "keyframes": to_dict(self.keyframes),
            "quant": to_dict(self.quant),
            "videos": [[v.name, v.fps, v.frames, v.width, v.height] for v in self.videos],
        }
        return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 9)

    @classmethod
    def from_bytes(cls, data: bytes) -> ArchiveHeader:
        try:
            doc = json.loads(zlib.decompress(data))
            videos = tuple(
                VideoEntry(str(n), float(f), int(c), int(w), int(h)) for n, f, c, w, h in doc["videos"]
            )
            header = cls(
                height=int(doc["height"]),
                width=int(doc["width"]),
                mean=tuple(float(x) for x in doc["mean"]),
                std=tuple(float(x) for x in doc["std"]),
                model=from_dict(ModelConfig, doc["model"]),
                keyframes=from_dict(KeyframeConfig, doc["keyframes"]),
                quant=from_dict(QuantConfig, doc["quant"]),
                videos=videos,
                writer=str(doc.get("writer", "")),
            )
        except (zlib.error, ValueError, KeyError, TypeError, DnervError) as exc:
            raise ArchiveError(f"archive header is malformed: {exc}") from None
        if (
            header.height < 1
            or header.width < 1
            or len(header.mean) != 3
            or len(header.std) != 3
            or not videos
            or any(v.frames < 1 for v in videos)
        ):
            raise ArchiveError("archive header holds impossible values")
        return header
