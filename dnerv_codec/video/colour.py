"""dnerv's colour conventions, defined once: the BT.709 tag of every stream it codes, and the matrix
it assumes for untagged video."""

from __future__ import annotations

from av.video.reformatter import ColorRange, Colorspace

BT709 = 1  # the AVColorSpace, AVColorPrimaries and AVColorTransferCharacteristic value of BT.709
UNSPECIFIED = 2  # AVCOL_SPC_UNSPECIFIED: the stream carries no matrix tag


def tag_bt709(codec_context, color_range: ColorRange) -> None:
    """Tag an encoder's output as BT.709 (matrix, primaries, transfer) in `color_range`
    (ColorRange.JPEG: full, ColorRange.MPEG: limited)."""
    codec_context.colorspace = codec_context.color_primaries = codec_context.color_trc = BT709
    codec_context.color_range = color_range


def default_matrix(height: int, width: int) -> Colorspace:
    """The matrix assumed for an untagged YUV frame: BT.709 for HD, BT.601 for SD (mpv's rule)."""
    return Colorspace.ITU709 if width > 1024 or height > 576 else Colorspace.ITU601
