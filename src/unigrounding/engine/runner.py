"""``train`` / ``evaluate``: mmengine ``Runner`` driven from a config file."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.runner import Runner


def load_config(
    config: str | Path | Config, work_dir: str | None = None, cfg_options: dict | None = None
) -> Config:
    """A config with ``--cfg-options`` merged and a ``work_dir`` set."""
    cfg = config if isinstance(config, Config) else Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    elif cfg.get("work_dir") is None:
        cfg.work_dir = str(Path("work_dirs") / Path(str(cfg.filename or "run")).stem)
    return cfg


def train(
    config,
    work_dir: str | None = None,
    cfg_options=None,
    resume: bool = False,
    launcher: str = "none",
) -> Runner:
    """Train; with ``resume`` continue from the work dir's latest checkpoint
    (model, optimizer, scheduler, iteration and RNG state)."""
    cfg = load_config(config, work_dir, cfg_options)
    cfg.resume = resume
    cfg.launcher = launcher
    if launcher == "pytorch" and not torch.cuda.is_available():
        _init_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def _init_cpu_distributed(cfg: Config) -> None:
    """DDP on CPU (gloo). mmengine 0.10.7's ``init_dist`` calls
    ``torch.cuda.set_device`` unconditionally and its default DDP wrapper passes
    ``device_ids``; both fail without CUDA. Initialising the process group here
    makes mmengine skip its own, and a wrapper config without ``device_ids``
    gives CPU DDP."""
    if not dist.is_initialized():
        dist_cfg = cfg.get("env_cfg", {}).get("dist_cfg", {})
        dist.init_process_group(backend=dist_cfg.get("backend", "gloo"))
    if cfg.get("model_wrapper_cfg") is None:
        cfg.model_wrapper_cfg = dict(
            type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False
        )
