"""The pack's V3 extension: the list of node classes ComfyUI registers."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .color import ColorCorrect

NODES: list[type[io.ComfyNode]] = [ColorCorrect]


class SR4KExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
