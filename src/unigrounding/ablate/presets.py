"""The ablation's presets and where it keeps things: the configs it reads,
its cache, and the ShapesRef data it generates."""

from __future__ import annotations

import os
from pathlib import Path

#: Data size and budget per preset; ``ablate --seeds`` adds ``seed``. The
#: fine-tuning budget is in training conversations (``finetune_samples``), the
#: same for every codec: a codec trains ``finetune_samples // batch_size``
#: iterations at its config's batch (quick: 625 at 32). Optional:
#: ``stage_iters`` / ``rl_iters`` replace the iterations of the codecs' own
#: stages / RL stages (default: their configs').
PRESETS = {
    "quick": {
        "pretrain_iters": 1200,
        "finetune_samples": 20000,
        "n_train": 3000,
        # 1000 of the ~1020 expressions of 300 val images: a one-seed interval
        # of about +-0.03 Acc@0.5 (docs/measurements.md)
        "n_val": 300,
        "eval_samples": 1000,
    },
    "full": {
        "pretrain_iters": 2000,
        "finetune_samples": 128000,
        "n_train": 10000,
        "n_val": 500,
        "eval_samples": 1000,
    },
}


def config_dir(path: str | Path | None = None) -> Path:
    """The ``configs/`` folder: given, or the one installed with the package."""
    candidate = Path(path) if path else Path(__file__).resolve().parent.parent / "configs"
    if not (candidate / "_base_").is_dir():
        raise FileNotFoundError(f"no configs/ folder found at {candidate}; pass --config-dir")
    return candidate


def cache_dir() -> Path:
    """Where trained stages and generated data are kept (``UNIGROUNDING_CACHE``)."""
    return Path(os.environ.get("UNIGROUNDING_CACHE", Path.home() / ".cache" / "unigrounding"))


def shapesref_root(settings: dict) -> Path:
    """ShapesRef for a preset, generated into the cache on first use."""
    from ..data.shapesref import write_shapesref

    root = cache_dir() / f"shapesref-{settings['n_train']}-{settings['n_val']}"
    return write_shapesref(root, n_train=settings["n_train"], n_val=settings["n_val"])
