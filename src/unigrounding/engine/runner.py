"""``train`` / ``evaluate``: mmengine ``Runner`` driven from a config file."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.runner import Runner

from .export import load_weights


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


def evaluate(config, checkpoint: str, work_dir: str | None = None, cfg_options=None) -> dict:
    """Run the config's test loop on ``checkpoint`` and return metrics + protocol."""
    cfg = load_config(config, work_dir, cfg_options)
    cfg.load_from = None
    cfg.resume = False
    runner = Runner.from_cfg(cfg)
    load_weights(runner.model, checkpoint)
    metrics = runner.test()
    return {
        "checkpoint": str(checkpoint),
        "config": str(cfg.filename),
        "metrics": {k: _plain(v) for k, v in metrics.items()},
        "protocol": protocol(cfg),
    }


def protocol(cfg: Config) -> dict:
    """The settings a number depends on, written next to it."""
    return {
        "evaluators": json.loads(json.dumps(cfg.get("test_evaluator"), default=str)),
        "dataset": json.loads(json.dumps(cfg.test_dataloader.dataset, default=str)),
        "frame": "IoU in original-image pixels; model input is pad-to-square then resize",
        "rec_hit": "IoU >= threshold; missing or unreadable prediction counts as a miss",
        "decoding": "greedy",
    }


def _plain(v):
    return v.item() if hasattr(v, "item") else v
