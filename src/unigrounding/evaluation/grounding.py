"""REC and RES metrics (DESIGN.md section 6 protocols).

REC: top-1 predicted box against the (single) target box, IoU in original-image
pixels, a hit when IoU ``>=`` the threshold; a sample with no readable box is a
miss and is counted (``missing``), as are samples whose output had unreadable
parts (``parse_failures``) and those whose output was read only after a repair
(``parse_repairs``: corners swapped back, values clipped to the image). RES:
cIoU = ΣI / ΣU over the split, gIoU = mean per-sample IoU where an empty
target predicted empty counts 1.0 (LISA / ReLA).

mmengine's evaluator hands metrics ``GroundingDataSample.to_dict()`` output, so
samples and referents are read as mappings (``refs["boxes"]``); ``RefTargets``
itself supports the same access.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from ..registry import METRICS
from ..structures import box_to_mask, metric_box_iou


def rec_iou(pred: Mapping, gt: Mapping, sample_id: str = "?") -> float | None:
    """IoU of the first predicted box with the target box; ``None`` if no prediction."""
    if len(pred["boxes"]) == 0:
        return None
    if len(gt["boxes"]) != 1:
        raise ValueError(
            f"sample {sample_id}: REC needs exactly one target box, got {len(gt['boxes'])}"
        )
    return float(metric_box_iou(pred["boxes"][:1], gt["boxes"][:1], paired=True)[0])


def union_mask(refs: Mapping, hw: tuple[int, int], boxes_as_masks: bool) -> np.ndarray | None:
    """Union of a referent's instance masks; ``None`` if it has boxes but no masks
    (unless ``boxes_as_masks``, which rasterises the boxes)."""
    out = np.zeros(hw, dtype=bool)
    if len(refs["boxes"]) == 0:
        return out
    if "masks" in refs:
        return np.asarray(refs["masks"]).any(0)
    if not boxes_as_masks:
        return None
    for box in refs["boxes"].tolist():
        out |= box_to_mask(box, *hw)
    return out


@METRICS.register_module()
class RECMetric(BaseMetric):
    """Acc@τ for each threshold, mean IoU, missing predictions, parse failures
    and repairs. After scoring, ``per_sample`` holds each sample's IoU (a
    missing prediction 0) by sample id, for paired comparisons of models."""

    default_prefix = "rec"
    protocol = "rec-acc@iou>=t, float64"
    per_sample_score = "iou"
    per_sample: dict[str, float] | None = None

    def __init__(self, thresholds: Sequence[float] = (0.5, 0.75, 0.8, 0.9), **kwargs) -> None:
        super().__init__(**kwargs)
        self.thresholds = tuple(thresholds)

    def process(self, data_batch, data_samples: Sequence[Mapping]) -> None:
        for s in data_samples:
            pred = s["pred_refs"]
            iou = rec_iou(pred, s["gt_refs"], s.get("sample_id", "?"))
            self.results.append(
                {
                    "sample_id": str(s.get("sample_id", "?")),
                    "iou": iou,
                    "failures": pred.get("parse_failures", 0),
                    "repairs": pred.get("parse_repairs", 0),
                    "decode_ms": s.get("decode_ms"),
                    "decoded": len(pred["boxes"]),
                }
            )

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        ious = np.array([r["iou"] if r["iou"] is not None else 0.0 for r in results])
        self.per_sample = {r["sample_id"]: float(v) for r, v in zip(results, ious, strict=True)}
        out = {
            f"acc@{t:g}": float((ious >= t).mean()) if len(ious) else 0.0 for t in self.thresholds
        }
        out["miou"] = float(ious.mean()) if len(ious) else 0.0
        out["missing"] = sum(r["iou"] is None for r in results)
        out["parse_failures"] = sum(r["failures"] > 0 for r in results)
        out["parse_repairs"] = sum(r.get("repairs", 0) > 0 for r in results)
        out["n"] = len(results)
        timed = [r for r in results if r["decode_ms"] is not None]
        objects = sum(r["decoded"] for r in timed)
        out["decode_ms_per_object"] = (
            sum(r["decode_ms"] for r in timed) / objects if objects else 0.0
        )
        out["protocol"] = self.protocol
        return out


@METRICS.register_module()
class RESMetric(BaseMetric):
    """cIoU and gIoU of predicted vs target masks (union over instances).

    A codec that outputs only boxes has no mask prediction: such samples are
    counted in ``no_mask_output`` and scored as empty masks, unless
    ``boxes_as_masks=True`` rasterises its boxes (a declared, weaker protocol).
    After scoring, ``per_sample`` holds each sample's gIoU term by sample id.
    """

    default_prefix = "res"
    protocol = "res lisa"
    per_sample_score = "giou"
    per_sample: dict[str, float] | None = None

    def __init__(self, boxes_as_masks: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.boxes_as_masks = boxes_as_masks

    def process(self, data_batch, data_samples: Sequence[Mapping]) -> None:
        for s in data_samples:
            hw = tuple(s["ori_shape"])
            gt = union_mask(s["gt_refs"], hw, boxes_as_masks=True)
            pred = union_mask(s["pred_refs"], hw, self.boxes_as_masks)
            no_mask = pred is None
            if no_mask:
                pred = np.zeros(hw, dtype=bool)
            inter = int(np.logical_and(pred, gt).sum())
            union = int(np.logical_or(pred, gt).sum())
            self.results.append(
                {
                    "sample_id": str(s.get("sample_id", "?")),
                    "inter": inter,
                    "union": union,
                    "no_mask": no_mask,
                }
            )

    def sample_iou(self, result: dict) -> float:
        """gIoU's per-sample term: an empty target predicted empty scores 1."""
        return result["inter"] / result["union"] if result["union"] else 1.0

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        self.per_sample = {r["sample_id"]: self.sample_iou(r) for r in results}
        return self.summary(results)

    def summary(self, results: list[dict]) -> dict[str, float]:
        """The metrics of ``results`` (any subset of the split's)."""
        inter = sum(r["inter"] for r in results)
        union = sum(r["union"] for r in results)
        per_sample = [self.sample_iou(r) for r in results]
        return {
            "ciou": inter / union if union else 1.0,
            "giou": float(np.mean(per_sample)) if per_sample else 0.0,
            "no_mask_output": sum(r["no_mask"] for r in results),
            "boxes_as_masks": self.boxes_as_masks,
            "n": len(results),
            "protocol": self.protocol,
        }
