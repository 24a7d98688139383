"""What is inside an archive and where its bytes went."""

from __future__ import annotations

from pathlib import Path

import torch

from .archive.format import SECTION_NAMES, ArchiveHeader
from .archive.read import ArchiveReader
from .compress.weights import blob_report, class_table
from .model.base import FrameModel
from .model.build import build_model, count_parameters


def describe(path: str | Path) -> dict:
    """The `dnerv info --json` document: videos, clips, parameters, bytes per section, bpp."""
    reader = ArchiveReader(path)
    reader.verify()
    layout, header = reader.layout, reader.header
    videos = [
        {
            "name": v.name,
            "fps": v.fps,
            "frames": v.frames,
            "width": v.width,
            "height": v.height,
            "first_clip": layout.first_clip[i],
            "clips": len(layout.video_clips(i)),
        }
        for i, v in enumerate(layout.videos)
    ]
    sections = {SECTION_NAMES[tag]: n for tag, n in reader.section_bytes.items()}
    sections["container"] = reader.container_bytes
    sections["total"] = reader.file_size
    pixels = layout.total_frames * header.height * header.width
    return {
        "format_version": reader.version,
        "writer": header.writer,
        "width": header.width,
        "height": header.height,
        "frames": layout.total_frames,
        "videos": videos,
        "clips": [
            {"index": c.index, "video": layout.videos[c.video].name, "start": c.start, "frames": c.length}
            for c in layout.clips
        ],
        "keyframes": len(layout.keyframes) if header.model.uses_keyframes else 0,
        "keyframe_codec": header.keyframes.codec,
        "keyframe_quality": header.keyframes.quality,
        "keyframe_gop": header.keyframes.gop,
        "weight_bits": header.quant.bits,
        "weight_depths": weight_depths(header),
        "params": count_parameters(header.model, header.height, header.width),
        "model": {
            "kind": header.model.kind,
            "fc_dim": header.model.fc_dim,
            "clip_len": header.model.clip_len,
        },
        "bytes": sections,
        "bpp": reader.file_size * 8 / pixels,
        "weights": weight_classes(reader),
    }


def _shape_only_model(header: ArchiveHeader) -> FrameModel:
    with torch.device("meta"):  # names, shapes and classes only: no memory, no initialisation
        return build_model(header.model, header.height, header.width)


def weight_depths(header: ArchiveHeader) -> list[int]:
    """The distinct bit depths of the learned tensors, lowest first."""
    count = sum(1 for _ in _shape_only_model(header).parameters())
    return sorted(set(header.quant.bits_of(count)))


def depth_label(depths: list[int]) -> str:
    """'8-bit' for one depth, '4-8 bit' for a mix."""
    return f"{depths[0]}-bit" if len(depths) == 1 else f"{depths[0]}-{depths[-1]} bit"


def weight_classes(reader: ArchiveReader) -> list[dict]:
    """The weights section per tensor class (compress.weights.class_table over the model's
    tensor_groups()), measured by decoding it: class, tensors, params, bytes (payload + side),
    payload, entropy, side, bits_per_param."""
    header = reader.header
    model = _shape_only_model(header)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    report = blob_report(reader.weights_blob(), shapes, header.quant.bits_of(len(shapes)))
    return class_table(report, model.tensor_groups())
