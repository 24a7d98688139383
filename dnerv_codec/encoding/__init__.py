"""Encode a collection of videos into one archive, as a pipeline of stages (pipeline.encode).

    EncodeOptions ──► plan.read_options ──► Files, Configs, Sizing   (the only reader of options)
    inputs     find the videos                                         ──► Inputs
    frames     decode them at the working size into the frame cache    ──► Frames (clip layout)
    plan       rate plan or network width, fingerprint                 ──► Plan
    keyframes  code them, cache the decoded ones, colour statistics    ──► Keyframes
    fit        fit the network (checkpoints, --resume, Ctrl-C)         ──► Fitted
    weights    compress (prune, bit depths, fine-tune) and pack them   ──► Weights
    archive    write the file                                          ──► ArchiveSize
    report     decode it back and measure                              ──► EncodeReport

Each stage takes and returns small frozen values, does its own rank-0 work under torchrun and
shares the result with the other ranks (fit/distributed.py), so each can be run alone.
"""
