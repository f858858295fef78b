"""``unigrounding ablate``: every codec on one backbone, one data set, one budget.

Each codec is fine-tuned for the same number of iterations from the same
codec-neutral checkpoint — the vision tower pretrained once on ShapesRef cell
attributes (``configs/pretrain/shapesref_cells.py``) and cached — then
evaluated with the same metrics. A trivial baseline is printed beside them so a
number can be read against "no learning at all".

``task="rec"`` (the default) compares boxes; ``task="res"`` retrains the codecs
that can output masks on ShapesRef RES and scores cIoU / gIoU.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from .codecs.catalog import registered_codecs
from .engine.export import carry_over
from .scheduling import dispatch_order
from .structures import paired_box_iou

PRESETS = {
    "quick": {
        "pretrain_iters": 1200,
        "finetune_iters": 625,
        "n_train": 3000,
        "n_val": 200,
        "eval_samples": 300,
    },
    "full": {
        "pretrain_iters": 2000,
        "finetune_iters": 4000,
        "n_train": 10000,
        "n_val": 500,
        "eval_samples": 1000,
    },
}


def config_dir(path: str | Path | None = None) -> Path:
    """The ``configs/`` folder: given, or the one installed with the package."""
    candidates = [Path(path)] if path else [Path(__file__).resolve().parent / "configs"]
    for c in candidates:
        if (c / "_base_").is_dir():
            return c
    raise FileNotFoundError(
        f"no configs/ folder found (looked in {[str(c) for c in candidates]}); pass --config-dir"
    )


def cache_dir() -> Path:
    import os

    return Path(os.environ.get("UNIGROUNDING_CACHE", Path.home() / ".cache" / "unigrounding"))


def shapesref_root(settings: dict) -> Path:
    """ShapesRef for a preset, generated into the cache on first use."""
    from .data.shapesref import write_shapesref

    root = cache_dir() / f"shapesref-{settings['n_train']}-{settings['n_val']}"
    return write_shapesref(root, n_train=settings["n_train"], n_val=settings["n_val"])


def _codec_config(cdir: Path, name: str) -> Config:
    """``configs/ablate/<name>.py`` if a codec ships one, else the shared base
    with ``model.codec = dict(type=name)``."""
    own = cdir / "ablate" / f"{name}.py"
    cfg = Config.fromfile(str(own if own.exists() else cdir / "ablate" / "base.py"))
    if not own.exists():
        cfg.model.codec = {"type": name}
    return cfg


#: Task → its evaluator; codecs must list the task's unit to take part.
TASKS = {"rec": ("RECMetric", "box"), "res": ("RESMetric", "mask")}


#: Wrappers that pass their dataset's items through unchanged; any other
#: wrapper converts them (e.g. ``GridOffsetRefineDataset`` turns RES samples
#: into refinement conversations) and needs the task it was configured with.
PASS_THROUGH_WRAPPERS = ("RepeatDataset", "ClassBalancedDataset")


def _apply_task(cfg: Config, task: str) -> None:
    """Point the config's ShapesRef datasets at ``task`` and score it; datasets
    inside a converting wrapper keep their own task. A config's
    ``ablate_task_overrides`` (task → dotted overrides) then adapt it to the
    task (e.g. ``grid_offset`` refines box corners for REC, mask points for RES)."""
    metric, _ = TASKS[task]
    for loader in ("train_dataloader", "test_dataloader"):
        for ds in _leaf_datasets(cfg[loader].dataset, into=PASS_THROUGH_WRAPPERS):
            if ds.type == "ShapesRefDataset":
                ds.task = task
    cfg.test_evaluator = [{"type": metric}, *cfg.get("ablate_metrics", [])]
    overrides = cfg.pop("ablate_task_overrides", {}).get(task, {})
    cfg.merge_from_dict(overrides, allow_list_keys=True)


def _leaf_datasets(ds: dict, into: tuple[str, ...] | None = None) -> list[dict]:
    """The configs that read data, inside concatenations (``datasets``) and
    wrappers (``dataset``; only those whose type is in ``into``, if given —
    the others count as leaves)."""
    if "datasets" in ds:
        return [leaf for child in ds.datasets for leaf in _leaf_datasets(child, into)]
    if "dataset" in ds and (into is None or ds.type in into):
        return _leaf_datasets(ds.dataset, into)
    return [ds]


def _apply_preset(cfg: Config, settings: dict, data_root: Path, iters: int) -> None:
    """Data, budget and (with ``settings["seed"]``) the training seed of a
    preset; without a seed, each config keeps its own ``randomness``."""
    if "seed" in settings:
        cfg.randomness = dict(cfg.get("randomness") or {}, seed=settings["seed"])
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(loader) is None:
            continue
        for ds in _leaf_datasets(cfg[loader].dataset):
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


PRETRAIN_STAGE = "pretrain/shapesref_cells.py"


def run_stage(
    cdir: Path,
    stage: str,
    settings: dict,
    data_root: Path,
    init: Path | None = None,
    log: callable = print,
) -> tuple[Path, dict]:
    """A training stage before the codecs (``configs/<stage>``), trained once
    and cached by content (config, preset, starting checkpoint and the
    library's source). Returns its export and its test metrics (if it has a
    test evaluator). The shared stage 0 runs ``settings["pretrain_iters"]``;
    a codec's own stages (``ablate_stages`` of its ablate config) their own
    ``max_iters`` unless the preset sets ``stage_iters``."""
    from mmengine.runner import Runner

    cfg, work = _stage_config(cdir, stage, settings, data_root, init)
    iters = cfg.train_cfg.max_iters
    export, metrics_file = work / "export", work / "stage_metrics.json"
    if _is_cached(work):
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


def _stage_config(
    cdir: Path, stage: str, settings: dict, data_root: Path, init: Path | None
) -> tuple[Config, Path]:
    """A stage's config as the preset trains it, and its cache folder (named
    by the config, the preset and the library's source)."""
    cfg = Config.fromfile(str(cdir / stage))
    iters = (
        settings["pretrain_iters"]
        if stage == PRETRAIN_STAGE
        else settings.get("stage_iters") or cfg.train_cfg.max_iters
    )
    _apply_preset(cfg, settings, data_root, iters)
    # a stage is scored on the whole val split: its cache must not depend on
    # how many expressions the codecs are evaluated on (``eval_samples``)
    if cfg.get("test_dataloader") is not None:
        for ds in _leaf_datasets(cfg.test_dataloader.dataset):
            ds.max_samples = None
    if init is not None:
        cfg.model.init_checkpoint = str(init)
    trained_by = {k: v for k, v in settings.items() if k != "eval_samples"}
    key = _digest(cfg.pretty_text + json.dumps(trained_by, sort_keys=True) + _source_digest())
    return cfg, cache_dir() / f"{Path(stage).stem}-{key}"


def _is_cached(work: Path) -> bool:
    return (work / "export" / "model.safetensors").exists() and (
        work / "stage_metrics.json"
    ).exists()


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _source_digest() -> str:
    """Digest of the library's own source: a cached checkpoint is stale as soon
    as the code that trained it changes, even if the config did not."""
    package = Path(__file__).resolve().parent
    return _digest("".join(p.read_text() for p in sorted(package.rglob("*.py"))))


def center_box_baseline(cdir: Path, settings: dict, data_root: Path, task: str = "rec") -> dict:
    """The trivial baseline: a box of the mean training target size (relative
    to the image) at the image centre, scored with the REC protocol — and, for
    ``task="res"``, filled as a mask and scored with the RES protocol."""
    from mmengine.registry import DefaultScope

    from .evaluation.grounding import union_mask
    from .registry import DATASETS
    from .structures import box_to_mask

    cfg = Config.fromfile(str(cdir / "ablate" / "base.py"))
    _apply_preset(cfg, settings, data_root, 1)
    with DefaultScope.overwrite_default_scope("unigrounding"):
        train = DATASETS.build(copy.deepcopy(cfg.train_dataloader.dataset))
        val = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    rel = []
    for i in range(len(train)):
        info = train.get_data_info(i)
        h, w = info["ori_shape"]
        for g in info["gt"]:
            x1, y1, x2, y2 = g["box"]
            rel.append(((x2 - x1) / w, (y2 - y1) / h))
    rw, rh = np.mean(rel, axis=0)
    ious, inters, unions = [], [], []
    for i in range(len(val)):
        info = val.get_data_info(i)
        h, w = info["ori_shape"]
        guess = np.array([w * (1 - rw) / 2, h * (1 - rh) / 2, w * (1 + rw) / 2, h * (1 + rh) / 2])
        ious.append(
            float(
                paired_box_iou(
                    torch.as_tensor(guess[None]), torch.as_tensor([info["gt"][0]["box"]])
                )[0]
            )
        )
        if task == "res":
            gt = union_mask(val[i]["data_samples"].gt_refs, (h, w), boxes_as_masks=True)
            pred = box_to_mask(guess.tolist(), h, w)
            inters.append(int(np.logical_and(pred, gt).sum()))
            unions.append(int(np.logical_or(pred, gt).sum()))
    ious = np.array(ious)
    row = {
        "rec_acc@0.5": float((ious >= 0.5).mean()),
        "rec_miou": float(ious.mean()),
        "n": len(ious),
    }
    if task == "res":
        row["res_ciou"] = sum(inters) / max(sum(unions), 1)
        row["res_giou"] = float(
            np.mean([a / u if u else 1.0 for a, u in zip(inters, unions, strict=True)])
        )
    return row


def run_codec(cfg: Config, work: Path) -> dict[str, dict]:
    """Fine-tune and evaluate one codec: its report row under ``""``, and one row
    per evaluation variant of the codec (the same checkpoint) under its name."""
    from mmengine.runner import Runner

    from .roundtrip import prepared_samples, roundtrip

    cfg.work_dir = str(work)
    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    runner.train()
    train_seconds = time.perf_counter() - start
    model = runner.model
    dataset = runner.test_dataloader.dataset
    samples = prepared_samples(model, [dataset[i] for i in range(min(len(dataset), 200))])

    def evaluate() -> dict:
        ceiling = roundtrip(model.codec, model.tokenizer, samples)
        return _row(runner.test(), ceiling, cfg, train_seconds)

    return over_eval_variants(model.codec, evaluate)


def over_eval_variants(codec, measure: Callable[[], dict]) -> dict[str, dict]:
    """``measure()`` for the codec as configured (under ``""``) and under each
    of its evaluation variants (its attributes restored afterwards)."""
    rows = {"": measure()}
    for variant, settings in codec.eval_variants.items():
        saved = {k: getattr(codec, k) for k in settings}
        for k, v in settings.items():
            setattr(codec, k, v)
        try:
            rows[variant] = measure()
        finally:
            for k, v in saved.items():
                setattr(codec, k, v)
    return rows


def default_jobs() -> int:
    """Two codecs at a time on a CPU-only machine with at least two cores (the
    tiny model's small matrix products use two threads poorly: two one-thread
    runs finish sooner than the same runs one after the other), else one."""
    import os

    if torch.cuda.is_available():
        return 1
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def _run_codec_in_process(cfg_path: str, work: str, threads: int) -> dict[str, dict]:
    """Worker of :func:`_run_codecs`: a fresh interpreter trains one codec."""
    torch.set_num_threads(threads)
    import unigrounding  # noqa: F401  (registration)

    return run_codec(Config.fromfile(cfg_path), Path(work))


def _run_stages(
    cdir: Path, stages: tuple[str, ...], settings: dict, data_root: Path, init: Path, threads: int
) -> tuple[Path, dict[str, dict]]:
    """A codec's own stages in order, each starting from the previous export
    (the first from ``init``): every stage's export, in order, and metrics."""
    torch.set_num_threads(threads)
    import unigrounding  # noqa: F401  (registration)

    exports, metrics = [], {}
    for stage in stages:
        init, metrics[stage] = run_stage(cdir, stage, settings, data_root, init, log=lambda _: None)
        exports.append(init)
    return exports, metrics


def _longest_chains(chains: set[tuple[str, ...]]) -> set[tuple[str, ...]]:
    """The stage chains that are no other chain's beginning: running those
    runs every stage once (``region_proxy``'s proposer stage is the first of
    ``token_collective``'s two)."""
    return {c for c in chains if c and not any(o != c and o[: len(c)] == c for o in chains)}


def _estimated_cost(cfg: Config) -> float:
    """A training job's estimated length: its config's ``ablate_cost`` (one
    iteration next to one of ``text_coords``) times its iterations."""
    return cfg.get("ablate_cost", 1.0) * cfg.train_cfg.max_iters


def _chain_cost(
    chain: tuple[str, ...], cdir: Path, settings: dict, data_root: Path, pretrained: Path
) -> float:
    """A stage chain's estimated length: its stages' costs, nothing for a
    cached one."""
    total, init = 0.0, pretrained
    for stage in chain:
        cfg, work = _stage_config(cdir, stage, settings, data_root, init)
        if not _is_cached(work):
            total += _estimated_cost(cfg)
        init = work / "export"
    return total


def _folder(name: str) -> str:
    """A row name (``"codec [variant]"``) as a directory name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _dumped(cfg: Config, folder: Path) -> Path:
    """``folder/ablate_config.py``: the exact config a codec row was trained with."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg.dump(str(folder / "ablate_config.py"))
    return folder / "ablate_config.py"


def _run_codecs(
    configs: dict[str, Config],
    work: Path,
    jobs: int,
    log: callable,
    stage_args: tuple[Path, dict, Path, Path],
) -> tuple[dict[str, dict[str, dict]], dict[str, dict]]:
    """Report rows per codec (in the order of ``configs``) and the metrics of
    the codecs' own stages (``ablate_stages``: e.g. a proposer's detection
    stage). ``stage_args`` are the config folder, preset, data root and the
    shared checkpoint those stages start from."""
    cdir, settings, data_root, pretrained = stage_args
    chains = {n: tuple(configs[n].pop("ablate_stages", ())) for n in configs}
    stage_metrics: dict[str, dict] = {}
    if jobs == 1:
        results = {}
        for name, cfg in configs.items():
            if chains[name]:
                exports, metrics = _run_stages(
                    cdir, chains[name], settings, data_root, pretrained, torch.get_num_threads()
                )
                stage_metrics.update(metrics)
                cfg.model.init_checkpoint = str(exports[-1])
            log(f"[ablate] fine-tuning {name}")
            results[name] = run_codec(cfg, _dumped(cfg, work / _folder(name)).parent)
        return results, stage_metrics
    import multiprocessing
    import os
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    threads = max(1, (os.cpu_count() or 1) // jobs)
    pending_chains = sorted(_longest_chains({c for c in chains.values() if c}))
    after = {
        name: next(c for c in pending_chains if c[: len(own)] == own)
        for name, own in chains.items()
        if own
    }
    seconds = {name: _estimated_cost(cfg) for name, cfg in configs.items()}
    for chain in pending_chains:
        seconds[chain] = _chain_cost(chain, *stage_args)
    # A free lane takes the first ready job of this order (not a queue inside
    # the pool, which would hand out jobs before their chains are done).
    order = dispatch_order(seconds, after, jobs)
    done: set = set()
    running: dict = {}
    results: dict[str, dict] = {}
    # spawn: a forked child would inherit torch's thread pools and any open state
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        while order or running:
            ready = [j for j in order if j not in after or after[j] in done]
            for job in ready[: jobs - len(running)]:
                order.remove(job)
                if job in configs:
                    cfg_path = _dumped(configs[job], work / _folder(job))
                    call = _run_codec_in_process, str(cfg_path), str(cfg_path.parent), threads
                else:
                    call = _run_stages, cdir, job, settings, data_root, pretrained, threads
                running[pool.submit(*call)] = job
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                done.add(job)
                if job in configs:
                    results[job] = future.result()
                    log(f"[ablate] {job} done")
                    continue
                exports, metrics = future.result()
                stage_metrics.update(metrics)
                log(f"[ablate] stages {', '.join(job)} done")
                for name, own in chains.items():
                    if own and job[: len(own)] == own:
                        configs[name].model.init_checkpoint = str(exports[len(own) - 1])
    return {name: results[name] for name in configs}, stage_metrics


def _row(metrics: dict, ceiling: dict, cfg: Config, train_seconds: float) -> dict:
    batch = cfg.train_dataloader.batch_size
    return {
        "rec_acc@0.5": metrics.get("rec/acc@0.5"),
        "rec_acc@0.75": metrics.get("rec/acc@0.75"),
        "rec_acc@0.9": metrics.get("rec/acc@0.9"),
        "rec_miou": metrics.get("rec/miou"),
        "res_ciou": metrics.get("res/ciou"),
        "res_giou": metrics.get("res/giou"),
        "parse_failures": metrics.get("rec/parse_failures"),
        "missing_predictions": metrics.get("rec/missing"),
        "eval_samples": metrics.get("rec/n"),
        "tokens_per_object": ceiling["tokens_per_object"],
        "roundtrip_box_iou": ceiling["box_iou_mean"],
        "train_samples_per_s": cfg.train_cfg.max_iters * batch / train_seconds,
        "decode_ms_per_object": metrics.get("rec/decode_ms_per_object"),
        "train_seconds": train_seconds,
        "train_iters": cfg.train_cfg.max_iters,
        # the codec's own metrics (``ablate_metrics`` of its ablate config)
        "codec_metrics": {k: v for k, v in metrics.items() if not k.startswith(("rec/", "res/"))},
    }


def run_ablation(
    out: str | Path,
    preset: str = "quick",
    codecs: list[str] | None = None,
    config_dir_path: str | Path | None = None,
    log=print,
    task: str = "rec",
    jobs: int | None = None,
    variants: bool = False,
    seed: int | None = None,
) -> dict:
    """Pretrain once (cached), fine-tune + evaluate each codec, write the report.

    Without ``codecs``, every registered codec whose units include the task's
    (``box`` for REC, ``mask`` for RES) takes part. ``jobs`` codecs train at
    once, each in its own process with an equal share of the CPU threads
    (default :func:`default_jobs`); results do not depend on it. With
    ``variants``, a codec's training variants (``ablate_variants`` of its
    ablate config: name → dotted config overrides, e.g. a paper's design
    ablation) are trained too, each a row ``"<codec> [<variant>]"``. ``seed``
    replaces the training seed of every stage and codec (the ShapesRef data
    stay the same): the spread over seeds is what tells a codec's lead from
    the noise of one quick run."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cdir = config_dir(config_dir_path)
    settings = dict(PRESETS[preset]) if seed is None else dict(PRESETS[preset], seed=seed)
    available = registered_codecs()
    unit = TASKS[task][1]
    names = codecs or [n for n, cls in available.items() if unit in cls.units]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown codec(s) {unknown}; registered: {sorted(available)}")
    data_root = shapesref_root(settings)
    pretrained, _ = run_stage(cdir, PRETRAIN_STAGE, settings, data_root, log=log)
    report = {
        "preset": preset,
        "task": task,
        "dataset": "shapesref",
        "seconds": 0.0,
        "settings": settings,
        "pretrained": str(pretrained),
        "baselines": {"center_box": center_box_baseline(cdir, settings, data_root, task)},
        "stages": {},
        "codecs": {},
    }
    jobs = default_jobs() if jobs is None else max(1, jobs)
    configs = {}
    for name in names:
        cfg = _codec_config(cdir, name)
        stages = cfg.get("ablate_stages", [])
        _apply_preset(cfg, settings, data_root, settings["finetune_iters"])
        _apply_task(cfg, task)
        cfg.model.init_checkpoint = str(pretrained)  # or its own stages' export
        cfg.ablate_stages = stages
        configs[name] = cfg
        for variant, overrides in (cfg.pop("ablate_variants", {}) if variants else {}).items():
            configs[f"{name} [{variant}]"] = copy.deepcopy(cfg)
            configs[f"{name} [{variant}]"].merge_from_dict(overrides)
    log(
        f"[ablate] fine-tuning {', '.join(names)} ({settings['finetune_iters']} iters each, "
        f"{jobs} at a time)"
    )
    rows_by_codec, report["stages"] = _run_codecs(
        configs, out / "work", jobs, log, (cdir, settings, data_root, pretrained)
    )
    for name, rows in rows_by_codec.items():
        for variant, row in rows.items():
            report["codecs"][f"{name} ({variant})" if variant else name] = row
    report["seconds"] = time.perf_counter() - start
    from .report import write_report

    write_report(report, out)
    log((out / "report.md").read_text())
    return report


def codec_roundtrip(name: str, n: int = 200, config_dir_path: str | Path | None = None) -> dict:
    """``unigrounding roundtrip``: the ceiling of the codec *with its default
    arguments* (e.g. Shikra's 3 decimals for ``text_coords``) on ShapesRef val,
    and of each of its evaluation variants. A codec with its own training
    stages (a proposer, a visual tokenizer) keeps its ablate config's
    arguments: the stages fix its parameters (e.g. the codebook size)."""
    from mmengine.registry import DefaultScope

    from .registry import DATASETS, MODELS
    from .roundtrip import prepared_samples, roundtrip

    cdir = config_dir(config_dir_path)
    cfg = _codec_config(cdir, name)
    settings = dict(PRESETS["quick"], eval_samples=n)
    data_root = shapesref_root(settings)
    start_from = None
    if cfg.get("ablate_stages"):  # e.g. the proposer whose boxes bound the ceiling
        start_from, _ = run_stage(cdir, PRETRAIN_STAGE, settings, data_root)
        for stage in cfg.ablate_stages:
            start_from, _ = run_stage(cdir, stage, settings, data_root, start_from)
    else:
        cfg.model.codec = {"type": name}
    _apply_preset(cfg, settings, data_root, 1)
    cfg.model.init_checkpoint = None if start_from is None else str(start_from)
    with DefaultScope.overwrite_default_scope("unigrounding"):
        model = MODELS.build(cfg.model)
        dataset = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    items = [dataset[i] for i in range(min(n, len(dataset)))]
    samples = prepared_samples(model, items)
    rows = over_eval_variants(model.codec, lambda: roundtrip(model.codec, model.tokenizer, samples))
    return {"codec": name, **rows.pop(""), **rows}
