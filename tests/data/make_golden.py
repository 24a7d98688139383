"""Make the golden archives that tests/test_golden.py re-encodes and compares byte for byte.

    .venv/bin/python tests/data/make_golden.py                    # writes tests/data/golden/*
    .venv/bin/python tests/data/make_golden.py --case plain OUT   # one case into OUT (the test)

The input is committed (golden/input-16f.mkv: the first 16 frames of samples/shepard1906.mp4,
CC0, stored losslessly), so the test does not depend on any cutting code. Each case encodes it
with one thread, a fixed seed and a fixed number of epochs, so a second run on the same torch and
PyAV gives the same bytes:

  plain       preset tiny as it is: plain 8-bit weights
  compressed  preset tiny with pruning, bit-depth choice, a quantization-aware fine-tune and
              entropy-coded per-tensor depths (the weight-compression stage)

GOLDEN.json records the torch / PyAV versions and the commit that wrote them. Regenerate only when
the bytes change on purpose, and say why in the commit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
GOLDEN = HERE / "golden"
SOURCE = ROOT / "samples" / "shepard1906.mp4"
INPUT = GOLDEN / "input-16f.mkv"
FRAMES = 16

# Library keywords of dnerv_codec.encode, per case; the size is square so that any WxH / HxW
# reading of it is the same.
CASES: dict[str, dict] = {
    "plain": dict(preset="tiny", epochs=2, seed=0, size=(64, 64), device="cpu"),
    "compressed": dict(preset="tiny", epochs=4, seed=0, size=(64, 64), device="cpu", quant="compressed"),
}


def quant_of(name: str | None):
    """The weight compression a case names (kept as a name in CASES so that it reads as data)."""
    from dnerv_codec.config import QuantConfig

    if name is None:
        return None
    assert name == "compressed"
    return QuantConfig(bits=8, sparsity=0.2, finetune_frac=0.25, bit_choices=(4, 5, 6, 8))


def encode_case(name: str, output: Path) -> None:
    import dnerv_codec as dn

    kwargs = dict(CASES[name])
    kwargs["quant"] = quant_of(kwargs.pop("quant", None))
    dn.encode(INPUT, output, force=True, **kwargs)


def sections(path: Path) -> dict[str, bytes]:
    """Each section's bytes, by tag (the container's own framing aside)."""
    from dnerv_codec.archive.container import ContainerReader
    from dnerv_codec.archive.format import MAGIC, READABLE_VERSIONS

    with ContainerReader(path, MAGIC, READABLE_VERSIONS) as reader:
        return {tag: reader.read(tag) for tag in reader.sections}


def versions() -> dict[str, str]:
    return {"torch": torch.__version__, "av": av.__version__}


def cut_input() -> None:
    """The first FRAMES frames of SOURCE, losslessly (FFV1 RGB), at their own size and rate."""
    from dnerv_codec.video.read import iter_frames
    from dnerv_codec.video.write import write_video

    with av.open(str(SOURCE)) as c:
        fps = float(c.streams.video[0].average_rate)
    frames = [f for _, f in zip(range(FRAMES), iter_frames(SOURCE), strict=False)]
    write_video(INPUT, frames, fps)


def main() -> int:
    torch.set_num_threads(1)
    if sys.argv[1:2] == ["--case"]:
        encode_case(sys.argv[2], Path(sys.argv[3]))
        return 0
    GOLDEN.mkdir(exist_ok=True)
    if not INPUT.exists():
        cut_input()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    record = {"versions": versions(), "commit": commit.stdout.strip(), "cases": {}}
    for name in CASES:
        archive = GOLDEN / f"{name}.dnv"
        encode_case(name, archive)
        record["cases"][name] = {"bytes": archive.stat().st_size, "sections": sorted(sections(archive))}
        print(f"{archive.relative_to(ROOT)}: {archive.stat().st_size:,} bytes")
    (GOLDEN / "GOLDEN.json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
