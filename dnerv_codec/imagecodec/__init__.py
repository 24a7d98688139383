"""dnerv's own still-image (keyframe) coder: BT.709 Y'CbCr (4:2:0 below quality 28, 4:4:4 above), 8x8 DCT, RDO
quantisation, MED-predicted DC, an encoder-tuned deblocking filter, and adaptive context models
whose integers are entropy coded with constriction's range coder.

    data = encode_image(rgb, quality)        # uint8 [H, W, 3], quality 0..100 -> bytes
    rgb = decode_image(data)                  # ArchiveError if the bytes are not a coded image

Modules: color (colour and chroma resampling), transform (DCT, zigzag), quantize (steps, RDOQ,
reconstruction offsets), dcpred (DC prediction), deblock (the loop-free deblocking filter), tokens
(integer -> token + raw bits), models (adaptive counts), coder (contexts and the range coder),
bitstream (the byte format), codec (encode / decode). `--keyframe-codec imagecodec` codes an
archive's keyframes with it (keyframes.py); its bitstream: docs/format.md; how it compares with the
other keyframe codecs: docs/keyframe-codecs.md.
"""

from .codec import decode_image, encode, encode_image

__all__ = ["decode_image", "encode", "encode_image"]
