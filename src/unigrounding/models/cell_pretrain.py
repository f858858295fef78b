"""Dense cell-attribute pretraining of the vision tower.

Real MLLMs start from a pretrained tower (CLIP, SigLIP ...); the tiny CPU
preset has none and no weights can be downloaded. This stage gives the tower
the same kind of head start on the data at hand: for every image-token cell it
predicts the attributes (e.g. category, colour) of the object under the cell
centre, or background. It trains the tower only — no LLM, no codec — so every
codec starts from the same features. Its checkpoint loads into
:class:`GroundingMLLM` through ``init_checkpoint`` (the ``vision.*`` names match).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import nn

from ..registry import MODELS
from .vision import VisionTower


@MODELS.register_module()
class CellAttributePretrainer(BaseModel):
    """Vision tower + one 1x1-conv classifier per attribute over the token grid.

    Args:
        vision: :class:`VisionTower` arguments (as in the grounding model).
        attributes: attribute name → number of classes (class 0 is background).
    """

    def __init__(
        self, vision: dict, attributes: dict[str, int], data_preprocessor: dict | None = None
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.vision = VisionTower(**vision)
        self.attributes = dict(attributes)
        self.head = nn.Conv2d(self.vision.token_channels, sum(self.attributes.values()), 1)

    def _logits(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.head(self.vision.token_map(self.vision(images)))
        return dict(
            zip(self.attributes, out.split(list(self.attributes.values()), dim=1), strict=True)
        )

    def forward(self, inputs: torch.Tensor, data_samples: list[dict], mode: str = "tensor"):
        logits = self._logits(inputs)
        if mode == "tensor":
            return logits
        labels = {
            k: torch.stack([s[k] for s in data_samples]).to(inputs.device) for k in self.attributes
        }
        if mode == "loss":
            return {f"loss_{k}": F.cross_entropy(logits[k], labels[k]) for k in self.attributes}
        if mode == "predict":
            return [
                {
                    k: float((logits[k][i].argmax(0) == labels[k][i]).float().mean())
                    for k in self.attributes
                }
                for i in range(len(data_samples))
            ]
        raise ValueError(f"unknown mode {mode!r}")
