"""REF-VLM's mAP Similarity for freeform open-vocabulary detection (appendix
E.2 of REF-VLM [docs/papers.md]).

The model names what it detects in free text; there is no class logit. Each
predicted phrase is embedded (eq. 10), compared by cosine similarity with the
embeddings of all class names of the dataset (eq. 11), assigned the most
similar class, and that similarity is the detection's confidence. Standard
COCO box mAP (pycocotools) is then computed over the split.

The embedder is pluggable: REF-VLM uses CLIP-Large-14-336's text tower
(``embedder="/path/to/clip"``, a local transformers CLIP directory: nothing is
downloaded). ``embedder="hashing"`` is an offline stand-in — bag of character
trigrams — which only rewards spelling overlap: its numbers are *not*
comparable to the paper's and the result says which embedder was used.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from ..registry import METRICS
from .detection import coco_box_map


def hashing_embed(texts: Sequence[str], dim: int = 512) -> torch.Tensor:
    """``(N, dim)`` L2-normalised counts of hashed character trigrams of the
    lower-cased, space-padded text."""
    out = torch.zeros(len(texts), dim)
    for i, text in enumerate(texts):
        padded = f"  {' '.join(text.lower().split())}  "
        for j in range(len(padded) - 2):
            out[i, zlib.crc32(padded[j : j + 3].encode()) % dim] += 1.0
    return torch.nn.functional.normalize(out, dim=-1)


class ClipTextEmbedder:
    """CLIP text features from a local transformers checkpoint (eq. 10)."""

    def __init__(self, path: str) -> None:
        from transformers import AutoTokenizer, CLIPModel

        self.model = CLIPModel.from_pretrained(path).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path)

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        return torch.nn.functional.normalize(self.model.get_text_features(**batch), dim=-1)


def assign_classes(
    phrases: Sequence[str], class_names: Sequence[str], embed
) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 11: per phrase, the index of the most similar class name and that
    cosine similarity (the detection score)."""
    if not len(phrases):
        return np.zeros(0, dtype=int), np.zeros(0)
    sim = embed(list(phrases)) @ embed(list(class_names)).T
    best = sim.max(dim=1)
    return best.indices.numpy(), best.values.numpy()


@METRICS.register_module()
class FOVDMetric(BaseMetric):
    """mAP Similarity: COCO box mAP / AP50 / AP75 with classes and scores from
    phrase similarity. Targets carry their class name as phrase; predictions
    their predicted phrase. ``class_names``: the dataset's classes (default:
    every target phrase seen)."""

    default_prefix = "fovd"
    protocol = "fovd ref-vlm map-similarity"

    def __init__(
        self, embedder: str = "hashing", class_names: Sequence[str] | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.embedder_name = embedder
        self.embed = hashing_embed if embedder == "hashing" else ClipTextEmbedder(embedder)
        self.class_names = list(class_names) if class_names else None

    def process(self, data_batch, data_samples: Sequence[Mapping]) -> None:
        for s in data_samples:
            pred, gt = s["pred_refs"], s["gt_refs"]
            self.results.append(
                {
                    "hw": tuple(s["ori_shape"]),
                    "gt_boxes": gt["boxes"].numpy(),
                    "gt_names": list(gt["phrases"]),
                    "boxes": pred["boxes"].numpy(),
                    "phrases": list(pred["phrases"]) if len(pred["boxes"]) else [],
                }
            )

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        names = self.class_names or sorted({n for r in results for n in r["gt_names"]})
        index = {n: i for i, n in enumerate(names)}
        images, targets, detections = [], [], []
        for image, r in enumerate(results):
            images.append({"hw": r["hw"]})
            for box, name in zip(r["gt_boxes"], r["gt_names"], strict=True):
                if name not in index:
                    raise ValueError(f"target class {name!r} is not in class_names")
                targets.append({"image": image, "class": index[name], "box": box})
            classes, scores = assign_classes(r["phrases"], names, self.embed)
            detections += [
                {"image": image, "class": int(c), "box": box, "score": score}
                for box, c, score in zip(r["boxes"], classes, scores, strict=True)
            ]
        out = {
            "embedder": self.embedder_name,
            "detections": len(detections),
            "protocol": self.protocol,
        }
        return {**out, **coco_box_map(images, targets, detections, len(names))}
