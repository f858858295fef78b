"""Parallel grouped Hungarian matching (REF-VLM, section 4.3, eqs. 4-8).

A TRP answer partitions its ``<REF>`` predictions into groups (one per
phrase-unit triplet); a prediction may only be matched to a target of its own
group. Instead of one cost matrix per group, the costs of every group of a
batch are computed at once into one padded tensor ``C`` of shape
``(G, N_max, M_max)`` (eq. 5); entries whose row or column is padding are
excluded (eq. 6) and each group's assignment minimises its own block (eqs. 7-8).

The assignment itself runs per group with ``scipy.optimize.linear_sum_assignment``
on the valid block: the padded batch exists so that the costs are built by a
handful of tensor operations and copied to the host once, not so that groups
can trade predictions. ``benchmarks/grouped_matching.py`` compares it with a
per-group loop.

Costs are computed in float32 or wider whatever the inputs' dtype or the
autocast around them (:func:`float32_cost`), as REF-VLM casts to fp32 before
matching: bf16 costs (8 mantissa bits) gave 3.8% of groups an assignment whose
fp32 cost is higher.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import ParamSpec, TypeVar

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_convert, generalized_box_iou

#: Filler for padded ``(cx, cy, w, h)`` boxes: a valid box, so GIoU stays finite.
PAD_BOX = torch.tensor([0.5, 0.5, 1.0, 1.0])

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _widen(value):
    """``value`` with floating tensors narrower than float32 cast to float32
    (float64 stays), looking one level into mappings."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() and value.element_size() < 4 else value
    if isinstance(value, Mapping):
        return {k: _widen(v) for k, v in value.items()}
    return value


def _device_type(values) -> str | None:
    for v in values:
        if isinstance(v, torch.Tensor):
            return v.device.type
        if isinstance(v, Mapping) and (found := _device_type(v.values())):
            return found
    return None


def float32_cost(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate a matching-cost function to compute in float32 or wider:
    autocast is off inside and its floating tensor arguments (also the values
    of mapping arguments) narrower than float32 are cast to float32."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        device = _device_type([*args, *kwargs.values()])
        if device is None:
            return fn(*args, **kwargs)
        with torch.autocast(device, enabled=False):
            return fn(*map(_widen, args), **{k: _widen(v) for k, v in kwargs.items()})

    return wrapper


def pad_groups(items: list[torch.Tensor], fill: torch.Tensor | float = 0.0):
    """Stack variable-length groups ``(n_g, *shape)`` into ``(G, n_max, *shape)``.

    Returns the padded tensor and the lengths ``(G,)``. ``fill`` is what the
    padding holds (a scalar, or one element of shape ``shape``).
    """
    if not items:
        raise ValueError("pad_groups needs at least one group")
    lengths = torch.tensor([len(x) for x in items], dtype=torch.long)
    n_max = max(int(lengths.max()), 1)
    ref = items[0]
    out = torch.empty((len(items), n_max, *ref.shape[1:]), dtype=ref.dtype, device=ref.device)
    out[:] = torch.as_tensor(fill, dtype=ref.dtype, device=ref.device)
    for g, x in enumerate(items):
        out[g, : len(x)] = x
    return out, lengths


@float32_cost
def box_match_cost(
    pred_cxcywh: torch.Tensor,
    target_cxcywh: torch.Tensor,
    l1_weight: float = 5.0,
    giou_weight: float = 2.0,
) -> torch.Tensor:
    """Eq. 4 for a padded batch: ``l1 * ||b_i - b_j||_1 - giou * GIoU(b_i, b_j)``.

    Boxes are normalised ``(cx, cy, w, h)`` in ``[0, 1]``, shapes ``(G, N, 4)`` and
    ``(G, M, 4)``; the result is ``(G, N, M)``. DETR's weights (5, 2) are the
    defaults: the paper names the two terms but not their coefficients.
    """
    l1 = (pred_cxcywh[:, :, None, :] - target_cxcywh[:, None, :, :]).abs().sum(-1)
    pred_xyxy = box_convert(pred_cxcywh, "cxcywh", "xyxy")
    target_xyxy = box_convert(target_cxcywh, "cxcywh", "xyxy")
    giou = torch.vmap(generalized_box_iou)(pred_xyxy, target_xyxy)
    return l1_weight * l1 - giou_weight * giou


@float32_cost
def mask_match_cost(
    pred_logits: torch.Tensor,
    target_masks: torch.Tensor,
    bce_weight: float = 5.0,
    dice_weight: float = 5.0,
) -> torch.Tensor:
    """MaskFormer's matching cost for a padded batch: mean pixel BCE + dice.

    ``pred_logits`` ``(G, N, P)`` and ``target_masks`` ``(G, M, P)`` (flattened
    pixels, targets in {0, 1}); returns ``(G, N, M)``.
    """
    target = target_masks.to(pred_logits.dtype)
    pixels = pred_logits.shape[-1]
    pos = torch.nn.functional.softplus(-pred_logits)  # -log(sigmoid(x))
    neg = torch.nn.functional.softplus(pred_logits)  # -log(1 - sigmoid(x))
    bce = (pos @ target.transpose(1, 2) + neg @ (1 - target).transpose(1, 2)) / pixels
    prob = pred_logits.sigmoid()
    inter = 2 * prob @ target.transpose(1, 2)
    total = prob.sum(-1)[:, :, None] + target.sum(-1)[:, None, :]
    dice = 1 - (inter + 1) / (total + 1)
    return bce_weight * bce + dice_weight * dice


def grouped_hungarian(
    cost: torch.Tensor, n_pred: torch.Tensor, n_target: torch.Tensor
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Eqs. 7-8: one optimal one-to-one assignment per group.

    ``cost`` is the padded ``(G, N_max, M_max)`` tensor; ``n_pred`` / ``n_target``
    the real sizes. Returns, per group, ``(pred_indices, target_indices)`` of
    ``min(n_pred, n_target)`` pairs — the same assignment a per-group
    ``linear_sum_assignment`` loop gives. Non-finite costs (a diverged
    prediction) are treated as the worst finite cost so matching never fails.
    """
    if cost.dim() != 3:
        raise ValueError(f"cost must be (groups, preds, targets), got shape {tuple(cost.shape)}")
    host = cost.detach().double().cpu().numpy()  # one copy for the whole batch
    out = []
    for g, (n, m) in enumerate(zip(n_pred.tolist(), n_target.tolist(), strict=True)):
        block = host[g, :n, :m]  # eq. 6: padded rows and columns never enter
        bad = ~np.isfinite(block)
        if bad.any():
            finite = block[~bad]
            block = np.where(bad, finite.max() + 1 if finite.size else 0.0, block)
        out.append(linear_sum_assignment(block))
    return out


__all__ = [
    "PAD_BOX",
    "box_match_cost",
    "float32_cost",
    "grouped_hungarian",
    "mask_match_cost",
    "pad_groups",
]
