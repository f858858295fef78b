"""segment-anything as a point-to-mask decoder (GETok decodes its points with SAM).

Load it from a config with::

    custom_imports = dict(imports=["unigrounding.plugins.sam_point_decoder"], allow_failed_imports=False)
    model = dict(decoders=dict(point_to_mask=dict(
        type="SamPointDecoder", checkpoint="/path/to/sam_vit_b_01ec64.pth", model_type="vit_b")))

It takes what :class:`unigrounding.decoders.ColourRegionGrowing` takes — the
model-input image and positive points in its pixels — so a ``grid_offset``
model trained with one decodes with the other without retraining (the paper's
SAM -> SAM2 point). SAM's weights are frozen and read from ``checkpoint``; they
are kept out of the module tree so exported checkpoints do not carry them.
Needs the ``sam`` extra (``pip install -e ".[sam]"``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unigrounding.registry import DECODERS


@DECODERS.register_module()
class SamPointDecoder(nn.Module):
    """Args:
    checkpoint: local SAM weights (``sam_vit_b_01ec64.pth`` ...).
    model_type: ``vit_b`` / ``vit_l`` / ``vit_h`` (``segment_anything.sam_model_registry``).
    sam: an already built ``Sam`` instead of a checkpoint (tests, SAM variants).
    multimask_output: ask SAM for three masks and keep the one it scores best
        (SAM's advice for ambiguous prompts); ``False``: its single mask.
    """

    def __init__(
        self,
        checkpoint: str | None = None,
        model_type: str = "vit_b",
        sam: nn.Module | None = None,
        multimask_output: bool = True,
    ) -> None:
        super().__init__()
        from segment_anything import SamPredictor, sam_model_registry

        if sam is None:
            if checkpoint is not None and not Path(checkpoint).is_file():
                raise FileNotFoundError(f"SAM checkpoint not found: {checkpoint!r}")
            if checkpoint is None:
                warnings.warn(
                    "SamPointDecoder without a checkpoint: SAM's weights are random "
                    "(meant for planning and tests)",
                    stacklevel=2,
                )
            sam = sam_model_registry[model_type](checkpoint=checkpoint)
        sam.eval().requires_grad_(False)
        # a plain attribute, not a submodule: frozen third-party weights stay out
        # of state_dict() and therefore out of our checkpoints
        self.__dict__["predictor"] = SamPredictor(sam)
        self.multimask_output = multimask_output

    @torch.no_grad()
    def forward(self, image: torch.Tensor, points: np.ndarray) -> torch.Tensor:
        """``image`` ``(3, H, W)`` uint8 and ``points`` ``(K, 2)`` xy pixels (model-input
        frame) → ``(H, W)`` bool mask; no points: an empty mask."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        h, w = image.shape[-2:]
        if not len(points):
            return torch.zeros((h, w), dtype=torch.bool)
        predictor = self.predictor
        predictor.model.to(image.device)
        predictor.set_image(image.permute(1, 2, 0).cpu().numpy())
        masks, scores, _ = predictor.predict(
            point_coords=points,
            point_labels=np.ones(len(points), dtype=int),
            multimask_output=self.multimask_output,
        )
        return torch.from_numpy(masks[int(np.argmax(scores))])
