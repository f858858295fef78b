"""Proposals checked before any codec reads them: a plugin proposer's
non-finite box would crash ``roi_align`` (a segfault, not an exception) and a
degenerate one would raise ``GeometryError`` out of ``predict``."""

from __future__ import annotations

import torch
from mmengine.structures import InstanceData

#: thinner than this (model-input pixels) a box has no area to pool or score
MIN_SIDE = 1e-3


def usable_proposals(found: InstanceData, input_hw: tuple[int, int]) -> InstanceData:
    """``found`` without its non-finite boxes and scores, its boxes clipped to
    the sample's ``(h, w)`` model input (not the padding of a larger canvas),
    and those left thinner than :data:`MIN_SIDE` dropped (what remains keeps
    its order)."""
    boxes = found.bboxes.float()
    scores = found.scores.float()
    finite = torch.isfinite(boxes).all(-1) & torch.isfinite(scores)
    high = boxes.new_tensor([input_hw[1], input_hw[0]] * 2)
    clipped = boxes.nan_to_num(0.0, 0.0, 0.0).clamp(min=boxes.new_zeros(4), max=high)
    keep = finite & ((clipped[:, 2:] - clipped[:, :2]) > MIN_SIDE).all(-1)
    return InstanceData(bboxes=clipped[keep], scores=scores[keep])
