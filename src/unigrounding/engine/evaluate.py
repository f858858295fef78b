"""``unigrounding eval``: score a checkpoint — or a predictions file made
elsewhere — on a config's test set, with the same metrics and protocol.

Predictions files: our own records (what a checkpoint's evaluation writes,
``predictions.jsonl`` beside the metrics, so two models are always scored by
one code path), lmms-eval's and Qwen-VL's
(:mod:`~unigrounding.evaluation.prediction_files`). A test sample without a
prediction record is scored as an empty prediction and counted
(``unmatched_samples``); a record naming no test sample, or one answering a
sample twice, is an error.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope

from ..evaluation.prediction_files import (
    FRAMES,
    PredictionRecord,
    SampleIndex,
    read_prediction_file,
)
from ..registry import DATASETS, MODELS, SCOPE
from ..structures import (
    QWEN2_5_VL_PIXELS,
    GroundingDataSample,
    RefTargets,
    metric_box_iou,
    rle_encode,
)
from .export import build_exported, load_weights
from .runner import load_config


def record_from_sample(sample: GroundingDataSample) -> dict:
    """The predictions-file record of a predicted sample."""
    pred = sample.pred_refs
    record = {
        "sample_id": str(sample.sample_id),
        "boxes": pred.boxes.tolist(),
        "phrases": list(pred.phrases) if len(pred) else [],
        "text": sample.metainfo.get("pred_text", ""),
    }
    if "scores" in pred:
        record["scores"] = pred.scores.tolist()
    if "masks" in pred:
        record["masks"] = [rle_encode(m.numpy()) for m in pred.masks]
    return record


def sample_score(sample: GroundingDataSample) -> float:
    """Per-sample quality for picking best / worst cases: IoU of the first
    predicted and first target box; with no target, 1 if nothing was predicted."""
    pred, gt = sample.pred_refs, sample.gt_refs
    if not len(gt):
        return float(not len(pred))
    if not len(pred):
        return 0.0
    return float(metric_box_iou(pred.boxes[:1], gt.boxes[:1], paired=True)[0])


def evaluate(
    config,
    checkpoint: str | None = None,
    predictions: str | None = None,
    predictions_format: str = "unigrounding",
    frame: str | None = None,
    pixels: tuple[int, int] | None = None,
    work_dir: str | None = None,
    cfg_options: dict | None = None,
    visualize: int = 0,
) -> dict:
    """Metrics of ``checkpoint`` (or of a ``predictions`` file) on the config's
    test set, with the protocol settings used. Writes ``predictions.jsonl``
    (checkpoint runs) and, with ``visualize=N``, the ``N`` worst and ``N`` best
    samples as PNGs under ``work_dir/visualize``.

    A predictions file is read in ``predictions_format``, its answers in
    ``frame`` (default: the format's own; ``pixels`` are Qwen2.5-VL's
    ``(min_pixels, max_pixels)``), see :mod:`~unigrounding.evaluation.prediction_files`."""
    if (checkpoint is None) == (predictions is None):
        raise ValueError("give exactly one of a checkpoint and a predictions file")
    cfg = load_config(config, work_dir, cfg_options)
    with DefaultScope.overwrite_default_scope(SCOPE):
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
        evaluator = Evaluator(Config(dict(e=cfg.test_evaluator)).e)
    batch_size = cfg.test_dataloader.get("batch_size", 8)
    out_dir = Path(cfg.work_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scored: list[tuple[float, int, GroundingDataSample]] = []
    result: dict = {"config": str(cfg.filename)}
    if checkpoint is not None:
        model = _checkpoint_model(cfg, checkpoint).eval()
        result["checkpoint"] = str(checkpoint)
        predicted = _predict(model, dataset, batch_size)
        if predicted is None:  # another rank scores
            return {}
        with (out_dir / "predictions.jsonl").open("w") as sink:
            for start in range(0, len(predicted), batch_size):
                evaluator.process(predicted[start : start + batch_size])
            for i, s in enumerate(predicted):
                sink.write(json.dumps(record_from_sample(s)) + "\n")
                scored.append((sample_score(s), i, s))
        result["predictions_file"] = str(out_dir / "predictions.jsonl")
    else:
        records = read_prediction_file(predictions, predictions_format, frame)
        pixels = pixels or QWEN2_5_VL_PIXELS
        samples = [dataset[i]["data_samples"] for i in range(len(dataset))]
        index = SampleIndex(samples)
        answered: dict[int, PredictionRecord] = {}
        for rec in records:
            i = index.match(rec)
            if i in answered:
                raise ValueError(
                    f"{rec.where}: answers sample {samples[i].sample_id} again "
                    f"(first in {answered[i].where})"
                )
            answered[i] = rec
        for i, s in enumerate(samples):
            rec = answered.get(i)
            s.pred_refs = (
                RefTargets.empty() if rec is None else rec.refs(tuple(s.ori_shape), pixels)
            )
            s.set_metainfo({"pred_text": "" if rec is None else rec.text})
            scored.append((sample_score(s), i, s))
        for start in range(0, len(samples), batch_size):
            evaluator.process(samples[start : start + batch_size])
        used = sorted({rec.frame for rec in records})
        result.update(
            predictions_file=str(predictions),
            unmatched_samples=len(samples) - len(answered),
            predictions={
                "format": predictions_format,
                "frames": {name: FRAMES[name] for name in used},
                **({"qwen2_5_vl_pixels": list(pixels)} if "qwen2_5_vl" in used else {}),
            },
        )
    metrics = evaluator.evaluate(len(dataset))
    result["metrics"] = {k: v.item() if hasattr(v, "item") else v for k, v in metrics.items()}
    result["protocol"] = protocol(cfg)
    if visualize:
        result["visualizations"] = _visualize(scored, dataset, visualize, out_dir / "visualize")
    return result


def _predict(model, dataset, batch_size: int) -> list[GroundingDataSample] | None:
    """Predictions for every sample, in dataset order, with a progress bar.
    Under ``torchrun`` each rank predicts every world-size-th sample and
    rank 0 gathers them (``None`` on the other ranks)."""
    import torch.distributed as dist
    from tqdm import tqdm

    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    mine = list(range(rank, len(dataset), world))
    out: list[tuple[int, GroundingDataSample]] = []
    with tqdm(total=len(mine), desc="eval", unit="sample", disable=rank != 0) as bar:
        for start in range(0, len(mine), batch_size):
            indices = mine[start : start + batch_size]
            items = [dataset[i] for i in indices]
            inputs = torch.stack([x["inputs"] for x in items])
            with torch.no_grad():
                samples = model(inputs, [x["data_samples"] for x in items], mode="predict")
            out += [(i, s.cpu()) for i, s in zip(indices, samples, strict=True)]
            bar.update(len(indices))
    if world > 1:
        gathered = [None] * world if rank == 0 else None
        dist.gather_object(out, gathered, dst=0)
        # scoring is rank 0's alone; mmengine's metrics would otherwise wait
        # to collect results from the other ranks
        dist.barrier()
        dist.destroy_process_group()
        if rank != 0:
            return None
        out = [pair for part in gathered for pair in part]
    return [s for _, s in sorted(out, key=lambda pair: pair[0])]


def _checkpoint_model(cfg: Config, checkpoint: str | Path) -> torch.nn.Module:
    """An export folder builds its own model (its JSON config); a training
    checkpoint (``.pth``) or bare ``.safetensors`` loads into the config's.
    On the GPU when there is one."""
    if Path(checkpoint).is_dir():
        model = build_exported(checkpoint)
    else:
        with DefaultScope.overwrite_default_scope(SCOPE):
            model = MODELS.build(cfg.model)
        load_weights(model, checkpoint)
    if torch.cuda.is_available():
        import os

        return model.to(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return model


def _visualize(scored: list, dataset, n: int, out: Path) -> list[str]:
    """PNGs of the ``n`` worst and ``n`` best samples (prediction coloured,
    ground truth green), titled with the expression and the IoU."""
    from ..data.pipeline import load_rgb
    from ..visualize import draw_refs

    out.mkdir(parents=True, exist_ok=True)
    ranked = sorted(scored, key=lambda x: (x[0], x[1]))
    picks = [("worst", x) for x in ranked[:n]] + [("best", x) for x in ranked[::-1][:n]]
    paths = []
    for rank, (kind, (score, index, sample)) in enumerate(picks):
        image = load_rgb(sample.image_path, f"sample {sample.sample_id}")
        title = f"{sample.metainfo.get('expression', '')}  IoU {score:.2f}"
        path = out / f"{kind}_{rank % n:02d}_{index}.png"
        draw_refs(image, sample.pred_refs, title=title, gt=sample.gt_refs).save(path)
        paths.append(str(path))
    return paths


def protocol(cfg: Config) -> dict:
    """The settings a number depends on, written next to it."""
    return {
        "evaluators": json.loads(json.dumps(cfg.get("test_evaluator"), default=str)),
        "dataset": json.loads(json.dumps(cfg.test_dataloader.dataset, default=str)),
        "frame": "IoU in original-image pixels; model input is pad-to-square then resize",
        "rec_hit": "IoU >= threshold, in float64; missing or unreadable prediction counts as a miss",
        "decoding": "greedy",
    }
