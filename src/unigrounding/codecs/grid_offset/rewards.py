"""GETok's rewards (paper Appendix C.3) as pure functions, and the grid
stage's semantic-critical points reward as an RL reward
(:class:`SemanticPointsReward`). The offset stage's box refinement reward is
:class:`unigrounding.rl.rewards.BoxRefinementReward` (any codec's follow-up
pass can be scored so).

All geometry is in pixels of one image: points ``(x, y)`` (a point lies in a
mask when the pixel ``(floor(y), floor(x))`` is set), boxes ``xyxy``, masks
``(H, W)`` bool arrays. Defaults are the paper's (``tau_l1 = 18`` px,
``w_H = 0.6``, ``w_spr = 0.4``, ``lambda_m = 0.02``, ``rho_s = 0.30``); where the
paper leaves something open, the choice is stated at the function.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ...registry import REWARDS
from ...structures import GroundingDataSample, mask_iou_ratio, paired_box_iou, points_in_mask
from .offsets import one_step_hit

TAU_L1 = 18.0
W_HIT, W_SPREAD = 0.6, 0.4
LAMBDA_M = 0.02
RHO_S = 0.30
#: Saturation constant of S(m) = 1 - exp(-m / m0). The paper does not give it;
#: 3 makes one point worth 0.28, three 0.63 and six 0.86 of the full quality,
#: so a short list of well-spread points (the 5-15 tokens per mask of the
#: paper's Table 3) is near saturation while one or two points are not.
M0 = 3.0


@dataclass
class PredictedInstance:
    """One line of a GETok answer: an optional box and a point set."""

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    box: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        if self.box is not None:
            self.box = np.asarray(self.box, dtype=np.float64).reshape(4)


def hit_ratio(points: np.ndarray, mask: np.ndarray) -> float:
    """Eq. (7): fraction of the points inside the mask (0 for no points)."""
    return float(points_in_mask(points, mask).sum() / max(1, len(np.reshape(points, (-1, 2)))))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two xyxy boxes."""
    pair = torch.as_tensor(np.stack([a, b]), dtype=torch.float64)
    return float(paired_box_iou(pair[:1], pair[1:])[0])


def l1_box_score(pred: np.ndarray, gt: np.ndarray, tau_l1: float = TAU_L1) -> float:
    """Eq. (8): ``clip(1 - (|b_p - b_g|_1 / 4) / tau_l1, 0, 1)``."""
    return float(np.clip(1 - np.abs(np.asarray(pred) - np.asarray(gt)).sum() / 4 / tau_l1, 0, 1))


def similarity(
    pred: PredictedInstance, gt_mask: np.ndarray, gt_box: np.ndarray, tau_l1: float = TAU_L1
) -> float:
    """Eq. (9): IoU + hit ratio + L1 score. A prediction without a box scores 0
    on both box terms (the paper's box is optional and the sum is undefined
    without it; 0 lets point-only answers still be matched by their hits)."""
    box_terms = 0.0
    if pred.box is not None:
        box_terms = box_iou(pred.box, gt_box) + l1_box_score(pred.box, gt_box, tau_l1)
    return box_terms + hit_ratio(pred.points, gt_mask)


def match_instances(
    preds: list[PredictedInstance],
    gt_masks: list[np.ndarray],
    gt_boxes: list[np.ndarray],
    tau_l1: float = TAU_L1,
) -> list[tuple[int, int]]:
    """Hungarian matching with costs ``3 - Sim`` (eq. 9); ``(pred, gt)`` pairs."""
    if not preds or not gt_masks:
        return []
    cost = np.array(
        [
            [3.0 - similarity(p, m, b, tau_l1) for m, b in zip(gt_masks, gt_boxes, strict=True)]
            for p in preds
        ]
    )
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]


def object_scale(mask: np.ndarray) -> float:
    """``r_g`` of eq. (11): the paper says "object scale" without a formula; we
    use the radius of the disc with the mask's area, ``sqrt(area / pi)``."""
    return float(np.sqrt(mask.sum() / np.pi))


def spread(points: np.ndarray, scale: float, rho_s: float = RHO_S) -> float:
    """Eq. (11): mean nearest-neighbour distance over ``rho_s * scale``, clipped
    to [0, 1]. Fewer than two points have no neighbour: spread 0."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 2 or scale <= 0:
        return 0.0
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    return float(np.clip(dist.min(1).mean() / (rho_s * scale), 0, 1))


def keypoint_quality(
    points: np.ndarray,
    mask: np.ndarray,
    w_hit: float = W_HIT,
    w_spread: float = W_SPREAD,
    lambda_m: float = LAMBDA_M,
    rho_s: float = RHO_S,
    m0: float = M0,
) -> float:
    """Eq. (10): ``S(m) (w_H H + w_spr Spread) - lambda_m m``."""
    m = len(np.reshape(points, (-1, 2)))
    saturation = 1 - np.exp(-m / m0)
    quality = w_hit * hit_ratio(points, mask) + w_spread * spread(points, object_scale(mask), rho_s)
    return float(saturation * quality - lambda_m * m)


def semantic_points_reward(
    preds: list[PredictedInstance],
    gt_masks: list[np.ndarray],
    gt_boxes: list[np.ndarray],
    tau_l1: float = TAU_L1,
    **quality,
) -> float:
    """Eq. (12): point-count-weighted ``F`` over the matched pairs, normalised by
    ``sum_p max(1, m_p)`` over *all* predictions (unmatched ones dilute it), in [0, 1]."""
    if not preds:
        return 0.0
    total = 0.0
    for p, g in match_instances(preds, gt_masks, gt_boxes, tau_l1):
        m = len(preds[p].points)
        total += m * keypoint_quality(preds[p].points, gt_masks[g], **quality)
    norm = sum(max(1, len(p.points)) for p in preds)
    return float(np.clip(total / norm, 0, 1))


def refinement_reward(
    coarse: np.ndarray, refined: np.ndarray, deleted: np.ndarray, mask: np.ndarray, step: float
) -> float:
    """Eq. (13), averaged over one instance's points.

    ``coarse`` / ``refined`` ``(P, 2)`` correspond one to one; ``deleted`` marks
    points answered with ``<delete>`` (their refined position is ignored; a
    deleted point is no longer in the mask, so deleting a point that was in it
    scores -1 like moving it out). Deleting an outside point earns +1 only if
    no one-step move could have reached the mask: we read the
    paper's ``N_3x3(c)`` as the nine positions ``c + (du, dv) * step`` with
    ``du, dv in {-1, 0, 1}`` and ``step`` the offset lattice's pitch in pixels
    (the same one-step hit test as the offset data construction).
    """
    coarse = np.asarray(coarse, dtype=np.float64).reshape(-1, 2)
    if not len(coarse):
        return 0.0
    refined = np.asarray(refined, dtype=np.float64).reshape(-1, 2)
    deleted = np.asarray(deleted, dtype=bool).reshape(-1)
    was_in = points_in_mask(coarse, mask)
    now_in = points_in_mask(refined, mask) & ~deleted
    scores = []
    for c, before, after, gone in zip(coarse, was_in, now_in, deleted, strict=True):
        if gone and not before:
            reachable = one_step_hit(mask, c, step)[0]
            scores.append(0.0 if reachable else 1.0)
        elif before and not after:
            scores.append(-1.0)
        elif after:
            scores.append(1.0)
        else:
            scores.append(0.0)
    return float(np.mean(scores))


def mask_iou_gain(before: np.ndarray, after: np.ndarray, gt: np.ndarray) -> float:
    """IoU of the mask decoded from refined points minus that from the proposal."""
    return mask_iou_ratio(after, gt) - mask_iou_ratio(before, gt)


@REWARDS.register_module()
class SemanticPointsReward:
    """Eq. (12) on a decoded answer, for the grid stage of a RES RL run: each
    predicted instance is its points (none for a box answer) and box, matched
    to the target instances by eq. (9), in original-image pixels."""

    name = "points"

    def __call__(self, sample: GroundingDataSample) -> float:
        pred, gt = sample.pred_refs, sample.gt_refs
        if "masks" not in gt:
            raise KeyError(
                f"sample {sample.metainfo.get('sample_id')}: SemanticPointsReward needs "
                "target masks (a RES dataset)"
            )
        points = pred.points if "points" in pred else [np.zeros((0, 2))] * len(pred)
        preds = [
            PredictedInstance(points=np.asarray(p), box=b.numpy())
            for p, b in zip(points, pred.boxes, strict=True)
        ]
        return semantic_points_reward(
            preds, list(gt.masks.numpy()), list(gt.boxes.numpy().astype(np.float64))
        )
