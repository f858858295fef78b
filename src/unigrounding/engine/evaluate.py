"""``unigrounding eval``: score a checkpoint — or a predictions file made
elsewhere — on a config's test set, with the same metrics and protocol.

Predictions file (JSON list or JSON lines), one record per sample, geometry in
original-image pixels::

    {"sample_id": "...", "boxes": [[x1, y1, x2, y2], ...], "scores": [...],
     "masks": [<COCO RLE>, ...], "phrases": [...], "text": "..."}

Only ``sample_id`` and ``boxes`` are required. ``unigrounding eval`` on a
checkpoint writes its own predictions in this format (``predictions.jsonl``
beside the metrics), so two models are always scored by one code path. A
test sample without a prediction record is scored as an empty prediction and
counted (``unmatched_samples``); a record naming no test sample is an error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope

from ..registry import DATASETS, MODELS, SCOPE
from ..structures import GroundingDataSample, RefTargets, metric_box_iou, rle_decode, rle_encode
from .export import build_exported, load_weights
from .runner import load_config


def read_predictions(path: str | Path) -> dict[str, dict]:
    """Records of a predictions file by ``sample_id``; errors name the line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"predictions file not found: {path}")
    text = path.read_text()
    try:
        records = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON or JSON lines (line {exc.lineno}: {exc.msg})") from exc
    out = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or "sample_id" not in rec or "boxes" not in rec:
            raise ValueError(f"{path} record {i}: needs 'sample_id' and 'boxes'")
        out[str(rec["sample_id"])] = rec
    return out


def refs_from_record(record: dict, hw: tuple[int, int], where: str) -> RefTargets:
    """A prediction record as ``RefTargets`` (boxes validated, masks decoded)."""
    boxes = record["boxes"]
    if not boxes:
        return RefTargets.empty()
    masks = None
    if record.get("masks"):
        masks = np.stack([rle_decode(m, *hw, where=where) for m in record["masks"]])
    return RefTargets.build(
        boxes,
        phrases=record.get("phrases"),
        scores=record.get("scores"),
        masks=masks,
        where=where,
    )


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
    work_dir: str | None = None,
    cfg_options: dict | None = None,
    visualize: int = 0,
) -> dict:
    """Metrics of ``checkpoint`` (or of a ``predictions`` file) on the config's
    test set, with the protocol settings used. Writes ``predictions.jsonl``
    (checkpoint runs) and, with ``visualize=N``, the ``N`` worst and ``N`` best
    samples as PNGs under ``work_dir/visualize``."""
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
        records = read_predictions(predictions)
        known, samples, unmatched = set(), [], 0
        for i in range(len(dataset)):
            s = dataset[i]["data_samples"]
            sid = str(s.sample_id)
            known.add(sid)
            rec = records.get(sid)
            unmatched += rec is None
            hw = tuple(s.ori_shape)
            s.pred_refs = (
                RefTargets.empty()
                if rec is None
                else refs_from_record(rec, hw, f"{predictions} sample {sid}")
            )
            s.set_metainfo({"pred_text": "" if rec is None else rec.get("text", "")})
            samples.append(s)
            scored.append((sample_score(s), i, s))
        stray = sorted(set(records) - known)
        if stray:
            raise ValueError(
                f"{predictions}: {len(stray)} record(s) name no test sample, e.g. {stray[:3]}"
            )
        for start in range(0, len(samples), batch_size):
            evaluator.process(samples[start : start + batch_size])
        result.update(predictions_file=str(predictions), unmatched_samples=unmatched)
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
