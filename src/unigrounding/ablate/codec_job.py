"""One codec's job in the ablation: fine-tune, evaluate (also under each of
its evaluation variants), then its RL stages if it has them, and the report
rows it gives."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mmengine.config import Config


def run_codec(cfg: Config, work: Path) -> dict[str, dict]:
    """Fine-tune and evaluate one codec: its report row under ``""``, one row
    per evaluation variant of the codec (the same checkpoint) under its name,
    and, when the config carries RL stages (``ablate_rl_stages``, see
    :func:`~.configs.rl_stage_configs`), the rows of the model they end with
    under ``"GRPO"`` and ``"GRPO, <variant>"``."""
    rl_stages = cfg.pop("ablate_rl_stages", [])
    cfg.work_dir = str(work)
    rows = trained_rows(cfg, lambda runner: runner.model)
    start = work / "export"
    for k, stage in enumerate(rl_stages):
        stage = Config(stage)
        stage.model.policy, stage.work_dir = str(start), str(rl_stage_dir(work, k))
        if k < len(rl_stages) - 1:
            _train(stage)
        else:
            final = trained_rows(stage, lambda runner: runner.model.policy)
            rows.update({f"GRPO, {v}" if v else "GRPO": row for v, row in final.items()})
        start = rl_stage_dir(work, k) / "export"
    return rows


def rl_stage_dir(work: Path, k: int) -> Path:
    """The work dir of a codec job's RL stage ``k``, inside the job's."""
    return work / f"rl_{k}"


def _train(cfg: Config):
    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    runner.train()
    return runner, time.perf_counter() - start


def trained_rows(cfg: Config, grounding_model: Callable) -> dict[str, dict]:
    """Train ``cfg`` and evaluate what it trained (``grounding_model(runner)``,
    the model that holds the codec) as it is and under each evaluation variant."""
    from ..roundtrip import prepared_samples, roundtrip

    runner, train_seconds = _train(cfg)
    model = grounding_model(runner)
    dataset = runner.test_dataloader.dataset
    samples = prepared_samples(model, [dataset[i] for i in range(min(len(dataset), 200))])

    def evaluate() -> dict:
        ceiling = roundtrip(model.codec, model.tokenizer, samples)
        row = report_row(runner.test(), ceiling, cfg, train_seconds)
        row["per_sample"] = per_sample_scores(runner.test_loop.evaluator.metrics)
        return row

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


def per_sample_scores(metrics: list) -> dict[str, dict[str, float]]:
    """Each evaluation sample's score by sample id, from the test metrics just
    run: REC IoU (``rec_iou``), RES gIoU term (``res_giou``) — what paired
    comparisons of codecs and their intervals are computed from."""
    return {
        f"{m.prefix}_{m.per_sample_score}": dict(m.per_sample)
        for m in metrics
        if getattr(m, "per_sample", None) is not None
    }


def report_row(metrics: dict, ceiling: dict, cfg: Config, train_seconds: float) -> dict:
    """A codec's row of ``report.json`` (DESIGN.md section 7) from its test
    metrics and its processor's round-trip ceiling."""
    batch = cfg.train_dataloader.batch_size
    return {
        "rec_acc@0.5": metrics.get("rec/acc@0.5"),
        "rec_acc@0.75": metrics.get("rec/acc@0.75"),
        "rec_acc@0.9": metrics.get("rec/acc@0.9"),
        "rec_miou": metrics.get("rec/miou"),
        "res_ciou": metrics.get("res/ciou"),
        "res_giou": metrics.get("res/giou"),
        "parse_failures": metrics.get("rec/parse_failures"),
        "parse_repairs": metrics.get("rec/parse_repairs"),
        "missing_predictions": metrics.get("rec/missing"),
        "eval_samples": metrics.get("rec/n"),
        "tokens_per_object": ceiling["tokens_per_object"],
        "roundtrip_box_iou": ceiling["box_iou_mean"],
        "train_samples_per_s": cfg.train_cfg.max_iters * batch / train_seconds,
        "decode_ms_per_object": metrics.get("rec/decode_ms_per_object"),
        "train_seconds": train_seconds,
        "train_iters": cfg.train_cfg.max_iters,
        # the codec's own metrics (``ablate_metrics`` of its ablate config)
        "codec_metrics": {
            k: v
            for k, v in metrics.items()
            if not k.startswith(("rec/", "res/")) and not k.endswith("/protocol")
        },
        # which protocol each metric followed, by metric prefix
        "protocols": {
            k.removesuffix("/protocol"): v for k, v in metrics.items() if k.endswith("/protocol")
        },
    }
