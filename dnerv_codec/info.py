"""What is inside an archive and where its bytes went."""

from __future__ import annotations

from pathlib import Path

from .archive.format import SECTION_NAMES
from .archive.read import ArchiveReader
from .model.build import count_parameters


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


def weight_classes(reader: ArchiveReader) -> list[dict]:
    """The weights section per tensor class (compress.weights.class_table), measured by decoding it:
    class, tensors, params, bytes (payload + side), payload, entropy, side, bits_per_param."""
    import torch

    from .compress.weights import blob_report, class_table
    from .model.build import build_model

    header = reader.header
    with torch.device("meta"):
        model = build_model(header.model, header.height, header.width)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    report = blob_report(reader.weights_blob(), shapes, header.quant.bits_of(len(shapes)))
    return class_table(report)
