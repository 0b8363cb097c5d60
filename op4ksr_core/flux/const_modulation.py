"""Constant AdaLN modulation for the FLUX transformer (diffusers ``FluxTransformer2DModel``).

Every AdaLN-Zero modulation of FLUX, ``linear(silu(temb))`` in ``norm1`` / ``norm1_context`` (double blocks),
``norm`` (single blocks) and ``norm_out``, depends only on ``temb = embed(t, guidance, pooled text)``. OP4KSR
runs one step at a fixed t*, guidance and an empty prompt, so all its modulation vectors (77 for FLUX.1-dev: 2 per double block, 1 per single block, norm_out) are constants: compute
them once, and the 3.25 B modulation weights (6.05 GiB in bf16 for FLUX.1-dev) need not stay on the GPU.
Bit-exact: the stored vectors are the very outputs of those linears. A pre-forward check raises if the
transformer is later called with another timestep, guidance or pooled vector.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["ConstantModulation", "FrozenModulation", "freeze_modulation", "modulation_names"]

_MODULATION = re.compile(r"(^|\.)(norm1|norm1_context|norm)\.linear$|^norm_out\.linear$")


class ConstantModulation(nn.Module):
    """Stands in for a modulation ``nn.Linear``: returns the stored output [1, F] for every batch row."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("value", value.detach()[:1].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value.expand(x.shape[0], -1)


def modulation_names(transformer: nn.Module) -> list[str]:
    """Qualified names of the AdaLN modulation linears of a diffusers FLUX transformer."""
    return [n for n, m in transformer.named_modules() if isinstance(m, nn.Linear) and _MODULATION.search(n)]


def _key(kwargs: dict[str, Any]) -> tuple[torch.Tensor | None, ...]:
    return tuple(
        None if kwargs.get(k) is None else kwargs[k].detach().float().cpu()
        for k in ("timestep", "guidance", "pooled_projections")
    )


def _same(a: tuple[torch.Tensor | None, ...], b: tuple[torch.Tensor | None, ...]) -> bool:
    for x, y in zip(a, b, strict=True):
        if (x is None) != (y is None):
            return False
        # Compare the first row: constant modulation is per (t, guidance, pooled), whatever the batch size.
        if x is not None and not torch.equal(x.reshape(x.shape[0], -1)[:1], y.reshape(y.shape[0], -1)[:1]):
            return False
    return True


class FrozenModulation:
    """Handle returned by :func:`freeze_modulation`: ``restore()`` puts the original linears back."""

    def __init__(
        self, transformer: nn.Module, originals: dict[str, nn.Linear], device: torch.device, hook: Any
    ) -> None:
        self.transformer, self.originals, self.device, self._hook = transformer, originals, device, hook

    def restore(self) -> None:
        for name, linear in self.originals.items():
            _set(self.transformer, name, linear.to(self.device))
        self._hook.remove()
        self.originals = {}


def _set(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


@torch.no_grad()
def freeze_modulation(
    transformer: nn.Module, run: Callable[[], Any], offload: bool = True
) -> FrozenModulation:
    """Capture every modulation output during ``run()`` (one forward at the fixed t*, guidance, pooled), then
    replace those linears by :class:`ConstantModulation`. ``offload`` moves the originals to the CPU.

    The forward ``run`` makes is recorded; a later call with another timestep, guidance or pooled vector
    raises ``ValueError`` (call ``restore()`` first).
    """
    names = modulation_names(transformer)
    if not names:
        raise ValueError("no AdaLN modulation linears found: expected a diffusers FluxTransformer2DModel")
    captured: dict[str, torch.Tensor] = {}
    seen: dict[str, tuple] = {}

    def record(_m: nn.Module, _a: tuple, kwargs: dict[str, Any]) -> None:
        seen.setdefault("key", _key(kwargs))

    handles = [transformer.register_forward_pre_hook(record, with_kwargs=True)]
    for n in names:
        handles.append(
            transformer.get_submodule(n).register_forward_hook(
                lambda _m, _i, out, n=n: captured.__setitem__(n, out)
            )
        )
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    if len(captured) != len(names) or "key" not in seen:
        raise ValueError("run() did not call the transformer's forward (with keyword arguments)")
    device = next(transformer.parameters()).device
    originals = {}
    for n in names:
        linear = transformer.get_submodule(n)
        originals[n] = linear.to("cpu") if offload else linear
        _set(transformer, n, ConstantModulation(captured[n]))
    key = seen["key"]

    def check(_m: nn.Module, _a: tuple, kwargs: dict[str, Any]) -> None:
        if not _same(_key(kwargs), key):
            raise ValueError(
                "the transformer's AdaLN modulation is frozen for another timestep, guidance or "
                "pooled text vector; call restore() on the FrozenModulation handle first"
            )

    return FrozenModulation(
        transformer, originals, device, transformer.register_forward_pre_hook(check, with_kwargs=True)
    )
