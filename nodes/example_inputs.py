"""The templates' example input images, copied into ComfyUI's input folder at start-up.

The bundled templates (``example_workflows/*.json``) load ``sr4k_example_*.png`` with core ``LoadImage``,
which only lists files in the input folder; the pack ships them in ``example_workflows/inputs/`` so every
template runs as opened in a fresh ComfyUI. A file already in the input folder is never replaced: it may be
the user's own image of the same name.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import folder_paths

log = logging.getLogger(__name__)

EXAMPLE_INPUTS = Path(__file__).resolve().parents[1] / "example_workflows" / "inputs"


def install_example_inputs(source: Path = EXAMPLE_INPUTS, target: Path | None = None) -> list[Path]:
    """Copy each ``source/*.png`` into ``target`` (default: ComfyUI's input folder) unless the name exists.

    Returns the files written. Never raises: a read-only or missing input folder only means the templates
    ask for their image, so it is logged and the pack still loads.
    """
    target = Path(target if target is not None else folder_paths.get_input_directory())
    written = []
    for src in sorted(source.glob("*.png")):
        dst = target / src.name
        if os.path.lexists(dst):
            continue
        try:
            target.mkdir(parents=True, exist_ok=True)
            data = src.read_bytes()
            # Exclusive create: a file that appeared since the check (or a dangling link) is left alone.
            with open(dst, "xb") as f:
                f.write(data)
        except FileExistsError:
            continue
        except OSError as err:
            log.warning(
                "sr4k: could not copy the example input %s to %s (%s); templates that load it will "
                "ask for an image",
                src.name,
                target,
                err,
            )
            continue
        written.append(dst)
    if written:
        log.info("sr4k: copied %d example input image(s) for the templates into %s", len(written), target)
    return written
