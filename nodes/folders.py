"""Model folders of the pack, registered in ComfyUI's ``folder_paths`` with extension filters."""

from __future__ import annotations

import os

import folder_paths

# folder name -> file extensions listed in the loaders' drop-downs.
PACK_FOLDERS: dict[str, frozenset[str]] = {
    "gtasr": frozenset({".pth", ".pt", ".safetensors"}),
}


def register_folders() -> None:
    """Add ``models/<name>`` for each pack folder, keeping paths from ``extra_model_paths.yaml``.

    ``add_model_folder_path`` would create a new key with an empty extension set (= no filter,
    every file listed), so the entry is written directly with our extensions.
    """
    for name, exts in PACK_FOLDERS.items():
        default = os.path.join(folder_paths.models_dir, name)
        paths, old_exts = folder_paths.folder_names_and_paths.get(name, ([], set()))
        paths = list(paths)
        if default not in paths:
            paths.append(default)
        folder_paths.folder_names_and_paths[name] = (paths, set(old_exts) | set(exts))


def full_path(folder: str, name: str) -> str:
    """Absolute path of a file chosen in a loader's drop-down, or a clear error naming the folders."""
    path = folder_paths.get_full_path(folder, name)
    if path is None:
        dirs = ", ".join(folder_paths.get_folder_paths(folder)) or f"models/{folder}"
        raise FileNotFoundError(f"model file {name!r} not found in the '{folder}' folders ({dirs}).")
    return path


def file_list(folder: str) -> list[str]:
    return folder_paths.get_filename_list(folder)
