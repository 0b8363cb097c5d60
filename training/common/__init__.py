"""Helpers shared by the sr4k trainers, one module per concern; every name is re-exported here.

- :mod:`.config_files`: config files + ``--key value`` CLI overrides -> typed frozen dataclasses;
- :mod:`.seeds`: deterministic seeds;
- :mod:`.checkpoints`: trainable-only accelerate checkpoints and resume;
- :mod:`.ema`: the EMA of trainable parameters;
- :mod:`.loop`: the shared parts of a training step (data loader, update, logging and checkpoints);
- :mod:`.sampler`: the resumable stream of (image, seed) keys;
- :mod:`.setup`: the start of a run (accelerator, optimizer and warm-up, prepare + resume + EMA, data stream).
"""

from .checkpoints import (
    CHECKPOINT_PREFIX,
    EXTRA_FILE,
    STATE_FILE,
    checkpoint_dir,
    list_checkpoints,
    prune_checkpoints,
    register_trainable_only_state,
    resume_checkpoint,
    save_checkpoint,
)
from .config_files import (
    T,
    build_dataclass,
    config_to_dict,
    load_config_file,
    merge_settings,
    parse_overrides,
)
from .ema import EMA
from .loop import (
    LoopConfig,
    add_terms,
    check_loop_settings,
    data_loader,
    optimizer_step,
    report_and_checkpoint,
    run_trainer_cli,
    start_run,
)
from .sampler import Key, StreamSampler
from .seeds import derive_seed
from .setup import PreparedRun, RunConfig, data_stream, make_accelerator, prepare_run

__all__ = [
    "CHECKPOINT_PREFIX",
    "EMA",
    "Key",
    "LoopConfig",
    "PreparedRun",
    "RunConfig",
    "StreamSampler",
    "data_stream",
    "make_accelerator",
    "prepare_run",
    "add_terms",
    "check_loop_settings",
    "data_loader",
    "optimizer_step",
    "report_and_checkpoint",
    "run_trainer_cli",
    "start_run",
    "EXTRA_FILE",
    "STATE_FILE",
    "T",
    "build_dataclass",
    "checkpoint_dir",
    "config_to_dict",
    "derive_seed",
    "list_checkpoints",
    "load_config_file",
    "merge_settings",
    "parse_overrides",
    "prune_checkpoints",
    "register_trainable_only_state",
    "resume_checkpoint",
    "save_checkpoint",
]
