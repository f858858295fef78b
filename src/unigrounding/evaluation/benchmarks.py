"""Benchmark metrics beyond REC / RES, each with its protocol stated.

* :class:`GRESMetric` — generalized RES (gRefCOCO, ReLA): cIoU, gIoU, N-acc,
  T-acc. A sample has no target when its referent has no instance, and
  "predicts no target" when its predicted mask is empty.
* :class:`LVISGroundAR` — LVIS-Ground (Groma): average recall with as many
  predictions as targets (AS-MANY), over IoU 0.5:0.95, plus AR@0.5 / 0.75 /
  small / medium / large, by lvis-api's rules (Groma's evaluator runs
  ``LVISEval``). Computed here (PyPI ``lvis`` breaks on numpy 2).
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
from mmengine.evaluator import BaseMetric

from ..registry import METRICS
from ..structures import metric_box_iou, scoring_boxes
from .grounding import RESMetric, union_mask


@METRICS.register_module()
class GRESMetric(RESMetric):
    """ReLA's gRES protocol.

    A sample has no target when its referent has no instance (an empty
    ``gt_refs``: gRefCOCO's ``ann_id`` ``[-1]``), whatever any mask holds; it
    predicts no target when its predicted mask is empty.

    * gIoU: mean per-sample IoU of the union masks; a no-target sample scores
      1 if the prediction is empty, else 0; a target sample scores I / U, 0
      when U is 0 (a target whose mask is empty, predicted empty).
    * cIoU: cumulative intersection over cumulative union of all samples
      (a no-target sample adds its predicted area to the union).
    * N-acc: of the no-target samples, the share predicted empty; T-acc: of
      the samples with targets, the share predicted non-empty.
    """

    default_prefix = "gres"
    protocol = "gres rela"

    def process(self, data_batch, data_samples: Sequence[Mapping]) -> None:
        super().process(data_batch, data_samples)
        for s, result in zip(data_samples, self.results[-len(data_samples) :], strict=True):
            gt = union_mask(s["gt_refs"], tuple(s["ori_shape"]), boxes_as_masks=True)
            # predicted area = union - target area + intersection
            result["predicted"] = result["union"] - int(gt.sum()) + result["inter"] > 0
            result["no_target"] = len(s["gt_refs"]["boxes"]) == 0

    def sample_iou(self, result: dict) -> float:
        """ReLA's per-sample term (gIoU's): see the class docstring."""
        if result["no_target"]:
            return float(not result["predicted"])
        return result["inter"] / result["union"] if result["union"] else 0.0

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        out = super().compute_metrics(results)
        empty = [not r["predicted"] for r in results if r["no_target"]]
        found = [r["predicted"] for r in results if not r["no_target"]]
        out["n_acc"] = float(np.mean(empty)) if empty else None
        out["t_acc"] = float(np.mean(found)) if found else None
        out["no_target_samples"] = len(empty)
        return out


def matched_targets(iou: np.ndarray, ignored: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``(T,)``: how many targets that are not ``ignored`` a one-to-one greedy
    matching recalls at each threshold, by lvis-api's ``evaluate_img``.

    Detections come in rank order (the rows of the ``(D, G)`` ``iou``); each
    takes the unmatched target of highest IoU ``>= t`` (the last of equal
    ones, as lvis-api's scan keeps it), a target not ``ignored`` (inside the
    area range) before an ignored one; a detection that takes an ignored
    target is not counted (nor is the target)."""
    out = np.zeros(len(thresholds), dtype=int)
    if not iou.size:
        return out
    for ti, t in enumerate(thresholds):
        taken = np.zeros(iou.shape[1], dtype=bool)
        for row in iou:
            candidates = ~taken & (row >= min(t, 1 - 1e-10))
            if (candidates & ~ignored).any():
                candidates &= ~ignored
            if candidates.any():
                index = np.flatnonzero(candidates)
                taken[index[row[index] == row[index].max()][-1]] = True
        out[ti] = int((taken & ~ignored).sum())
    return out


#: lvis-api's area ranges (pixels²), closed at both ends: an area on a bound
#: belongs to both buckets.
AREA_RANGES = {
    "all": (0.0, 1e10),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e10),
}


@METRICS.register_module()
class LVISGroundAR(BaseMetric):
    """Average recall with AS-MANY predictions: Groma's LVIS-Ground protocol,
    whose evaluator scores with lvis-api's ``LVISEval`` (bbox), reproduced here
    (PyPI ``lvis`` breaks on numpy 2).

    Each sample is one (image, category) query whose targets are every
    instance of the category in the image. The ``k`` best predictions are kept,
    ``k`` = number of targets (by ``scores`` when present, ties and no scores
    in output order). For each area range (:data:`AREA_RANGES`) and IoU ``t``
    in 0.50:0.05:0.95, targets whose area lies outside the range are ignored
    and the kept predictions are matched to the targets of their query
    (:func:`matched_targets`); a category's recall is its matched targets over
    its targets in the range, over all its queries; AR averages recall over
    the categories with targets in the range and over ``t``. A target's area
    is the annotation's ``area`` (LVIS: the mask's), from the sample's
    ``target_areas`` metainfo; where that is missing, its box area, and the
    result counts those targets (``areas_from_boxes``). Categories come from
    the ``category`` metainfo (else every sample is its own category).
    """

    default_prefix = "lvis_ground"
    protocol = "lvis-ground groma"
    #: lvis-api's thresholds, bit for bit (``linspace``: its 0.9 is 0.8999999999999999)
    THRESHOLDS = np.linspace(0.5, 0.95, 10)

    def process(self, data_batch, data_samples: Sequence[Mapping]) -> None:
        for s in data_samples:
            pred, gt = s["pred_refs"], s["gt_refs"]
            boxes = scoring_boxes(pred["boxes"]).numpy()
            if "scores" in pred and len(boxes):
                # lvis-api ranks by score with a stable sort
                boxes = boxes[np.argsort(-pred["scores"].double().numpy(), kind="stable")]
            gt_boxes = scoring_boxes(gt["boxes"]).numpy()
            boxes = boxes[: len(gt_boxes)]  # AS-MANY
            box_areas = (gt_boxes[:, 2:] - gt_boxes[:, :2]).prod(-1)
            given = s.get("target_areas") or [None] * len(gt_boxes)
            if len(given) != len(gt_boxes):
                raise ValueError(
                    f"sample {s.get('sample_id', '?')}: {len(given)} target_areas for "
                    f"{len(gt_boxes)} targets"
                )
            areas = np.array([b if a is None else a for a, b in zip(given, box_areas, strict=True)])
            iou = metric_box_iou(boxes, gt_boxes).numpy()
            self.results.append(
                {
                    "category": s.get("category", s.get("sample_id")),
                    "matched": {
                        name: matched_targets(iou, (areas < lo) | (areas > hi), self.THRESHOLDS)
                        for name, (lo, hi) in AREA_RANGES.items()
                    },
                    "targets": {
                        name: int(((areas >= lo) & (areas <= hi)).sum())
                        for name, (lo, hi) in AREA_RANGES.items()
                    },
                    "areas_from_boxes": sum(a is None for a in given),
                }
            )

    def compute_metrics(self, results: list[dict]) -> dict:
        by_cat: dict = defaultdict(list)
        for r in results:
            by_cat[r["category"]].append(r)

        def recall(name: str) -> np.ndarray | None:
            """``(categories, T)`` recall of the categories with targets in range ``name``."""
            per_cat = []
            for items in by_cat.values():
                targets = sum(r["targets"][name] for r in items)
                if targets:
                    per_cat.append(sum(r["matched"][name] for r in items) / targets)
            return np.array(per_cat) if per_cat else None

        every = recall("all")
        out = {
            "ar": float(every.mean()) if every is not None else 0.0,
            "ar@0.5": float(every[:, 0].mean()) if every is not None else 0.0,
            "ar@0.75": float(every[:, 5].mean()) if every is not None else 0.0,
        }
        for name in ("small", "medium", "large"):
            sized = recall(name)
            out[f"ar_{name}"] = float(sized.mean()) if sized is not None else None
        out["categories"] = len(by_cat)
        out["n"] = len(results)
        out["areas_from_boxes"] = sum(r["areas_from_boxes"] for r in results)
        out["protocol"] = self.protocol
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
    protocol = "pope first yes/no"

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
            "protocol": self.protocol,
        }


@METRICS.register_module()
class InteractiveSegMetric(RESMetric):
    """Interactive segmentation: RES cIoU / gIoU per visual-prompt type (the
    unit of the sample's first prompt: point, box, scribble or mask), and over
    all samples."""

    default_prefix = "interactive"
    protocol = "interactive-seg res lisa per prompt type"

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
            part = self.summary([r for r in results if r["prompt"] == prompt])
            out[f"{prompt}/ciou"], out[f"{prompt}/giou"] = part["ciou"], part["giou"]
            out[f"{prompt}/n"] = part["n"]
        return out
