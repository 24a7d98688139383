"""`dnerv bench`: rate-distortion and speed of dnerv against standard codecs and the keyframe blend.

codecs.py (x264, x265, SVT-AV1 through PyAV), bdrate.py (Bjontegaard deltas, PCHIP), run.py (the
cached benchmark run), plot.py (matplotlib RD curves)."""
