"""GRPO after fine-tuning on ShapesRef: REC accuracy before and after, and
the reward curves.

    python benchmarks/grpo_shapesref.py CONFIG [CONFIG ...] --exports SFT_EXPORT [...]
        --out DIR [--seeds 0 1 2] [--iters N] [--preset quick] [--cfg-options k=v ...]

Each ``CONFIG`` is an RL stage (``configs/text_coords/grpo_shapesref.py``;
GETok-R1's two, ``configs/grid_offset/grpo_grid_shapesref.py`` then
``configs/grid_offset/grpo_offset_shapesref.py``), run one after the other,
each from the previous one's export. ``--exports`` are the fine-tuned
exports the chain starts from, one per seed in ``--seeds`` order (the same
export repeated: RL seeds on one checkpoint; an ``unigrounding ablate
--seeds`` run's ``seed_<s>/work/<codec>/export``: one per training seed).
"before" is the starting export evaluated as the last stage's model (its
overrides: e.g. with the offset pass), "after" the chain's result; each
stage is also scored before and after as its own model (e.g. grid-only for
the grid stage). Evaluation is on the preset's ShapesRef val expressions
(the ablation's cache and data). Prints per seed and the mean / spread of
REC Acc@0.5, Acc@0.75 and mIoU, writes ``DIR/grpo.json`` and
``DIR/reward_curves.png`` (one panel per stage). Prints figures only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmengine.config import Config, DictAction

METRICS = ("rec/acc@0.5", "rec/acc@0.75", "rec/miou")


def rl_config(
    path: str, export: str, seed: int, work: Path, settings: dict, iters: int | None, options: dict
) -> Config:
    """The RL config at ``path`` from ``export`` under the preset (``iters``:
    the config's own when ``None``)."""
    from unigrounding.ablate.configs import apply_preset
    from unigrounding.ablate.presets import shapesref_root

    cfg = Config.fromfile(path)
    cfg.merge_from_dict(options)
    iters = iters or cfg.train_cfg.max_iters
    cfg.model.policy, cfg.model.seed = str(export), seed
    apply_preset(cfg, dict(settings, seed=seed), shapesref_root(settings), iters)
    cfg.work_dir = str(work)
    # every iteration's own values in the log, for the reward curves
    cfg.default_hooks.logger.interval = 1
    cfg.log_processor = dict(by_epoch=False, window_size=1)
    return cfg


def scores(runner) -> dict[str, float]:
    metrics = runner.test()
    return {k: float(metrics[k]) for k in METRICS}


def reward_curve(work: Path) -> list[float]:
    (scalars,) = work.glob("*/vis_data/scalars.json")
    lines = [json.loads(line) for line in scalars.read_text().splitlines()]
    return [line["reward"] for line in lines if "reward" in line]


def plot(curves: dict[str, dict[int, list[float]]], out: Path, window: int = 10) -> None:
    """One panel per stage: each seed's reward, a ``window``-iteration mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 3.5), squeeze=False)
    for ax, (stage, by_seed) in zip(axes[0], curves.items(), strict=True):
        width = min(window, *(len(c) for c in by_seed.values()))
        for seed, curve in by_seed.items():
            smooth = np.convolve(curve, np.ones(width) / width, mode="valid")
            ax.plot(np.arange(len(smooth)) + width, smooth, label=f"seed {seed}")
        ax.set_title(stage, fontsize=9)
        ax.set_xlabel("iteration (one rollout each)")
        ax.set_ylabel(f"mean reward ({width}-iteration mean)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def summarise(rows: dict[int, dict]) -> dict[str, dict[str, float]]:
    summary = {}
    for key in METRICS:
        for phase in ("before", "after"):
            values = [rows[s][phase][key] for s in rows]
            summary[f"{phase} {key}"] = {
                "mean": sum(values) / len(values),
                "spread": max(values) - min(values),
            }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--exports", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--iters", type=int)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={})
    args = parser.parse_args()
    if len(args.exports) != len(args.seeds):
        parser.error(f"{len(args.exports)} export(s) for {len(args.seeds)} seed(s)")
    from mmengine.runner import Runner

    import unigrounding  # noqa: F401  (registration)
    from unigrounding.ablate import PRESETS
    from unigrounding.engine.runner import train

    settings = PRESETS[args.preset]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, curves = {}, {stage: {} for stage in args.configs}
    for seed, export in zip(args.seeds, args.exports, strict=True):
        work = out / f"seed_{seed}"
        common = (settings, args.iters, args.cfg_options)
        last = rl_config(args.configs[-1], export, seed, work / "before", *common)
        before = scores(Runner.from_cfg(last))
        stages, start = [], export
        for k, path in enumerate(args.configs):
            name = f"stage_{k}_{Path(path).stem}"
            if k == len(args.configs) - 1 and start == export:
                stage_before = before  # one stage: its before is the chain's
            else:
                cfg = rl_config(path, start, seed, work / f"{name}_before", *common)
                stage_before = scores(Runner.from_cfg(cfg))
            cfg = rl_config(path, start, seed, work / name, *common)
            runner = train(cfg)
            stages.append(
                {
                    "config": path,
                    "before": stage_before,
                    "after": scores(runner),
                    "train_iters": cfg.train_cfg.max_iters,
                }
            )
            curves[path][seed] = reward_curve(work / name)
            start = work / name / "export"
        rows[seed] = {"before": before, "after": stages[-1]["after"], "stages": stages}
        print(f"seed {seed}: before {before}  after {rows[seed]['after']}", flush=True)
    summary = summarise(rows)
    report = {"configs": args.configs, "seeds": rows, "summary": summary}
    for k in range(len(args.configs)):
        report[f"stage_{k}"] = summarise({s: rows[s]["stages"][k] for s in rows})
    (out / "grpo.json").write_text(json.dumps(report, indent=1))
    plot(curves, out / "reward_curves.png")
    for key, value in summary.items():
        print(f"{key}: mean {value['mean']:.3f}, spread {value['spread']:.3f}")


if __name__ == "__main__":
    main()
