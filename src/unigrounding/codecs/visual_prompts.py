"""Visual prompts as embeddings: the region a user marks (box, point, scribble,
mask) pooled from the vision tower's token map, for codecs that put regions
into the prompt as features (REF-VLM's mask-guided aggregation; Osprey-style
mask pooling, as UGLMM's region encoder, is the unblocked case).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..structures import GroundingDataSample, RefTargets


def region_mask(
    refs: RefTargets,
    row: int,
    sample: GroundingDataSample,
    grid_hw: tuple[int, int],
    canvas_hw: tuple[int, int],
) -> torch.Tensor:
    """``grid_hw`` fraction of each cell of a feature map over the
    ``canvas_hw`` canvas covered by prompt ``row``: its mask (or box, or
    point) in the model-input frame, area-pooled to the cells of the
    sample's own input (the top left of the canvas; 0 elsewhere). A region
    smaller than every cell marks the cell under its centre, so a prompt
    never aggregates nothing."""
    side = sample.frame.input_hw
    hw = tuple(
        max(1, min(g, round(s * g / c))) for s, g, c in zip(side, grid_hw, canvas_hw, strict=True)
    )
    if "masks" in refs and refs.masks[row].any():
        region = sample.frame.mask_to_input(refs.masks[row]).float()
    else:
        region = torch.zeros(side)
        if refs.units[row] == "point" and "points" in refs:
            x1, y1 = sample.frame.points_to_input(refs.points[row].numpy())[0]
            x2, y2 = x1 + 1, y1 + 1
        else:
            x1, y1, x2, y2 = sample.frame.boxes_to_input(refs.boxes[row].numpy())[0]
        h, w = side
        r0, r1 = int(np.clip(np.floor(y1), 0, h - 1)), int(np.clip(np.ceil(y2), 1, h))
        c0, c1 = int(np.clip(np.floor(x1), 0, w - 1)), int(np.clip(np.ceil(x2), 1, w))
        region[r0:r1, c0:c1] = 1.0
    pooled = F.adaptive_avg_pool2d(region[None, None], hw)[0, 0]
    if pooled.sum() <= 0:
        ys, xs = torch.nonzero(region, as_tuple=True)
        cy = int(ys.float().mean() * hw[0] / side[0]) if len(ys) else hw[0] // 2
        cx = int(xs.float().mean() * hw[1] / side[1]) if len(xs) else hw[1] // 2
        pooled[min(cy, hw[0] - 1), min(cx, hw[1] - 1)] = 1.0
    return F.pad(pooled, (0, grid_hw[1] - hw[1], 0, grid_hw[0] - hw[0]))


def cosine_position_code(length: int, channels: int, temperature: float = 10000.0) -> torch.Tensor:
    """REF-VLM eq. 2: ``(length, channels)``, sine on even and cosine on odd
    channels of ``i / temperature ** (2k / channels)`` for embedding index ``i``."""
    k = torch.arange(channels) // 2
    angle = torch.arange(length, dtype=torch.float32)[:, None] / temperature ** (2 * k / channels)
    return torch.where(torch.arange(channels) % 2 == 0, angle.sin(), angle.cos())


def mask_guided_aggregation(
    fmap: torch.Tensor,
    mask: torch.Tensor,
    blocks: int = 2,
    temperature: float | None = 10000.0,
) -> torch.Tensor:
    """REF-VLM eqs. 1-3: ``(C, H, W)`` features and an ``(H, W)`` prompt mask →
    ``(blocks**2, C)`` prompt embeddings (before the shared projector).

    The grid is cut into ``blocks x blocks`` parts (raster order); each part's
    embedding is the Hadamard product of features and mask summed over the
    part, the mask normalised to sum 1 inside the part (a part the prompt does
    not touch gives zeros) — the paper says "normalized" without saying over
    what; per part keeps every embedding on the scale of one feature. Eq. 3
    then adds the cosine code of the embedding index with weight 1.
    ``blocks=1, temperature=None`` is Osprey's plain mask pooling (no code).
    """
    parts = []
    for rows in torch.tensor_split(torch.arange(fmap.shape[1]), blocks):
        for cols in torch.tensor_split(torch.arange(fmap.shape[2]), blocks):
            m = mask[rows][:, cols]
            f = fmap[:, rows][:, :, cols]
            total = m.sum()
            parts.append((f * m).sum((1, 2)) / total if total > 0 else f.new_zeros(len(f)))
    pooled = torch.stack(parts)
    if temperature is None:
        return pooled
    return pooled + cosine_position_code(len(pooled), pooled.shape[1], temperature).to(pooled)
