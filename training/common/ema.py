"""Exponential moving average of a model's trainable parameters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

__all__ = ["EMA"]


class EMA:
    """Exponential moving average of named parameters, kept in float32: ``s <- decay * s + (1 - decay) * p``."""

    def __init__(self, named_params: Iterable[tuple[str, torch.nn.Parameter]], decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay={decay}: must be in [0, 1), e.g. 0.999")
        self.decay = decay
        self.shadow = {name: p.detach().float().clone() for name, p in named_params}

    @torch.no_grad()
    def update(self, named_params: Iterable[tuple[str, torch.nn.Parameter]]) -> None:
        for name, p in named_params:
            self.shadow[name].lerp_(p.detach().float(), 1.0 - self.decay)

    @torch.no_grad()
    def copy_to(self, named_params: Iterable[tuple[str, torch.nn.Parameter]]) -> None:
        for name, p in named_params:
            p.copy_(self.shadow[name].to(p.dtype))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        if set(state) != set(self.shadow):
            raise ValueError(
                f"EMA state has {len(state)} tensors, expected {len(self.shadow)} "
                f"(e.g. missing {sorted(set(self.shadow) - set(state))[:3]})"
            )
        for name, value in state.items():
            self.shadow[name].copy_(value.float())
