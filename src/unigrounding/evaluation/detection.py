"""COCO box mAP for grounding models that detect in text, and category-based
detection (UGLMM appendix B.4: "Detect every zebra." → ``zebra-1 [GND],
zebra-2 [GND], ...``).

A detection sample asks for one category; every predicted instance is a
detection of that category, scored by the codec's confidence
(``pred_refs.scores``, e.g. ``gnd_query``'s query similarity; 1.0 for codecs
that give none, which makes AP rank them in answer order).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from ..registry import METRICS
from ..structures import scoring_boxes


def coco_box_map(
    images: Sequence[dict], targets: Sequence[dict], detections: Sequence[dict], num_classes: int
) -> dict[str, float]:
    """pycocotools' box mAP / AP50 / AP75.

    ``images``: ``{"hw": (H, W)}`` per image (ids are positions + 1);
    ``targets`` / ``detections``: ``{"image": index, "class": index, "box":
    xyxy}``, detections with a ``"score"``. No target or no detection: 0.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not targets or not detections:
        return {"map": 0.0, "ap50": 0.0, "ap75": 0.0}

    def xywh(box) -> list[float]:
        x1, y1, x2, y2 = scoring_boxes(box).tolist()  # pycocotools' IoU is float64
        return [x1, y1, x2 - x1, y2 - y1]

    gt = COCO()
    gt.dataset = {
        "images": [
            {"id": i + 1, "height": im["hw"][0], "width": im["hw"][1]}
            for i, im in enumerate(images)
        ],
        "annotations": [
            {
                "id": k + 1,
                "image_id": t["image"] + 1,
                "category_id": t["class"] + 1,
                "bbox": xywh(t["box"]),
                "area": xywh(t["box"])[2] * xywh(t["box"])[3],
                "iscrowd": 0,
            }
            for k, t in enumerate(targets)
        ],
        "categories": [{"id": c + 1} for c in range(num_classes)],
    }
    dets = [
        {
            "image_id": d["image"] + 1,
            "category_id": d["class"] + 1,
            "bbox": xywh(d["box"]),
            "score": float(d["score"]),
        }
        for d in detections
    ]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(dets), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return {"map": float(stats[0]), "ap50": float(stats[1]), "ap75": float(stats[2])}


@METRICS.register_module()
class CategoryDetectionMetric(BaseMetric):
    """COCO box mAP of category-based detection samples (task ``det``): the
    class of every target and prediction is the category the sample asks
    for (its ``expression``); images are counted once per category."""

    default_prefix = "det"
    protocol = "det coco-map pycocotools"

    def process(self, data_batch, data_samples: Sequence[Mapping]) -> None:
        for s in data_samples:
            pred, gt = s["pred_refs"], s["gt_refs"]
            boxes = pred["boxes"].numpy()
            self.results.append(
                {
                    "hw": tuple(s["ori_shape"]),
                    "category": s["expression"],
                    "gt_boxes": gt["boxes"].numpy(),
                    "boxes": boxes,
                    "scores": pred["scores"].numpy() if "scores" in pred else np.ones(len(boxes)),
                }
            )

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        names = sorted({r["category"] for r in results})
        index = {n: i for i, n in enumerate(names)}
        images, targets, detections = [], [], []
        for r in results:
            image, cls = len(images), index[r["category"]]
            images.append({"hw": r["hw"]})
            targets += [{"image": image, "class": cls, "box": b} for b in r["gt_boxes"]]
            detections += [
                {"image": image, "class": cls, "box": b, "score": s}
                for b, s in zip(r["boxes"], r["scores"], strict=True)
            ]
        return {
            **coco_box_map(images, targets, detections, len(names)),
            "detections": len(detections),
            "protocol": self.protocol,
        }
