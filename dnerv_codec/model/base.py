"""What every frame model shares: its working size, the per-channel colour normalisation and the
learned state that the archive stores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from ..errors import ConfigError


class FrameModel(nn.Module):
    """Base of DNeRV and NeRV: built for frames of one working size (height, width), both multiples
    of prod(cfg.strides); the coarsest feature map is fc_h x fc_w. mean/std are per-archive
    constants (buffers, not learned): state_dict() and learned_state() hold the parameters only."""

    def __init__(self, cfg: ModelConfig, height: int, width: int) -> None:
        super().__init__()
        m = cfg.size_multiple
        if height < m or width < m or height % m or width % m:
            raise ConfigError(
                f"frame size {height}x{width} must be a positive multiple of {m} (prod of strides)"
            )
        self.cfg, self.height, self.width = cfg, height, width
        self.fc_h, self.fc_w = height // m, width // m
        self.register_buffer("mean", torch.full((3,), 0.5), persistent=False)
        self.register_buffer("std", torch.full((3,), 0.25), persistent=False)

    @torch.no_grad()
    def set_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Set the per-channel colour normalisation (3 values each, std > 0)."""
        mean_t = torch.as_tensor(mean, dtype=torch.float64).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float64).flatten()
        if mean_t.numel() != 3 or std_t.numel() != 3 or not bool((std_t > 0).all()):
            raise ConfigError(f"normalisation needs 3 means and 3 positive stds, got {mean}, {std}")
        self.mean.copy_(mean_t)
        self.std.copy_(std_t)

    def layer_classes(self) -> list[tuple[str, list[nn.Module]]]:
        """The model's weight classes, in the order `dnerv info` lists them, each with the layers
        whose weights belong to it (subclasses name their own)."""
        return []

    def tensor_groups(self) -> dict[str, list[str]]:
        """Learned tensor names by class, in named_parameters() order within each class: 'biases'
        first (every bias, whatever its layer), then layer_classes(), then 'other' for weights of
        no listed layer; classes without a tensor are left out."""
        owner: dict[int, str] = {}
        for label, layers in self.layer_classes():
            for layer in layers:
                for p in layer.parameters():
                    owner.setdefault(id(p), label)
        groups: dict[str, list[str]] = {"biases": []}
        groups.update((label, []) for label, _ in self.layer_classes())
        groups["other"] = []
        for name, p in self.named_parameters():
            label = "biases" if name.rsplit(".", 1)[-1] == "bias" else owner.get(id(p), "other")
            groups[label].append(name)
        return {label: names for label, names in groups.items() if names}

    def learned_state(self) -> dict[str, Tensor]:
        """The parameters only, in named_parameters() order (detached; they share storage)."""
        return {name: p.detach() for name, p in self.named_parameters()}

    @torch.no_grad()
    def load_learned_state(self, state: Mapping[str, Tensor]) -> None:
        """Copy parameters from learned_state() output; names and shapes must match exactly."""
        params = dict(self.named_parameters())
        if set(state) != set(params):
            missing, extra = sorted(set(params) - set(state)), sorted(set(state) - set(params))
            raise ConfigError(f"learned state does not fit this model: missing {missing}, unexpected {extra}")
        for name, p in params.items():
            if tuple(state[name].shape) != tuple(p.shape):
                raise ConfigError(
                    f"learned state {name}: shape {tuple(state[name].shape)}, expected {tuple(p.shape)}"
                )
            p.copy_(state[name])
