"""Benchmark metrics beyond REC / RES, each with its protocol stated.

* :class:`GRESMetric` — generalized RES (gRefCOCO, ReLA): cIoU, gIoU, N-acc,
  T-acc. A sample "predicts no target" when its predicted mask is empty.
* :class:`LVISGroundAR` — LVIS-Ground (Groma): average recall with as many
  predictions as targets (AS-MANY), over IoU 0.5:0.95, plus AR@0.5 / 0.75 /
  small / medium / large. Computed here (PyPI ``lvis`` breaks on numpy 2).
* :class:`POPEMetric` — yes/no hallucination probes (POPE; ClawMachine's
  Ref-Hal uses the same format): accuracy, precision, recall, F1 and the
  yes-ratio of the *predictions*.
* :class:`InteractiveSegMetric` — mIoU / cIoU per visual-prompt type (point,
  box, scribble, mask).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from torchvision.ops import box_iou

from ..registry import METRICS
from .grounding import RESMetric, union_mask


@METRICS.register_module()
class GRESMetric(RESMetric):
    """ReLA's gRES protocol.

    * gIoU: mean per-sample IoU of the union masks; a no-target sample scores
      1 if the prediction is empty, else 0.
    * cIoU: cumulative intersection over cumulative union of all samples
      (a no-target sample adds its predicted area to the union).
    * N-acc: of the no-target samples, the share predicted empty; T-acc: of
      the samples with targets, the share predicted non-empty.
    """

    default_prefix = "gres"

    def process(self, data_batch, data_samples: Sequence[Mapping]) -> None:
        super().process(data_batch, data_samples)
        for s, result in zip(data_samples, self.results[-len(data_samples) :], strict=True):
            gt = union_mask(s["gt_refs"], tuple(s["ori_shape"]), boxes_as_masks=True)
            result["gt_area"] = int(gt.sum())

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        out = super().compute_metrics(results)
        # predicted area = union - target area + intersection
        predicted = [r["union"] - r["gt_area"] + r["inter"] > 0 for r in results]
        empty = [not p for p, r in zip(predicted, results, strict=True) if r["gt_area"] == 0]
        found = [p for p, r in zip(predicted, results, strict=True) if r["gt_area"] > 0]
        out["n_acc"] = float(np.mean(empty)) if empty else None
        out["t_acc"] = float(np.mean(found)) if found else None
        out["no_target_samples"] = len(empty)
        return out


def _recalled_at(pred: torch.Tensor, gt: torch.Tensor, thresholds: np.ndarray) -> np.ndarray:
    """``(T, M)`` bool: which of the ``M`` targets a one-to-one greedy matching
    (predictions in rank order, each to its best unmatched target at IoU
    ``>= t``, COCO-style) recalls, per threshold."""
    out = np.zeros((len(thresholds), len(gt)), dtype=bool)
    if not len(gt) or not len(pred):
        return out
    iou = box_iou(pred.double(), gt.double()).numpy()
    for ti, t in enumerate(thresholds):
        taken = out[ti]
        for row in iou:
            candidates = np.where(~taken & (row >= t))[0]
            if len(candidates):
                taken[candidates[np.argmax(row[candidates])]] = True
    return out


#: COCO's area ranges (pixels²) for small / medium / large objects.
AREA_RANGES = {"small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, float("inf"))}


@METRICS.register_module()
class LVISGroundAR(BaseMetric):
    """Average recall with AS-MANY predictions (Groma's LVIS-Ground protocol).

    Each sample is one (image, category) query whose targets are every
    instance of the category in the image. The ``k`` best predictions are kept,
    ``k`` = number of targets (by ``scores`` when present, else in output
    order). Recall at IoU ``t`` is computed per category over all its targets
    (greedy one-to-one matching per image), then averaged over categories;
    AR averages over ``t`` in 0.50:0.05:0.95. Size buckets use the target box
    area in original-image pixels (COCO ranges). Categories come from the
    sample's ``category`` metainfo (else every sample is its own category).
    """

    default_prefix = "lvis_ground"
    THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)

    def process(self, data_batch, data_samples: Sequence[Mapping]) -> None:
        for s in data_samples:
            pred, gt = s["pred_refs"], s["gt_refs"]
            boxes = pred["boxes"].float()
            if "scores" in pred and len(boxes):
                boxes = boxes[pred["scores"].float().argsort(descending=True)]
            gt_boxes = gt["boxes"].float()
            boxes = boxes[: len(gt_boxes)]  # AS-MANY
            areas = ((gt_boxes[:, 2:] - gt_boxes[:, :2]).prod(-1)).numpy()
            self.results.append(
                {
                    "category": s.get("category", s.get("sample_id")),
                    "hits": _recalled_at(boxes, gt_boxes, self.THRESHOLDS),
                    "areas": areas,
                }
            )

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        by_cat: dict = defaultdict(list)
        for r in results:
            by_cat[r["category"]].append(r)

        def ar(select) -> float | None:
            per_cat = []
            for items in by_cat.values():
                hits = np.concatenate([r["hits"][:, select(r["areas"])] for r in items], axis=1)
                if hits.shape[1]:
                    per_cat.append(hits.mean(axis=1))
            return np.mean(per_cat, axis=0) if per_cat else None

        every = ar(lambda a: np.ones(len(a), dtype=bool))
        out = {
            "ar": float(every.mean()) if every is not None else 0.0,
            "ar@0.5": float(every[0]) if every is not None else 0.0,
            "ar@0.75": float(every[5]) if every is not None else 0.0,
        }
        for name, (lo, hi) in AREA_RANGES.items():
            sized = ar(lambda a, lo=lo, hi=hi: (a >= lo) & (a < hi))
            out[f"ar_{name}"] = float(sized.mean()) if sized is not None else None
        out["categories"] = len(by_cat)
        out["n"] = len(results)
        return out


_YES_NO = re.compile(r"\b(yes|no)\b", re.I)


def yes_no(text: str) -> str | None:
    """``"yes"`` / ``"no"``: the first of the two words in ``text`` (POPE's
    reading), ``None`` if neither occurs."""
    found = _YES_NO.search(text or "")
    return found.group(1).lower() if found else None


@METRICS.register_module()
class POPEMetric(BaseMetric):
    """POPE-style yes/no probes. The ground truth is the sample's ``answer``
    metainfo (``yes`` / ``no``), the prediction :func:`yes_no` of its
    ``pred_text``; an answer with neither word counts as wrong, is neither a
    yes nor a no for precision / recall, and is reported (``unanswered``).
    ``yes_ratio`` is the share of *predictions* that say yes."""

    default_prefix = "pope"

    def process(self, data_batch, data_samples: Sequence[Mapping]) -> None:
        for s in data_samples:
            truth = yes_no(str(s.get("answer", "")))
            if truth is None:
                raise ValueError(
                    f"sample {s.get('sample_id', '?')}: POPE needs an 'answer' of yes or no, "
                    f"got {s.get('answer')!r}"
                )
            self.results.append({"truth": truth, "pred": yes_no(s.get("pred_text", ""))})

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        tp = sum(r["truth"] == "yes" and r["pred"] == "yes" for r in results)
        fp = sum(r["truth"] == "no" and r["pred"] == "yes" for r in results)
        fn = sum(r["truth"] == "yes" and r["pred"] != "yes" for r in results)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        n = len(results)
        return {
            "accuracy": sum(r["truth"] == r["pred"] for r in results) / n if n else 0.0,
            "precision": precision,
            "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "yes_ratio": sum(r["pred"] == "yes" for r in results) / n if n else 0.0,
            "unanswered": sum(r["pred"] is None for r in results),
            "n": n,
        }


@METRICS.register_module()
class InteractiveSegMetric(RESMetric):
    """Interactive segmentation: RES cIoU / gIoU per visual-prompt type (the
    unit of the sample's first prompt: point, box, scribble or mask), and over
    all samples."""

    default_prefix = "interactive"

    def process(self, data_batch, data_samples: Sequence[Mapping]) -> None:
        super().process(data_batch, data_samples)
        for s, result in zip(data_samples, self.results[-len(data_samples) :], strict=True):
            units = s["prompt_refs"]["units"]
            if not units:
                raise ValueError(f"sample {s.get('sample_id', '?')}: no visual prompt")
            result["prompt"] = units[0]

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        out = super().compute_metrics(results)
        for prompt in sorted({r["prompt"] for r in results}):
            part = super().compute_metrics([r for r in results if r["prompt"] == prompt])
            out[f"{prompt}/ciou"], out[f"{prompt}/giou"] = part["ciou"], part["giou"]
            out[f"{prompt}/n"] = part["n"]
        return out
