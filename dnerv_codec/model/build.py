"""The model a ModelConfig names (cfg.kind), and its parameter count."""

from __future__ import annotations

import functools

import torch

from ..config import ModelConfig
from .base import FrameModel
from .dnerv import DNeRV
from .nerv import NeRV

MODELS: dict[str, type[FrameModel]] = {"dnerv": DNeRV, "nerv": NeRV}


def build_model(cfg: ModelConfig, height: int, width: int) -> FrameModel:
    """A freshly initialised network of kind cfg.kind for frames of height x width."""
    return MODELS[cfg.kind](cfg, height, width)


@functools.lru_cache(maxsize=1024)
def count_parameters(cfg: ModelConfig, height: int, width: int) -> int:
    """Number of learned parameters of build_model(cfg, height, width), built on 'meta' (no weights)."""
    with torch.device("meta"):
        model = build_model(cfg, height, width)
    return sum(p.numel() for p in model.parameters())
