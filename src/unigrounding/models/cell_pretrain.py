"""Dense cell pretraining of the vision tower.

Real MLLMs start from a pretrained tower (CLIP, SigLIP, DINOv2 ...); the tiny
CPU preset has none and no weights can be downloaded. This stage gives the tower
the same kind of head start on the data at hand: for every image-token cell it
predicts the attributes (e.g. category, colour) of the object under the cell
centre, or background, and the distances from the cell centre to that object's
box sides (FCOS-style), so the features carry what and how far. It trains the
tower only — no LLM, no codec — so every codec starts from the same features.
Its checkpoint loads into :class:`GroundingMLLM` through ``init_checkpoint``
(the ``vision.*`` names match; the head is dropped).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import nn

from ..registry import MODELS
from .preprocessor import GroundingDataPreprocessor
from .vlm import build_tower


@MODELS.register_module()
class CellAttributePretrainer(BaseModel):
    """Vision tower + a 1x1-conv head over the token grid.

    Args:
        vision: :class:`VisionTower` arguments (as in the grounding model).
        vlm: instead of ``vision``, a pretrained VLM whose encoder is the
            tower (:func:`~unigrounding.models.vlm.build_tower`).
        attributes: attribute name → number of classes (class 0 is background).
        box_weight: weight of the L1 loss on foreground cells' ``box_deltas``
            (0 disables box regression).
    """

    def __init__(
        self,
        vision: dict | None = None,
        *,
        attributes: dict[str, int],
        box_weight: float = 1.0,
        data_preprocessor: dict | None = None,
        vlm: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor or GroundingDataPreprocessor())
        self.vision = build_tower(vision, vlm)
        self.attributes = list(attributes)
        self.box_weight = box_weight
        self.outputs = dict(attributes, **({"box_deltas": 4} if box_weight else {}))
        self.head = nn.Conv2d(self.vision.token_channels, sum(self.outputs.values()), 1)

    def _outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.head(self.vision.token_map(self.vision(images)))
        return dict(zip(self.outputs, out.split(list(self.outputs.values()), dim=1), strict=True))

    @staticmethod
    def _balanced_ce(logits: torch.Tensor, target: torch.Tensor, fg: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over object cells plus mean over background cells.

        Objects cover ~10% of the cells of a ShapesRef image, so a plain mean is
        mostly "background". Measured category accuracy on object cells of
        ShapesRef val: plain mean 32% after 400 iterations, balanced 37% after
        400 and 86% after 1200 (colour: 98-99% in all three)."""
        ce = F.cross_entropy(logits, target, reduction="none")
        parts = [ce[m].mean() for m in (fg, ~fg) if m.any()]
        return sum(parts)

    def forward(self, inputs: torch.Tensor, data_samples: list[dict], mode: str = "tensor"):
        out = self._outputs(inputs)
        if mode == "tensor":
            return out
        labels = {
            k: torch.stack([s[k] for s in data_samples]).to(inputs.device) for k in data_samples[0]
        }
        if mode == "loss":
            fg = labels["foreground"]
            losses = {
                f"loss_{k}": self._balanced_ce(out[k], labels[k], fg) for k in self.attributes
            }
            if self.box_weight:
                pred = out["box_deltas"].permute(0, 2, 3, 1)[fg]
                l1 = F.l1_loss(pred, labels["box_deltas"][fg], reduction="sum") / fg.sum().clamp(
                    min=1
                )
                losses["loss_box"] = self.box_weight * l1
            return losses
        if mode == "predict":
            return [
                {
                    k: float((out[k][i].argmax(0) == labels[k][i]).float().mean())
                    for k in self.attributes
                }
                for i in range(len(data_samples))
            ]
        raise ValueError(f"unknown mode {mode!r}")
