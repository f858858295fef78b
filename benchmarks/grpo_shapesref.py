"""GRPO after fine-tuning on ShapesRef: REC accuracy before and after, and
the reward curves.

    python benchmarks/grpo_shapesref.py CONFIG SFT_EXPORT [SFT_EXPORT ...] --out DIR
        [--seeds 0 1 2] [--iters N] [--preset quick] [--cfg-options k=v ...]

``CONFIG`` is an RL config (``configs/text_coords/grpo_shapesref.py``,
``configs/grid_offset/grpo_grid_shapesref.py``); each ``SFT_EXPORT`` is one
seed's fine-tuned export of the same codec (an ``unigrounding ablate
--seeds`` run's ``seed_<s>/work/<codec>/export``), paired with ``--seeds``
in order. Each pair is evaluated as it starts (the RL config's model: e.g.
grid-only for the grid stage) and after the RL run, on the preset's
ShapesRef val expressions (the ablation's cache and data). Prints per seed
and the mean / spread of REC Acc@0.5, Acc@0.75 and mIoU, writes
``DIR/grpo.json`` and ``DIR/reward_curves.png``. Prints figures only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmengine.config import Config, DictAction

METRICS = ("rec/acc@0.5", "rec/acc@0.75", "rec/miou")


def rl_config(
    path: str, export: str, seed: int, work: Path, settings: dict, iters: int, options: dict
) -> Config:
    from unigrounding.ablate.configs import apply_preset
    from unigrounding.ablate.presets import shapesref_root

    cfg = Config.fromfile(path)
    cfg.merge_from_dict(options)
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


def plot(curves: dict[int, list[float]], out: Path, window: int = 10) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    window = min(window, *(len(c) for c in curves.values()))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for seed, curve in curves.items():
        smooth = np.convolve(curve, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(len(smooth)) + window, smooth, label=f"seed {seed}")
    ax.set_xlabel("iteration (one rollout each)")
    ax.set_ylabel(f"mean reward ({window}-iteration mean)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("exports", nargs="+")
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
    rows, curves = {}, {}
    for seed, export in zip(args.seeds, args.exports, strict=True):
        iters = args.iters or Config.fromfile(args.config).train_cfg.max_iters
        work = out / f"seed_{seed}"
        cfg = rl_config(
            args.config, export, seed, work / "before", settings, iters, args.cfg_options
        )
        before = scores(Runner.from_cfg(cfg))
        cfg = rl_config(args.config, export, seed, work / "rl", settings, iters, args.cfg_options)
        runner = train(cfg)
        after = scores(runner)
        curves[seed] = reward_curve(work / "rl")
        rows[seed] = {"before": before, "after": after, "train_iters": iters}
        print(f"seed {seed}: before {before}  after {after}", flush=True)
    summary = {}
    for key in METRICS:
        for phase in ("before", "after"):
            values = [rows[s][phase][key] for s in rows]
            summary[f"{phase} {key}"] = {
                "mean": sum(values) / len(values),
                "spread": max(values) - min(values),
            }
    report = {"config": args.config, "seeds": rows, "summary": summary}
    (out / "grpo.json").write_text(json.dumps(report, indent=1))
    plot(curves, out / "reward_curves.png")
    for key, value in summary.items():
        print(f"{key}: mean {value['mean']:.3f}, spread {value['spread']:.3f}")


if __name__ == "__main__":
    main()
