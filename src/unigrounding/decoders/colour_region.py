"""A dependency-free point-to-mask decoder for flat-coloured scenes.

What it is: for every point, the 4-connected region of pixels whose colour is
within ``tolerance`` (largest absolute RGB channel difference) of the pixel
under the point; the mask is the union over the points. It has no weights and
learns nothing. It is exact on ShapesRef, whose objects are flat colours on a
contrasting background, and meaningless on natural images — use a SAM adapter
(``plugins/sam_point_decoder.py``) there. Both take the same input, so a model
trained with one decodes with the other without retraining.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from ..registry import DECODERS


@DECODERS.register_module()
class ColourRegionGrowing(nn.Module):
    def __init__(self, tolerance: int = 24) -> None:
        super().__init__()
        self.tolerance = tolerance

    def forward(self, image: torch.Tensor, points: np.ndarray) -> torch.Tensor:
        """``image`` ``(3, H, W)`` uint8 and ``points`` ``(K, 2)`` xy pixels, both in
        the model-input frame → ``(H, W)`` bool mask (points off the image are
        ignored; no points: an empty mask)."""
        rgb = image.permute(1, 2, 0).cpu().numpy().astype(np.int16)
        h, w = rgb.shape[:2]
        mask = np.zeros((h, w), dtype=bool)
        for x, y in np.floor(np.asarray(points, dtype=np.float64).reshape(-1, 2)).astype(int):
            if not (0 <= x < w and 0 <= y < h) or mask[y, x]:
                continue
            similar = np.abs(rgb - rgb[y, x]).max(-1) <= self.tolerance
            labels, _ = ndimage.label(similar)
            mask |= labels == labels[y, x]
        return torch.from_numpy(mask)
