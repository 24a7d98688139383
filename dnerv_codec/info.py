"""What is inside an archive and where its bytes went."""

from __future__ import annotations

from pathlib import Path

from .archive.format import SECTION_NAMES
from .archive.read import ArchiveReader
from .model.dnerv import count_parameters


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
        "keyframes": len(layout.keyframes),
        "keyframe_codec": header.keyframes.codec,
        "keyframe_quality": header.keyframes.quality,
        "weight_bits": header.quant.bits,
        "params": count_parameters(header.model, header.height, header.width),
        "model": {"fc_dim": header.model.fc_dim, "clip_len": header.model.clip_len},
        "bytes": sections,
        "bpp": reader.file_size * 8 / pixels,
    }
