"""GETok rewards (Appendix C.3) against hand-worked examples."""

from __future__ import annotations

import numpy as np
import pytest

from unigrounding.codecs.grid_offset import rewards as R


def square_mask(lo: int, hi: int, size: int = 40) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[lo:hi, lo:hi] = True
    return mask


def test_hit_ratio_counts_points_on_set_pixels():
    mask = square_mask(2, 6, 10)
    # (3.5, 3.5) in; (7, 7) out; (-1, 3) outside the image
    assert R.hit_ratio(np.array([[3.5, 3.5], [7, 7], [-1, 3]]), mask) == pytest.approx(1 / 3)
    assert R.hit_ratio(np.zeros((0, 2)), mask) == 0.0


def test_l1_box_score_eq8():
    # |b_p - b_g|_1 = 16 -> 16 / 4 = 4 px mean error -> 1 - 4 / 18
    assert R.l1_box_score([0, 0, 10, 10], [4, 4, 14, 14]) == pytest.approx(1 - 4 / 18)
    assert R.l1_box_score([0, 0, 10, 10], [100, 100, 110, 110]) == 0.0


def test_hungarian_matches_by_iou_hits_and_l1():
    gts = [square_mask(0, 10), square_mask(20, 30)]
    boxes = [np.array([0, 0, 10, 10.0]), np.array([20, 20, 30, 30.0])]
    preds = [
        R.PredictedInstance(points=[[25, 25]], box=[21, 21, 30, 30]),
        R.PredictedInstance(points=[[5, 5], [6, 6]]),  # no box: matched by its hits
    ]
    assert sorted(R.match_instances(preds, gts, boxes)) == [(0, 1), (1, 0)]
    assert R.similarity(preds[1], gts[0], boxes[0]) == 1.0


def test_spread_eq11():
    pts = np.array([[0, 0], [3, 0], [0, 4]])  # nearest neighbours 3, 3, 4 -> mean 10/3
    assert R.spread(pts, scale=20) == pytest.approx((10 / 3) / (0.3 * 20))
    assert R.spread(pts, scale=1) == 1.0  # clipped
    assert R.spread(pts[:1], scale=20) == 0.0  # one point has no neighbour


def test_keypoint_quality_eq10_and_reward_eq12():
    mask = square_mask(0, 20)  # area 400 -> r_g = sqrt(400 / pi) = 11.2838
    pts = np.array([[5, 5], [8, 5], [5, 9]])  # all inside; spacing 10/3
    spread = (10 / 3) / (0.3 * 11.283791670955125)
    f = (1 - np.exp(-1)) * (0.6 * 1.0 + 0.4 * spread) - 0.02 * 3
    assert R.keypoint_quality(pts, mask) == pytest.approx(f)
    box = np.array([0, 0, 20, 20.0])
    matched = R.PredictedInstance(points=pts, box=box)
    assert R.semantic_points_reward([matched], [mask], [box]) == pytest.approx(f)
    # an unmatched two-point prediction dilutes the point-weighted mean: 3f / (3 + 2)
    extra = R.PredictedInstance(points=[[30, 30], [35, 35]])
    assert R.semantic_points_reward([matched, extra], [mask], [box]) == pytest.approx(3 * f / 5)
    assert R.semantic_points_reward([], [mask], [box]) == 0.0


def test_refinement_reward_eq13():
    mask = square_mask(10, 20)
    coarse = np.array([[12, 12], [12, 12], [8, 12], [2, 2], [7, 12], [12, 12]], dtype=float)
    refined = np.array([[13, 13], [30, 30], [11, 12], [0, 0], [0, 0], [0, 0]], dtype=float)
    deleted = np.array([False, False, False, True, True, True])
    # +1 stays in, -1 moved out, +1 moved in, +1 deleted and no 4-px move reaches
    # the mask, 0 deleted though (11, 12) was one move away, -1 deleted while inside
    assert R.refinement_reward(coarse, refined, deleted, mask, step=4) == pytest.approx(1 / 6)


def test_mask_iou_gain_reward():
    full, half = square_mask(0, 10), square_mask(0, 10)
    half[5:] = False
    assert R.mask_iou_gain(full, half, half) == pytest.approx(0.5)


def decoded_sample(gt_mask: np.ndarray, gt_box, pred_box, pred_points=None, pred_mask=None):
    """A decoded RES sample as an RL reward sees it (original-image pixels)."""
    from unigrounding.structures import GroundingDataSample, RefTargets

    sample = GroundingDataSample(metainfo={"sample_id": "s7"})
    sample.gt_refs = RefTargets.build([gt_box], units=["mask"], masks=gt_mask[None])
    points = None if pred_points is None else [pred_points]
    masks = None if pred_mask is None else pred_mask[None]
    sample.pred_refs = RefTargets.build([pred_box], units=["mask"], points=points, masks=masks)
    return sample


def test_semantic_points_reward_reads_a_decoded_answer_as_eq12():
    mask, box = square_mask(0, 20), [0, 0, 20, 20]
    pts = np.array([[5, 5], [8, 5], [5, 9]])
    sample = decoded_sample(mask, box, box, pred_points=pts)
    # the same answer as test_keypoint_quality_eq10_and_reward_eq12's matched instance
    spread = (10 / 3) / (0.3 * 11.283791670955125)
    f = (1 - np.exp(-1)) * (0.6 * 1.0 + 0.4 * spread) - 0.02 * 3
    assert R.SemanticPointsReward()(sample) == pytest.approx(f)
    # a box answer has no points: quality 0
    assert R.SemanticPointsReward()(decoded_sample(mask, box, box)) == 0.0


def test_mask_iou_reward():
    from unigrounding.rl.rewards import MaskIoUReward

    full, half = square_mask(0, 10), square_mask(0, 10)
    half[5:] = False
    assert MaskIoUReward()(decoded_sample(full, [0, 0, 10, 10], [0, 0, 10, 5], pred_mask=half)) == (
        pytest.approx(0.5)
    )
    assert MaskIoUReward()(decoded_sample(full, [0, 0, 10, 10], [0, 0, 10, 5])) == 0.0  # no mask
    rec = decoded_sample(full, [0, 0, 10, 10], [0, 0, 10, 5])
    del rec.gt_refs.masks
    with pytest.raises(KeyError, match="sample s7: MaskIoUReward needs target masks"):
        MaskIoUReward()(rec)
