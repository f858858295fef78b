"""Metrics of the token_collective paradigm: ClawMachine's token-collective
metric (ClawMachine [docs/papers.md], eq. (1)), how well the generated
codes cover the referent's patches before the region sampler turns them into
a box; and :class:`CodebookUsage`, the health of its visual tokenizer.

Per sample, on the patch lattice: ``G_gt`` is the ground-truth mounting (the
patches of the first target group's boxes, background included, as in the
paper); ``G_pred ∩ G_image`` the patches the generated codes retrieve (the
exact retrieval map, without fuzzy search); ``G_pred`` adds one element per
generated code the image does not hold. Then

* precision = |pred ∩ gt| / |pred|
* recall = |pred ∩ gt| / |gt|
* IoU = |pred ∩ gt| / (|pred ∩ image| + |gt| - |pred ∩ gt|)

averaged over samples; a sample whose answer holds no code scores 0 on all
three, a sample without a target (gRES no-target) is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from ...registry import METRICS
from .codec import ImageCodes


def collective_scores(
    pred_cells: set[int], unplaced: int, gt_cells: set[int]
) -> tuple[float, float, float]:
    """Eq. (1) precision, recall and IoU of one sample."""
    hit = len(pred_cells & gt_cells)
    pred = len(pred_cells) + unplaced
    if not pred or not gt_cells:
        return 0.0, 0.0, 0.0
    return hit / pred, hit / len(gt_cells), hit / (len(pred_cells) + len(gt_cells) - hit)


@METRICS.register_module()
class TokenCollectiveMetric(BaseMetric):
    """Eq. (1) of ClawMachine over a split (``collective/precision``,
    ``/recall``, ``/iou``), for a ``token_collective`` model's predictions."""

    default_prefix = "collective"
    protocol = "token-collective clawmachine eq1, exact retrieval"

    def process(self, data_batch, data_samples: Sequence[Mapping]) -> None:
        for s in data_samples:
            gt_cells = ImageCodes.of(s).gt_cells
            if not gt_cells:
                continue  # a no-target expression: eq. (1) is undefined
            pred = s["pred_refs"]
            cells = {c for block in pred.get("collective_cells", []) for c in block}
            unplaced = sum(pred.get("collective_unplaced", []))
            self.results.append(collective_scores(cells, unplaced, set(gt_cells)))

    def compute_metrics(self, results: list[tuple[float, float, float]]) -> dict[str, float]:
        scores = np.asarray(results, dtype=np.float64).reshape(-1, 3)
        mean = scores.mean(0) if len(scores) else np.zeros(3)
        return {
            "precision": float(mean[0]),
            "recall": float(mean[1]),
            "iou": float(mean[2]),
            "protocol": self.protocol,
        }


@METRICS.register_module()
class CodebookUsage(BaseMetric):
    """A visual tokenizer's health on a split: the share of codes used, the
    perplexity of the code distribution (``exp`` of its entropy; the number of
    equally likely codes it amounts to), and the mean cosine between patch
    features and their reconstruction from the code. Scores the predictions of
    :class:`~.quantizer_pretrain.QuantizerPretrainer` (``codes`` and
    ``reconstruction_cos`` metainfo)."""

    default_prefix = "codebook"
    protocol = "codebook usage, perplexity, reconstruction cosine"

    def __init__(self, codebook_size: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.codebook_size = codebook_size

    def process(self, data_batch, data_samples: Sequence[Mapping]) -> None:
        for s in data_samples:
            self.results.append({"codes": list(s["codes"]), "cos": s["reconstruction_cos"]})

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        codes = np.concatenate([np.asarray(r["codes"]) for r in results])
        counts = np.bincount(codes, minlength=self.codebook_size).astype(float)
        p = counts[counts > 0] / counts.sum()
        return {
            "usage": float((counts > 0).mean()),
            "perplexity": float(np.exp(-(p * np.log(p)).sum())),
            "reconstruction_cos": float(np.mean([r["cos"] for r in results])),
            "protocol": self.protocol,
        }
