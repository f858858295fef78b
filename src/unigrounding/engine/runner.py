"""``train`` / ``evaluate``: mmengine ``Runner`` driven from a config file."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.hooks import CheckpointHook
from mmengine.registry import RUNNERS
from mmengine.runner import IterBasedTrainLoop, Runner

from ..data.annotations import SampleError
from .safe_load import CheckpointError, checkpoint_problem, use_safe_local_loader

#: ``--strategy`` values: how the model is spread over the processes.
STRATEGIES = ("ddp", "fsdp", "deepspeed")

use_safe_local_loader()


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
    resume: bool | str | Path = False,
    launcher: str = "none",
    strategy: str | None = None,
    progress_bar: bool = False,
) -> Runner:
    """Train; with ``resume`` continue from a checkpoint (model, optimizer,
    scheduler, iteration and RNG state). ``True``: the work dir's latest (or,
    as in mmengine, the config's ``load_from``); a path: that checkpoint. A
    latest checkpoint that cannot be read is an error naming it and the
    earlier ones that can (:func:`latest_checkpoint`).

    ``strategy`` (or the config's ``strategy`` key; default ``ddp``):
    ``ddp`` replicates the model on every process, ``fsdp`` shards it with
    torch FSDP2 (:mod:`~unigrounding.engine.fsdp`; the config's ``fsdp``
    dict holds the wrapper's options), ``deepspeed`` trains through a
    DeepSpeed ZeRO engine (:mod:`~unigrounding.engine.deepspeed`; the
    config's ``deepspeed`` dict: ``zero_stage`` and raw ``config`` keys).
    The config's ``runner_type`` picks the runner class.

    A sample that fails to load mid-run (:class:`~unigrounding.data.SampleError`)
    stops training with a checkpoint of the iterations done, written by the
    checkpoint hook (so ``--resume`` continues exactly, sharded runners'
    too); the error names the sample and the checkpoint. Not in a run of
    several processes (a save needs them all, and only the one that met the
    sample stops) nor of an epoch-based loop (mmengine resumes at an epoch's
    start): there the error says that no checkpoint was written.

    ``progress_bar``: a bar on the terminal in place of mmengine's log lines,
    which stay in the work dir's log file (:class:`~.progress.ProgressHook`)."""
    cfg = load_config(config, work_dir, cfg_options)
    if progress_bar:
        cfg.custom_hooks = [
            *cfg.get("custom_hooks", []),
            dict(type="ProgressHook", bar=True, quiet_console=True),
        ]
    cfg.resume = bool(resume)
    if not isinstance(resume, bool):
        cfg.load_from = str(resume)
    elif resume and cfg.get("load_from") is None:
        cfg.load_from = latest_checkpoint(cfg.work_dir)
    cfg.launcher = launcher
    _apply_strategy(cfg, strategy or cfg.get("strategy") or "ddp", launcher)
    if launcher == "pytorch" and not torch.cuda.is_available():
        _init_cpu_distributed(cfg)
    runner = RUNNERS.build(cfg) if cfg.get("runner_type") else Runner.from_cfg(cfg)
    try:
        runner.train()
    except SampleError as exc:
        # Only a sample's error: it is raised while a batch is drawn, between
        # two iterations, so the model, optimizer and schedulers are those
        # after the last one and a checkpoint of them resumes exactly. Any
        # other error (out of memory in a backward pass, a bug) may stop
        # training half-way through a step, and its checkpoint would hold that.
        raise SampleError(_stop_on_sample(runner, exc)) from exc
    return runner


def _stop_on_sample(runner: Runner, exc: SampleError) -> str:
    """Save the checkpoint of the iterations done before the sample of
    ``exc`` was drawn, where one continues exactly; the message of the error
    training stops with, which says what was saved."""
    done = runner.iter
    hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook) and not h.by_epoch), None)
    if runner.world_size > 1:
        # a save needs every process (sharded state, barriers), and the others
        # do not stop with this one: they wait in the next step's collectives
        unsaved = f"a save needs all {runner.world_size} processes, and only this one stopped"
    elif not isinstance(runner.train_loop, IterBasedTrainLoop):
        unsaved = "mmengine resumes an epoch-based run at the start of an epoch"
    elif hook is None:
        unsaved = "the config has no checkpoint hook counting iterations"
    elif done == 0:
        unsaved = "no iteration had completed"
    else:
        unsaved = None
        path = hook.file_backend.join_path(hook.out_dir, hook.filename_tmpl.format(done))
        if hook.last_ckpt != path:  # else the hook saved it after the iteration just done
            runner.logger.info(f"Saving checkpoint at {done} iterations: a sample failed to load")
            # through the hook: written whole, then named in last_checkpoint for --resume
            hook._save_checkpoint_with_step(runner, done, meta=dict(epoch=runner.epoch, iter=done))
    mend = "Mend or remove its record (`unigrounding data check CONFIG` lists every bad record)"
    if unsaved is None:
        return (
            f"{exc}\nTraining stopped on this sample after {done} iterations, saved in {path}. "
            f"{mend}, then continue with the same command and --resume {path}"
        )
    record = Path(runner.work_dir) / "last_checkpoint"
    latest = record.read_text().strip() if record.is_file() else ""
    resume = f" (or continue from the latest checkpoint: --resume {latest})" if latest else ""
    return (
        f"{exc}\nTraining stopped on this sample after {done} iterations, with no checkpoint "
        f"of them ({unsaved}). {mend}, then train again{resume}"
    )


def latest_checkpoint(work_dir: str | Path) -> str | None:
    """The checkpoint the work dir's ``last_checkpoint`` names, which mmengine's
    auto-resume reads; ``None`` without one (training starts afresh).

    A latest checkpoint that is missing, empty or truncated (a cheap check of
    its zip index) is a :class:`~.safe_load.CheckpointError` naming it and
    listing the earlier checkpoints beside it that pass the same check, newest
    first. The run does not fall back to one by itself: continuing from an
    earlier checkpoint trains the iterations after it again, which the user
    chooses with ``--resume PATH`` (or ``--resume --cfg-options load_from=PATH``).
    """
    record = Path(work_dir) / "last_checkpoint"
    if not record.is_file():
        return None
    named = record.read_text().strip()
    if not named:  # mmengine's hook rewrites the file in place: a crash can empty it
        bad, problem = record, f"{record} names no checkpoint (it is empty)"
    else:
        bad = Path(named)
        found = checkpoint_problem(bad) if bad.is_file() else "does not exist"
        if found is None:
            return named
        problem = f"the latest checkpoint {bad} (named in {record}) {found}"
    earlier = sorted(
        (p for p in bad.parent.glob("*.pth") if p != bad and checkpoint_problem(p) is None),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    if earlier:
        advice = (
            f"Readable earlier checkpoints, newest first: {', '.join(map(str, earlier))}. "
            "Continuing from one trains the iterations after it again; to do so: "
            f"unigrounding train CONFIG --resume {earlier[0]}"
        )
    else:
        advice = (
            f"No other readable checkpoint in {bad.parent}: train without --resume to start afresh"
        )
    raise CheckpointError(f"cannot resume: {problem}. {advice}", bad)


def _apply_strategy(cfg: Config, strategy: str, launcher: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    cfg.strategy = strategy
    if strategy == "ddp":
        return
    if launcher == "none":
        raise ValueError(
            f"--strategy {strategy} shards the model over processes: launch with torchrun "
            "(`torchrun --nproc_per_node N -m unigrounding.cli.main train CONFIG "
            f"--launcher pytorch --strategy {strategy}`; N=1 for one GPU)"
        )
    if strategy == "fsdp":
        from . import fsdp  # noqa: F401  (registers the runner and the wrapper)

        cfg.runner_type = cfg.get("runner_type") or "FSDPRunner"
        cfg.model_wrapper_cfg = dict(type="FullyShardedModel", **(cfg.get("fsdp") or {}))
    else:
        from .deepspeed import deepspeed_config  # registers the runner and the wrapper

        cfg.runner_type = cfg.get("runner_type") or "DeepSpeedRunner"
        cfg.model_wrapper_cfg = dict(type="DeepSpeedModel", config=deepspeed_config(cfg))


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
