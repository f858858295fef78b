"""Training stages before the codecs, trained once and cached by content.

A stage (``configs/<stage>``) is the shared stage 0 (:data:`PRETRAIN_STAGE`)
or one of a codec's own (``ablate_stages``: a proposer's detection stage, a
visual tokenizer's). Its cache folder is named by its config as the preset
trains it, the preset, the checkpoint it starts from and the library's
source, so a cached stage is reused exactly when retraining would give the
same result.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from mmengine.config import Config

from ..engine.export import carry_over
from .configs import apply_preset, estimated_cost, leaf_datasets
from .presets import cache_dir

PRETRAIN_STAGE = "pretrain/shapesref_cells.py"
#: Preset keys no stage reads (the codecs' fine-tuning and RL budget, how many
#: expressions they are scored on): left out of a stage's cache key, so
#: changing them reuses the cached stages
CODEC_ONLY_SETTINGS = ("finetune_samples", "rl_iters", "eval_samples")
#: ``configs/ablate/stage_costs.py``: one iteration's cost per stage config
STAGE_COSTS = "ablate/stage_costs.py"


def run_stage(
    cdir: Path,
    stage: str,
    settings: dict,
    data_root: Path,
    init: Path | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Path, dict]:
    """Train ``stage`` (or reuse its cache): its export and its test metrics
    (if it has a test evaluator). The shared stage 0 runs
    ``settings["pretrain_iters"]``; a codec's own stages their own
    ``max_iters`` unless the preset sets ``stage_iters``."""
    from mmengine.runner import Runner

    cfg, work = stage_config(cdir, stage, settings, data_root, init)
    iters = cfg.train_cfg.max_iters
    export, metrics_file = work / "export", work / "stage_metrics.json"
    if is_cached(work):
        log(f"[ablate] reusing cached stage {stage}: {export}")
        return export, json.loads(metrics_file.read_text())
    log(f"[ablate] stage {stage} ({iters} iters) -> {work}")
    cfg.work_dir = str(work)
    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    runner.train()
    metrics = {"train_seconds": time.perf_counter() - start, "train_iters": iters}
    if cfg.get("test_evaluator"):
        metrics.update(runner.test())
    if init is not None:
        carry_over(init, export)
    metrics_file.write_text(json.dumps(metrics, indent=1))
    return export, metrics


def stage_config(
    cdir: Path, stage: str, settings: dict, data_root: Path, init: Path | None
) -> tuple[Config, Path]:
    """A stage's config as the preset trains it, and its cache folder. Stage 0
    keeps its config's seed unless ``settings["reseed_pretraining"]``
    (:func:`~.run.run_ablation`)."""
    if stage == PRETRAIN_STAGE and not settings.get("reseed_pretraining"):
        settings = {k: v for k, v in settings.items() if k != "seed"}
    cfg = Config.fromfile(str(cdir / stage))
    iters = (
        settings["pretrain_iters"]
        if stage == PRETRAIN_STAGE
        else settings.get("stage_iters") or cfg.train_cfg.max_iters
    )
    apply_preset(cfg, settings, data_root, iters)
    # a stage is scored on the whole val split: its cache must not depend on
    # how many expressions the codecs are evaluated on (``eval_samples``)
    if cfg.get("test_dataloader") is not None:
        for ds in leaf_datasets(cfg.test_dataloader.dataset):
            ds.max_samples = None
    if init is not None:
        cfg.model.init_checkpoint = str(init)
    trained_by = {k: v for k, v in settings.items() if k not in CODEC_ONLY_SETTINGS}
    key = _digest(cfg.pretty_text + json.dumps(trained_by, sort_keys=True) + source_digest())
    return cfg, cache_dir() / f"{Path(stage).stem}-{key}"


def is_cached(work: Path) -> bool:
    return (work / "export" / "model.safetensors").exists() and (
        work / "stage_metrics.json"
    ).exists()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def source_digest() -> str:
    """Digest of the library's own source: a cached checkpoint is stale as soon
    as the code that trained it changes, even if the config did not."""
    package = Path(__file__).resolve().parent.parent
    return _digest("".join(p.read_text() for p in sorted(package.rglob("*.py"))))


def run_stages(
    cdir: Path, stages: tuple[str, ...], settings: dict, data_root: Path, init: Path | None
) -> tuple[list[Path], dict[str, dict]]:
    """Stages in order, each starting from the previous export (the first
    from ``init``): every stage's export, in order, and metrics."""
    exports, metrics = [], {}
    for stage in stages:
        init, metrics[stage] = run_stage(cdir, stage, settings, data_root, init, log=lambda _: None)
        exports.append(init)
    return exports, metrics


def longest_chains(chains: set[tuple[str, ...]]) -> set[tuple[str, ...]]:
    """The stage chains that are no other chain's beginning: running those
    runs every stage once (``region_proxy``'s proposer stage is the first of
    ``token_collective``'s two)."""
    return {c for c in chains if c and not any(o != c and o[: len(c)] == c for o in chains)}


def chain_work_dirs(
    chain: tuple[str, ...], cdir: Path, settings: dict, data_root: Path, init: Path | None
) -> list[Path]:
    """The cache folders of a chain's stages, the first starting from ``init``."""
    dirs = []
    for stage in chain:
        _, work = stage_config(cdir, stage, settings, data_root, init)
        dirs.append(work)
        init = work / "export"
    return dirs


def chain_cost(
    chain: tuple[str, ...], cdir: Path, settings: dict, data_root: Path, init: Path | None
) -> float:
    """A stage chain's estimated length: its stages' costs
    (``configs/ablate/stage_costs.py``), nothing for a cached one."""
    table = cdir / STAGE_COSTS
    costs = Config.fromfile(str(table)).get("ablate_stage_costs", {}) if table.exists() else {}
    total = 0.0
    for stage, work in zip(
        chain, chain_work_dirs(chain, cdir, settings, data_root, init), strict=True
    ):
        if not is_cached(work):
            cfg, _ = stage_config(cdir, stage, settings, data_root, init)
            total += estimated_cost(cfg, costs.get(stage, 1.0))
        init = work / "export"
    return total
