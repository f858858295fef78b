"""How the ablation turns a codec's ShapesRef config into the job it runs:
the preset's data and budget, the task, and the keys only ``ablate`` reads.

A codec's ablation config is ``configs/ablate/<codec>.py``, which inherits the
user config ``configs/<codec>/rec_shapesref.py`` and adds ``ablate_*`` keys:
``ablate_stages`` (its own training stages, run first), ``ablate_metrics``
(extra evaluators), ``ablate_variants`` (training variants: name → dotted
overrides), ``ablate_task_overrides`` (task → dotted overrides),
``ablate_rl`` (its RL stages, config paths under ``configs/``, run one after
the other from its fine-tuned export by ``ablate --rl``) and ``ablate_cost``
(one iteration's cost next to text_coords', for scheduling).
"""

from __future__ import annotations

from pathlib import Path

from mmengine.config import Config

#: Task → its evaluator and the unit a codec must list to take part.
TASKS = {"rec": ("RECMetric", "box"), "res": ("RESMetric", "mask")}

#: Wrappers that pass their dataset's items through unchanged; any other
#: wrapper converts them (e.g. ``GridOffsetRefineDataset`` turns RES samples
#: into refinement conversations) and needs the task it was configured with.
PASS_THROUGH_WRAPPERS = ("RepeatDataset", "ClassBalancedDataset")


def codec_config(cdir: Path, name: str) -> Config:
    """``configs/ablate/<name>.py`` if a codec ships one, else the shared base
    with ``model.codec = dict(type=name)`` (a plugin's defaults)."""
    own = cdir / "ablate" / f"{name}.py"
    cfg = Config.fromfile(str(own if own.exists() else cdir / "ablate" / "base.py"))
    if not own.exists():
        cfg.model.codec = {"type": name}
    return cfg


def leaf_datasets(ds: dict, into: tuple[str, ...] | None = None) -> list[dict]:
    """The configs that read data, inside concatenations (``datasets``) and
    wrappers (``dataset``; only those whose type is in ``into``, if given —
    the others count as leaves)."""
    if "datasets" in ds:
        return [leaf for child in ds.datasets for leaf in leaf_datasets(child, into)]
    if "dataset" in ds and (into is None or ds.type in into):
        return leaf_datasets(ds.dataset, into)
    return [ds]


def apply_task(cfg: Config, task: str) -> None:
    """Point the config's ShapesRef datasets at ``task`` and score it; datasets
    inside a converting wrapper keep their own task. A config's
    ``ablate_task_overrides`` (task → dotted overrides) then adapt it to the
    task (e.g. ``grid_offset`` refines box corners for REC, mask points for RES)."""
    metric, _ = TASKS[task]
    for loader in ("train_dataloader", "test_dataloader"):
        for ds in leaf_datasets(cfg[loader].dataset, into=PASS_THROUGH_WRAPPERS):
            if ds.type == "ShapesRefDataset":
                ds.task = task
    cfg.test_evaluator = [{"type": metric}, *cfg.get("ablate_metrics", [])]
    overrides = cfg.pop("ablate_task_overrides", {}).get(task, {})
    cfg.merge_from_dict(overrides, allow_list_keys=True)


def apply_preset(cfg: Config, settings: dict, data_root: Path, iters: int) -> None:
    """Data, budget, backbone (``settings["backbone"]``, default the configs'
    own) and (with ``settings["seed"]``) the training seed of a preset;
    without a seed, each config keeps its own ``randomness``."""
    from .backbones import TINY, apply_backbone  # it reads this module's leaf_datasets

    apply_backbone(cfg, settings.get("backbone", TINY))
    if "seed" in settings:
        cfg.randomness = dict(cfg.get("randomness") or {}, seed=settings["seed"])
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(loader) is None:
            continue
        for ds in leaf_datasets(cfg[loader].dataset):
            ds.data_root = str(data_root)
            if ds.type == "ShapesRefDataset":
                ds.update(n_train=settings["n_train"], n_val=settings["n_val"])
            if loader != "train_dataloader":
                ds.max_samples = settings["eval_samples"]
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.pop("val_interval", None)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # evaluated once, by test()
    for sched in cfg.param_scheduler:
        if "total_steps" in sched:
            sched.total_steps = iters
    cfg.default_hooks.checkpoint.interval = iters
    # progress.json in the work dir, which the live view reads
    cfg.custom_hooks = [*cfg.get("custom_hooks", []), dict(type="ProgressHook")]


def finetune_iters(cfg: Config, settings: dict) -> int:
    """The preset's fine-tuning budget (``finetune_samples`` conversations) in
    iterations at the config's training batch."""
    return max(1, settings["finetune_samples"] // cfg.train_dataloader.batch_size)


def estimated_cost(cfg: Config, cost: float | None = None) -> float:
    """A training job's estimated length: one iteration's cost next to one of
    text_coords (``cost``, else the config's ``ablate_cost``) times its
    iterations."""
    return (cost if cost is not None else cfg.get("ablate_cost", 1.0)) * cfg.train_cfg.max_iters


def rl_stage_configs(cfg: Config, cdir: Path, settings: dict, data_root: Path) -> list[dict]:
    """A codec's ``ablate_rl`` stages under the preset: each RL config with the
    preset's data and seed (the rollouts' too), ``settings["rl_iters"]``
    iterations if set (else the config's own); plain dicts, which the codec's
    dumped config carries to its worker (:func:`~.codec_job.run_codec`)."""
    stages = []
    for path in cfg.get("ablate_rl", []):
        stage = Config.fromfile(str(cdir / path))
        apply_preset(
            stage, settings, data_root, settings.get("rl_iters") or stage.train_cfg.max_iters
        )
        if "seed" in settings:
            stage.model.seed = settings["seed"]
        stages.append(stage.to_dict())
    return stages
