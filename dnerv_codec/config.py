"""Documented, frozen configuration dataclasses and the table of named presets.

What decode needs (ModelConfig, KeyframeConfig, QuantConfig) travels inside every archive as JSON;
FitConfig only shapes the fitting and is saved with every checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

MODEL_KINDS = ("dnerv", "nerv")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the D-NeRV network (see docs/architecture.md for the diagram).

    The spatial size is not part of it: the network is built for a working size (height, width)
    whose sides are multiples of prod(strides).
    """

    fc_dim: int = 32
    """C0: channels of the stem output at the coarsest resolution (model width)."""
    strides: tuple[int, ...] = (2, 2, 2, 2, 2)
    """Upsampling factor of each decoder stage, coarsest first (reference: 4,2,2,2,2)."""
    enc_dim: int = 16
    """Channels of the keyframe content encoder (reference: 64)."""
    stem_hidden: int = 64
    """Hidden width of the stem MLP on the frame-index encoding (reference: 512)."""
    pe_levels: int = 16
    """Number L of sin/cos frequencies b**i * pi of the frame-index encoding (reference: 240)."""
    pe_base: float = 1.25
    """Base b of those frequencies."""
    min_width: int = 8
    """Lowest channel count of a decoder stage (reference: 32)."""
    expansion: int = 1
    """Output channels of the first decoder stage = expansion * fc_dim (reference: 2, i.e. C0 * 2);
    later stages take max(round(previous / stride), min_width). Archives written before this field
    existed load with the default, 1."""
    clip_len: int = 8
    """Frames per clip T; keyframes sit every T frames."""
    blend_residual: bool = True
    """Predict a correction on top of the distance-weighted blend of the warped keyframes, with the
    last conv of every flow head and of the RGB head zero-initialised (measured better:
    docs/decisions.md). False gives the reference network's plain RGB head (conv1x1 to
    (C + 3) // 4 channels, GELU, conv3x3 to RGB, as its flow heads)."""
    kind: str = "dnerv"
    """'dnerv' (keyframes + frame positions -> frames) or 'nerv', the NeRV baseline: the frame's
    position in the whole collection in, the frame out, no keyframes (model/nerv.py). enc_dim,
    blend_residual and the keyframes are unused by 'nerv'. Archives without the field are 'dnerv'."""

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ConfigError(f"model kind must be one of {', '.join(MODEL_KINDS)}, got {self.kind!r}")
        if self.fc_dim < 1 or self.enc_dim < 1 or self.stem_hidden < 1 or self.min_width < 1:
            raise ConfigError("model widths must be positive")
        if not self.strides or any(s < 1 for s in self.strides):
            raise ConfigError(f"strides must be positive integers, got {self.strides}")
        if not 1 <= self.clip_len <= 64:
            raise ConfigError(f"clip length must be in 1..64, got {self.clip_len}")
        if self.pe_levels < 1:
            raise ConfigError("pe_levels must be at least 1")
        if self.expansion < 1:
            raise ConfigError(f"expansion must be at least 1, got {self.expansion}")

    @property
    def uses_keyframes(self) -> bool:
        return self.kind == "dnerv"

    @property
    def size_multiple(self) -> int:
        """Working height and width must be multiples of this (the product of the strides)."""
        m = 1
        for s in self.strides:
            m *= s
        return m


MAX_KEYFRAME_GOP = 8
MAX_BPP = 24.0  # bits per pixel of raw 8-bit RGB: the most any target or budget may be


@dataclass(frozen=True)
class KeyframeCodec:
    """What the settings, rate control and the CLI know of one keyframe codec: the range and sense
    of its quality option, its default quality, and whether it codes groups."""

    quality_name: str
    """What `KeyframeConfig.quality` means for this codec ('CRF', 'quality')."""
    min_quality: int
    max_quality: int
    lower_is_better: bool
    default_quality: int
    """The quality taken when a user picks this codec without a quality."""
    intra_only: bool
    """Every keyframe coded alone: no groups (gop 1)."""

    def qualities_best_first(self) -> range:
        """Every quality, from the best (most bytes) to the worst."""
        if self.lower_is_better:
            return range(self.min_quality, self.max_quality + 1)
        return range(self.max_quality, self.min_quality - 1, -1)

    def describe(self) -> str:
        better = "lower" if self.lower_is_better else "higher"
        return f"{self.quality_name} {self.min_quality}-{self.max_quality}, {better} is better"


KEYFRAME_CODECS: dict[str, KeyframeCodec] = {
    "av1": KeyframeCodec("CRF", 0, 63, lower_is_better=True, default_quality=30, intra_only=False),
    "hevc": KeyframeCodec("CRF", 0, 51, lower_is_better=True, default_quality=30, intra_only=False),
    "h264": KeyframeCodec("CRF", 0, 51, lower_is_better=True, default_quality=30, intra_only=False),
    # dnerv_codec/imagecodec; 24: about the PSNR of HEVC at CRF 30 (docs/keyframe-codecs.md)
    "imagecodec": KeyframeCodec(
        "quality", 0, 100, lower_is_better=False, default_quality=24, intra_only=True
    ),
}
"""The keyframe codecs (how they compare: docs/keyframe-codecs.md)."""


def _keyframe_quality_help() -> str:
    """The --keyframe-quality help: each quality scale and the codecs that use it."""
    scales: dict[str, list[str]] = {}
    for name, codec in KEYFRAME_CODECS.items():
        scales.setdefault(codec.describe(), []).append(name)
    return "Keyframe quality in the codec's own scale: " + "; ".join(
        f"{' and '.join(names)}: {scale}" for scale, names in scales.items()
    )


KEYFRAME_CODEC_HELP = (
    f"One of {', '.join(KEYFRAME_CODECS)}; imagecodec is dnerv's own coder, intra only (gop 1). "
    "How they compare: docs/keyframe-codecs.md."
)
KEYFRAME_QUALITY_HELP = _keyframe_quality_help() + "."


def keyframe_codec(name: str) -> KeyframeCodec:
    try:
        return KEYFRAME_CODECS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"keyframe codec must be one of {', '.join(KEYFRAME_CODECS)}, got {name!r}"
        ) from None


@dataclass(frozen=True)
class KeyframeConfig:
    """How keyframes are coded: per video, in groups of `gop` keyframes (an intra frame, then
    P-frames), so any clip decodes from at most `gop` keyframes of its video."""

    codec: str = "hevc"
    """'hevc' (libx265, 4:4:4), 'h264' (libx264, 4:4:4), 'av1' (libsvtav1, 4:2:0 only, decoded
    with dav1d) or 'imagecodec' (dnerv_codec/imagecodec, intra only). HEVC is the default: it
    needs the fewest bytes at equal keyframe PSNR (docs/keyframe-codecs.md)."""
    quality: int = 30
    """In the codec's own scale (KEYFRAME_CODECS): the CRF of AV1 (0-63), HEVC and H.264 (0-51),
    lower is better; imagecodec's quality 0-100, higher is better."""
    gop: int = 1
    """Keyframes per coding group, 1..8 (1 for imagecodec). Each video's keyframes are cut into
    groups of `gop` from its first; a group is an intra frame then P-frames, and decoding keyframe k
    decodes its group from the start up to k. 1 is all-intra (every keyframe decodes alone): what
    archives written before this field existed load as. The presets use 8: far fewer keyframe bytes
    than all-intra for at most 8 keyframes decoded per keyframe (docs/keyframe-codecs.md)."""

    def __post_init__(self) -> None:
        codec = keyframe_codec(self.codec)
        lo, hi = codec.min_quality, codec.max_quality
        if not lo <= self.quality <= hi:
            raise ConfigError(f"{self.codec} keyframe quality must be in {lo}..{hi}, got {self.quality}")
        if (
            isinstance(self.gop, bool)
            or not isinstance(self.gop, int)
            or not 1 <= self.gop <= MAX_KEYFRAME_GOP
        ):
            raise ConfigError(f"keyframe gop must be an integer in 1..{MAX_KEYFRAME_GOP}, got {self.gop!r}")
        if codec.intra_only and self.gop != 1:
            raise ConfigError(
                f"{self.codec} codes every keyframe alone: keyframe gop must be 1, got {self.gop}"
            )


def keyframe_settings(
    preset: KeyframeConfig, codec: str | None = None, quality: int | None = None, gop: int | None = None
) -> KeyframeConfig:
    """The preset's keyframe settings with the user's changes (None: not given). Another codec than
    the preset's comes with its own default quality, and an intra-only codec with gop 1 instead of
    the preset's; a gop the user gives is kept (and refused by KeyframeConfig if it does not fit)."""
    codec = codec or preset.codec
    spec = keyframe_codec(codec)
    if quality is None:
        quality = preset.quality if codec == preset.codec else spec.default_quality
    if gop is None:
        gop = 1 if spec.intra_only else preset.gop
    return KeyframeConfig(codec=codec, quality=quality, gop=gop)


LOSSES = ("l1_ssim", "mse_ssim", "mse", "l1")


@dataclass(frozen=True)
class FitConfig:
    """The fitting schedule: AdamW, linear warm-up from 0.1 x lr, then cosine decay to zero."""

    epochs: int | None = 100
    """Passes over all clips; with time_limit also set, the schedule follows the clock and
    this is an upper bound."""
    time_limit: float | None = None
    """Wall-clock budget of the fit in minutes; the learning-rate schedule spans it."""
    lr: float = 5e-3
    """Peak learning rate (small networks take larger ones than the reference's 5e-4)."""
    warmup_frac: float = 0.1
    """Fraction of the schedule spent warming up."""
    batch_size: int = 2
    """Clips per optimisation step (global, over all processes)."""
    loss: str = "l1_ssim"
    """'l1_ssim' = 0.7 L1 + 0.3 (1 - SSIM); 'mse_ssim' = MSE + 0.03 (1 - SSIM); 'mse'; 'l1'."""
    seed: int = 0
    """Seed of initialisation and data order: with epochs set, a CPU fit is reproducible."""
    checkpoint_min: float = 5.0
    """Minutes between checkpoints (one is also written on Ctrl-C)."""

    def __post_init__(self) -> None:
        if self.epochs is None and self.time_limit is None:
            raise ConfigError("give a number of epochs or a time limit")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ConfigError(f"time limit must be positive, got {self.time_limit}")
        if not self.lr > 0 or not 0 <= self.warmup_frac < 1:
            raise ConfigError("lr must be positive and warmup_frac in [0, 1)")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")


@dataclass(frozen=True)
class QuantConfig:
    """Weight compression after the fit: pruning, quantization-aware fine-tuning, per-tensor bit
    depths (dnerv_codec/compress/stage.py); then per output channel, 2**bits - 1 intervals.

    Decode reads `bits` and `tensor_bits` only; the other fields record how the encoder got there.
    Archives written before these fields existed load with the defaults (all tensors at `bits`)."""

    bits: int = 8
    """Bit depth of every tensor, unless `tensor_bits` says otherwise."""
    tensor_bits: tuple[int, ...] | None = None
    """Bit depth of each learned tensor, in named_parameters() order; None: all at `bits`."""
    sparsity: float = 0.0
    """Fraction of the conv/linear weights (ndim >= 2) set to exactly 0 by global magnitude pruning
    before the fine-tune; they stay 0 in the file."""
    finetune_frac: float = 0.0
    """Share of the fit budget (time limit, else steps) given to the compression fine-tune (with the
    pruning mask fixed and the quantizer in the loop); the fit itself gets the rest, so the whole
    fit + fine-tune stays within the time limit. 0 quantizes the fitted weights as they are."""
    bit_choices: tuple[int, ...] = ()
    """Bit depths tried per tensor (chosen by measured rate and distortion); () keeps `bits`."""
    rd_slope: float = 6.0
    """Trade-off of the bit-depth choice: dB of PSNR that doubling the whole archive is worth
    (the codec's RD slope); a lower depth is taken where its measured PSNR loss is smaller than
    the bytes it saves are worth."""

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 16:
            raise ConfigError(f"weight bits must be in 2..16, got {self.bits}")
        for b in (self.tensor_bits or ()) + tuple(self.bit_choices):
            if isinstance(b, bool) or not isinstance(b, int) or not 2 <= b <= 16:
                raise ConfigError(f"weight bits must be integers in 2..16, got {b!r}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ConfigError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if not 0.0 <= self.finetune_frac < 1.0:
            raise ConfigError(f"finetune_frac must be in [0, 1), got {self.finetune_frac}")
        if not self.rd_slope > 0:
            raise ConfigError(f"rd_slope must be positive, got {self.rd_slope}")

    def bits_of(self, count: int) -> list[int]:
        """The bit depth of each of `count` tensors (ConfigError if tensor_bits has another length)."""
        if self.tensor_bits is None:
            return [self.bits] * count
        if len(self.tensor_bits) != count:
            raise ConfigError(f"tensor_bits has {len(self.tensor_bits)} entries for {count} tensors")
        return list(self.tensor_bits)


@dataclass(frozen=True)
class Preset:
    """A named bundle of settings. The model width follows the data: fc_dim is chosen so that the
    weights cost about `weight_bpp` bits per pixel of the whole collection (clamped to
    [min_fc_dim, max_fc_dim]), because weight bits are shared by every frame."""

    name: str
    description: str
    weight_bpp: float
    model: ModelConfig
    keyframes: KeyframeConfig
    fit: FitConfig
    quant: QuantConfig = field(default_factory=QuantConfig)
    min_fc_dim: int = 8
    max_fc_dim: int = 256
    default_size: tuple[int, int] = (256, 320)
    """Working (height, width) when the inputs differ in size and no --size is given."""


# The weight compression of the fast, default and quality presets; tiny stays plain (measured:
# docs/decisions.md#measured-reasons-behind-defaults-in-the-code).
COMPRESS = QuantConfig(bits=8, finetune_frac=0.2, bit_choices=(4, 5, 6, 8))

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="tiny",
            description="seconds-long smoke fits: tests and the bundled sample job",
            weight_bpp=0.01,
            model=ModelConfig(fc_dim=8, enc_dim=8, stem_hidden=16, pe_levels=8, min_width=4),
            keyframes=KeyframeConfig(codec="hevc", quality=36, gop=8),
            fit=FitConfig(epochs=3, lr=5e-3, batch_size=2),
            max_fc_dim=16,
        ),
        Preset(
            name="fast",
            description="a few minutes on a CPU; small network",
            weight_bpp=0.01,
            model=ModelConfig(),
            keyframes=KeyframeConfig(codec="hevc", quality=32, gop=8),
            fit=FitConfig(epochs=200, time_limit=3.0),
            quant=COMPRESS,
        ),
        Preset(
            name="default",
            description="balanced: about 8 minutes of fitting on a 2-core CPU",
            weight_bpp=0.015,
            model=ModelConfig(),
            keyframes=KeyframeConfig(codec="hevc", quality=30, gop=8),
            fit=FitConfig(epochs=2000, time_limit=8.0),
            quant=COMPRESS,
        ),
        Preset(
            name="nerv",
            description="the NeRV baseline (no keyframes; all bits in the network), default's fit budget",
            weight_bpp=0.05,
            model=ModelConfig(kind="nerv", pe_levels=40, stem_hidden=64),
            keyframes=KeyframeConfig(codec="hevc", quality=30),
            fit=FitConfig(epochs=2000, time_limit=8.0),
            quant=COMPRESS,
        ),
        Preset(
            name="quality",
            description="wider network and better keyframes; meant for a GPU",
            weight_bpp=0.03,
            model=ModelConfig(enc_dim=32, stem_hidden=128, pe_levels=32, min_width=16),
            keyframes=KeyframeConfig(codec="hevc", quality=24, gop=8),
            fit=FitConfig(epochs=400, lr=2e-3, batch_size=8),
            quant=COMPRESS,
        ),
    )
}


def _reference_shape(fc_dim: int, strides: tuple[int, ...]) -> ModelConfig:
    return ModelConfig(
        fc_dim=fc_dim,
        strides=strides,
        enc_dim=64,
        stem_hidden=512,
        pe_levels=240,
        pe_base=1.25,
        min_width=32,
        clip_len=8,
        expansion=2,
        blend_residual=False,
    )


REFERENCE_SHAPES: dict[str, ModelConfig] = {
    # The published implementation's network, exactly: 480 frame-index features, stem hidden 512,
    # content encoder width 64, stage 0 of C0 * 2 channels, lowest width 32, clips of 8 frames,
    # no blend residual. 3,865,007 parameters at 128x160; 15,955,472 at 256x320 (its UVG "S").
    "reference-128x160": _reference_shape(64, (4, 2, 2, 2)),
    "reference-256x320": _reference_shape(166, (4, 2, 2, 2, 2)),
}
"""Named model shapes of the reference implementation (benchmarks and tests name them)."""


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict[str, Any]):
    """Rebuild a config dataclass from to_dict() output, rejecting unknown or missing fields."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"bad {cls.__name__}: {exc}") from None
