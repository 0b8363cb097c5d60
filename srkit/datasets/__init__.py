"""4K SR benchmark datasets: a seeded synthetic builder, DIV4K-50 and LR-only folders.

Layouts (``<stem>`` = file name without extension; LR and HR files pair by stem):

* **synthetic** (:func:`build_synthetic_benchmark`)::

      out_dir/manifest.json          sha256 of every file, seeds, degradation parameters
      out_dir/HR/<stem>.png          the HR images (re-encoded losslessly as 8-bit PNG)
      out_dir/LR_x4/<stem>.png       Real-ESRGAN second-order degradation at x4 (srkit.degradations)
      out_dir/LR_x16/<stem>.png      ... at x16

* **DIV4K-50** (4KAgent, arXiv 2507.07105; HF dataset ``YSZuo/DIV4K-50``; docs/op4ksr.md §6):
  download it by hand and arrange it as ``root/HQ/<stem>.png`` (4096x4096) and ``root/LQ/<stem>.png``
  (256x256), 50 pairs, x16. ``HR``/``GT`` and ``LR`` are accepted for the folder names.
* **real-world LR only**: a folder of LR images (no ground truth); only no-reference metrics apply.

Images are float tensors [3, H, W] in [0, 1] (RGB; alpha dropped, grey replicated; ``srkit.image_io``).
Modules: ``common`` (records, listing, pairing checks), ``synthetic`` (builder and loader), ``folders``
(DIV4K-50, paired and LR-only folders, auto-detection). Every public name is importable from here.
"""

from .common import (
    HR_DIR_NAMES,
    LR_DIR_NAMES,
    Dataset,
    DatasetError,
    ImagePair,
    check_pair_sizes,
    list_images,
    pair_by_stem,
)
from .folders import DIV4K50, load_dataset, load_div4k50, load_lr_folder
from .synthetic import (
    HR_DIR,
    MANIFEST,
    MANIFEST_FORMAT,
    MANIFEST_VERSION,
    build_synthetic_benchmark,
    image_seed,
    load_synthetic_benchmark,
    lr_dir_name,
    read_manifest,
)

__all__ = [
    "DIV4K50",
    "Dataset",
    "DatasetError",
    "HR_DIR",
    "HR_DIR_NAMES",
    "ImagePair",
    "LR_DIR_NAMES",
    "MANIFEST",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "build_synthetic_benchmark",
    "check_pair_sizes",
    "image_seed",
    "list_images",
    "load_dataset",
    "load_div4k50",
    "load_lr_folder",
    "load_synthetic_benchmark",
    "lr_dir_name",
    "pair_by_stem",
    "read_manifest",
]
