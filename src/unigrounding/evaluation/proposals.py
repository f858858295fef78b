"""Class-agnostic proposal recall (a region proposer's detection stage).

Protocol: every ground-truth box of the split counts once; it is recalled at
``k`` if one of the image's ``k`` best-scoring proposals has IoU ``>=`` the
threshold with it (original-image pixels). An image without proposals recalls
nothing; an image without ground truth adds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from ..registry import METRICS
from ..structures import metric_box_iou


def recalled(
    proposals: torch.Tensor, scores: torch.Tensor, gt: torch.Tensor, k: int, iou: float
) -> np.ndarray:
    """``(M,)`` bool: which of the ``(M, 4)`` ``gt`` boxes one of the top-``k``
    ``proposals`` (by ``scores``) covers with IoU ``>= iou``."""
    if len(gt) == 0:
        return np.zeros(0, dtype=bool)
    if len(proposals) == 0:
        return np.zeros(len(gt), dtype=bool)
    top = scores.float().argsort(descending=True)[:k]
    best = metric_box_iou(gt, proposals[top]).max(dim=1).values
    return (best >= iou).numpy()


@METRICS.register_module()
class ProposalRecall(BaseMetric):
    """Recall of ground-truth boxes by the top-``k`` proposals, for each ``k``,
    at IoU ``iou`` (Groma's proposer check: recall@100, IoU 0.5); also the mean
    number of proposals per image."""

    default_prefix = "proposals"
    protocol = "proposal-recall top-k iou>=t, float64"

    def __init__(self, ks: Sequence[int] = (10, 100), iou: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ks, self.iou = tuple(ks), iou

    def process(self, data_batch, data_samples: Sequence[Mapping]) -> None:
        for s in data_samples:
            pred, gt = s["pred_refs"], s["gt_refs"]
            scores = pred["scores"] if "scores" in pred else torch.zeros(len(pred["boxes"]))
            self.results.append(
                {
                    "hits": {
                        k: recalled(pred["boxes"], scores, gt["boxes"], k, self.iou)
                        for k in self.ks
                    },
                    "n": len(pred["boxes"]),
                }
            )

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        out = {}
        for k in self.ks:
            hits = np.concatenate([r["hits"][k] for r in results]) if results else np.zeros(0)
            out[f"recall@{k}"] = float(hits.mean()) if len(hits) else 0.0
        out["per_image"] = float(np.mean([r["n"] for r in results])) if results else 0.0
        out["iou"] = self.iou
        out["protocol"] = self.protocol
        return out
