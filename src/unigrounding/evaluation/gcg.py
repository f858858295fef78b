"""Grounded conversation generation (GCG): is every object of the image named
and boxed?

GLaMM's GCG protocol scores the caption (METEOR / CIDEr), the masks (mIoU)
and a phrase-grounding recall. On ShapesRef a grounded caption is nothing
but its grounded phrases ("a red circle <box>, a big square <box>."), so this
metric scores the (phrase, box) pairs directly and is codec-neutral: it reads
``pred_refs`` (phrases and boxes), never the codec's text.

Predicted and target instances are matched one-to-one by box IoU (Hungarian).
A target is *recalled* when its match overlaps it with IoU ``>=`` ``iou``
and names it with the same phrase (case and articles ignored, as GLaMM's
recall asks the phrase to agree); ``precision`` is recalled / predicted,
``miou`` the mean IoU of every target with its match (0 when unmatched),
``phrase_acc`` the share of targets whose match names them right.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from scipy.optimize import linear_sum_assignment

from ..registry import METRICS
from ..structures import metric_box_iou

_ARTICLE = re.compile(r"^(?:a|an|the)\s+")


def normalise_phrase(phrase: str) -> str:
    return _ARTICLE.sub("", " ".join(phrase.lower().split()).strip(" ,.;:"))


@METRICS.register_module()
class GCGMetric(BaseMetric):
    default_prefix = "gcg"
    protocol = "gcg hungarian box-iou>=t + phrase, float64"

    def __init__(self, iou: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.iou = iou

    def process(self, data_batch, data_samples: Sequence[Mapping]) -> None:
        for s in data_samples:
            pred, gt = s["pred_refs"], s["gt_refs"]
            n_pred = len(pred["boxes"])
            ious = np.zeros((len(gt["boxes"]), n_pred))
            if n_pred and len(gt["boxes"]):
                ious = metric_box_iou(gt["boxes"], pred["boxes"]).numpy()
            rows, cols = linear_sum_assignment(-ious) if ious.size else ([], [])
            matched_iou = np.zeros(len(gt["boxes"]))
            named = np.zeros(len(gt["boxes"]), dtype=bool)
            pred_phrases = list(pred["phrases"]) if n_pred else []
            for r, c in zip(rows, cols, strict=True):
                matched_iou[r] = ious[r, c]
                named[r] = normalise_phrase(gt["phrases"][r]) == normalise_phrase(pred_phrases[c])
            self.results.append(
                {
                    "targets": len(gt["boxes"]),
                    "predicted": n_pred,
                    "recalled": int(((matched_iou >= self.iou) & named).sum()),
                    "named": int(named.sum()),
                    "iou_sum": float(matched_iou.sum()),
                    "parse_failures": int(pred.get("parse_failures", 0) or 0),
                }
            )

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        total = {k: sum(r[k] for r in results) for k in results[0]} if results else {}
        targets, predicted = max(total.get("targets", 0), 1), max(total.get("predicted", 0), 1)
        return {
            "recall": total.get("recalled", 0) / targets,
            "precision": total.get("recalled", 0) / predicted,
            "miou": total.get("iou_sum", 0.0) / targets,
            "phrase_acc": total.get("named", 0) / targets,
            "parse_failures": total.get("parse_failures", 0),
            "n": len(results),
            "iou": self.iou,
            "protocol": self.protocol,
        }
