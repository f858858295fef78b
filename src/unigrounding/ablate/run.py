"""``unigrounding ablate`` as one composition: data, stage 0, the baseline,
every codec's job, the report."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..codecs.catalog import registered_codecs
from .backbones import TINY, backbone_folder, describe_backbone
from .baseline import center_box_baseline
from .configs import (
    TASKS,
    apply_preset,
    apply_task,
    codec_config,
    finetune_iters,
    rl_stage_configs,
)
from .lanes import default_jobs, folder, run_codecs
from .presets import PRESETS, config_dir, shapesref_root
from .report import manifest, write_report
from .summary import combine


def run_ablation(
    out: str | Path,
    preset: str = "quick",
    codecs: list[str] | None = None,
    config_dir_path: str | Path | None = None,
    log: Callable[[str], None] = print,
    task: str = "rec",
    backbone: str = TINY,
    jobs: int | None = None,
    variants: bool = False,
    seeds: Sequence[int] | None = None,
    reseed_pretraining: bool = False,
    live: bool = False,
    verbose: bool = False,
    rl: bool = False,
) -> dict:
    """Pretrain once (cached), fine-tune + evaluate each codec, write the report.

    Without ``codecs``, every registered codec whose units include the task's
    (``box`` for REC, ``mask`` for RES) takes part. ``jobs`` codecs train at
    once, each in its own process with an equal share of the CPU threads
    (default :func:`~.lanes.default_jobs`); results do not depend on it. With
    ``variants``, a codec's training variants (``ablate_variants`` of its
    ablate config: name → dotted config overrides, e.g. a paper's design
    ablation) are trained too, each a row ``"<codec> [<variant>]"``. With
    ``rl`` (REC only), a codec with RL stages (``ablate_rl`` of its ablate
    config) runs them after its fine-tuning, from its export, in its own job:
    one more row ``"<codec> (GRPO)"`` (and one per evaluation variant,
    ``"<codec> (GRPO, <variant>)"``).

    ``seeds`` trains everything once per seed, each replacing the training
    seed of every codec and its own stages (the ShapesRef data and the
    evaluation samples stay the same; without seeds the configs keep their
    own). Stage 0 keeps its config's seed and is trained once: it stands in
    for the released vision checkpoint every run of a real study starts from,
    so the seeds vary what such a study varies (``reseed_pretraining``
    retrains it per seed too, docs/measurements.md compares both). Each
    metric is then the mean over seeds, with its ``per_seed`` values, their
    ``spread`` and a 95% interval (``<metric>_ci95``), and ``pairwise``
    compares the codecs on the same samples (:mod:`.summary`). Each seed's
    own report and work dirs are under ``out/seed_<s>``; every row's
    per-sample scores in ``out/per_sample.json``.

    Every job trains in a worker process; its terminal output goes to
    ``console.log`` in its work dir (``verbose``: to the terminal), and
    ``live`` draws one live table of the jobs (:mod:`.live`).

    ``backbone`` names what every codec and stage is trained on
    (:mod:`.backbones`): the configs' own assembled tiny model, or a
    pretrained-VLM miniature loaded from its folder."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    if rl and task != "rec":
        raise ValueError(
            f"the RL stages' rewards score boxes: --rl runs with task 'rec', not {task!r}"
        )
    available = registered_codecs()
    unit = TASKS[task][1]
    names = codecs or [n for n, cls in available.items() if unit in cls.units]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown codec(s) {unknown}; registered: {sorted(available)}")
    if backbone != TINY:
        backbone_folder(backbone)  # built once, here, before any worker reads it
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = list(seeds) if seeds else [None]
    reports = []
    for seed in runs:
        where = out / f"seed_{seed}" if len(runs) > 1 else out
        if len(runs) > 1:
            log(f"[ablate] seed {seed} ({len(reports) + 1} of {len(runs)})")
        settings = dict(PRESETS[preset], backbone=backbone)
        if seed is not None:
            settings["seed"] = seed
        if reseed_pretraining:
            settings["reseed_pretraining"] = True
        reports.append(
            _run_seed(
                where,
                settings,
                names,
                config_dir(config_dir_path),
                log,
                task,
                jobs,
                variants,
                live,
                verbose,
                rl,
            )
        )
        reports[-1]["preset"] = preset
        if len(runs) > 1:  # this seed's own report, as a one-seed run writes it
            write_report(combine(reports[-1:], [seed])[0], where)
    report, per_sample = combine(reports, runs)
    (out / "per_sample.json").write_text(json.dumps(per_sample))
    write_report(report, out)
    log((out / "report.md").read_text())
    return report


def _run_seed(
    out: Path,
    settings: dict,
    names: list[str],
    cdir: Path,
    log: Callable[[str], None],
    task: str,
    jobs: int | None,
    variants: bool,
    live: bool,
    verbose: bool,
    rl: bool = False,
) -> dict:
    """One seed's ablation (``settings`` carry the seed, if any): its report,
    with every row's per-sample scores."""
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    data_root = shapesref_root(settings)
    report = {
        "task": task,
        "dataset": "shapesref",
        "backbone": describe_backbone(settings["backbone"]),
        "seconds": 0.0,
        "settings": settings,
        "manifest": manifest(),
        "baselines": {"center_box": center_box_baseline(cdir, settings, data_root, task)},
        "stages": {},
        "codecs": {},
    }
    jobs = default_jobs() if jobs is None else max(1, jobs)
    configs = {}
    for name in names:
        base = codec_config(cdir, name)
        stages = base.get("ablate_stages", [])
        rl_stages = rl_stage_configs(base, cdir, settings, data_root) if rl else []
        base.pop("ablate_rl", None)
        trained = base.pop("ablate_variants", {}) if variants else {}
        base.pop("ablate_variants", None)
        rows = {name: {}, **{f"{name} [{v}]": o for v, o in trained.items()}}
        # a variant is merged before the preset, so one that changes the batch
        # still trains on the preset's number of conversations
        for row, overrides in rows.items():
            cfg = copy.deepcopy(base)
            cfg.merge_from_dict(overrides)
            apply_preset(cfg, settings, data_root, finetune_iters(cfg, settings))
            apply_task(cfg, task)
            cfg.ablate_stages = stages
            configs[row] = cfg
        if rl_stages:
            configs[name].ablate_rl_stages = rl_stages
    log(
        f"[ablate] fine-tuning {', '.join(names)} ({settings['finetune_samples']} training "
        f"conversations each, {jobs} at a time)"
    )
    pretrained, rows_by_codec, report["stages"] = run_codecs(
        configs, out / "work", jobs, log, (cdir, settings, data_root), live, verbose
    )
    report["pretrained"] = str(pretrained)
    # the resolved config each row was trained with
    report["manifest"]["configs"] = {
        name: str(out / "work" / folder(name) / "ablate_config.py") for name in configs
    }
    for name, rows in rows_by_codec.items():
        for variant, row in rows.items():
            report["codecs"][f"{name} ({variant})" if variant else name] = row
    report["seconds"] = time.perf_counter() - start
    return report
