"""Parallel grouped Hungarian matching (REF-VLM eqs. 4-8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_convert, generalized_box_iou

from unigrounding.decoders.matching import (
    PAD_BOX,
    box_match_cost,
    float32_cost,
    grouped_hungarian,
    mask_match_cost,
    pad_groups,
)


def _random_boxes(gen: torch.Generator, n: int) -> torch.Tensor:
    centre = torch.rand(n, 2, generator=gen) * 0.8 + 0.1
    size = torch.rand(n, 2, generator=gen) * 0.3 + 0.02
    return torch.cat([centre, size], dim=1)


def _loop_assignment(preds, targets):
    """The reference: one cost matrix and one scipy call per group."""
    out = []
    for p, t in zip(preds, targets, strict=True):
        l1 = torch.cdist(p.double(), t.double(), p=1)
        giou = generalized_box_iou(
            box_convert(p.double(), "cxcywh", "xyxy"), box_convert(t.double(), "cxcywh", "xyxy")
        )
        out.append(linear_sum_assignment((5 * l1 - 2 * giou).numpy()))
    return out


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(1, 12), st.integers(0, 4)), min_size=1, max_size=10),
    seed=st.integers(0, 2**31 - 1),
)
def test_grouped_matching_equals_per_group_scipy(sizes, seed):
    gen = torch.Generator().manual_seed(seed)
    # groups of n targets with n, n + extra or n - extra predictions
    preds, targets = [], []
    for n, extra in sizes:
        targets.append(_random_boxes(gen, n))
        preds.append(_random_boxes(gen, max(1, n + (extra if seed % 2 else -extra))))
    padded_p, n_p = pad_groups([p.double() for p in preds], PAD_BOX)
    padded_t, n_t = pad_groups([t.double() for t in targets], PAD_BOX)
    got = grouped_hungarian(box_match_cost(padded_p, padded_t), n_p, n_t)
    want = _loop_assignment(preds, targets)
    for (gr, gc), (wr, wc) in zip(got, want, strict=True):
        np.testing.assert_array_equal(gr, wr)
        np.testing.assert_array_equal(gc, wc)


def test_matching_stays_inside_groups():
    # Group 0's prediction sits exactly on group 1's target: it still has to take
    # its own group's target.
    a, b = torch.tensor([[0.2, 0.2, 0.1, 0.1]]), torch.tensor([[0.8, 0.8, 0.1, 0.1]])
    p, n_p = pad_groups([b, a], PAD_BOX)
    t, n_t = pad_groups([a, b], PAD_BOX)
    result = grouped_hungarian(box_match_cost(p, t), n_p, n_t)
    assert [(r.tolist(), c.tolist()) for r, c in result] == [([0], [0]), ([0], [0])]


def test_one_to_many_group_picks_the_cheaper_permutation():
    targets = torch.tensor([[0.2, 0.2, 0.1, 0.1], [0.7, 0.7, 0.2, 0.2]])
    preds = targets.flip(0) + 0.01  # predictions in the opposite order
    p, n_p = pad_groups([preds], PAD_BOX)
    t, n_t = pad_groups([targets], PAD_BOX)
    rows, cols = grouped_hungarian(box_match_cost(p, t), n_p, n_t)[0]
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]


def test_non_finite_costs_still_match():
    cost = torch.tensor([[[float("nan"), 1.0], [2.0, float("inf")]]])
    rows, cols = grouped_hungarian(cost, torch.tensor([2]), torch.tensor([2]))[0]
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]


def test_empty_group_gives_no_pairs():
    cost = torch.zeros(2, 3, 3)
    result = grouped_hungarian(cost, torch.tensor([0, 2]), torch.tensor([0, 2]))
    assert len(result[0][0]) == 0 and len(result[1][0]) == 2


def test_mask_cost_hand_computed():
    # one pixel pair: logit 0 (p = 0.5) against target 1 and target 0
    logits = torch.zeros(1, 1, 2)
    targets = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    cost = mask_match_cost(logits, targets, bce_weight=1.0, dice_weight=1.0)
    bce = np.log(2)  # -log 0.5 on every pixel, either target
    dice_on = 1 - (2 * 1.0 + 1) / (1.0 + 2 + 1)  # inter 2*0.5*2, total 1 + 2
    dice_off = 1 - 1 / (1.0 + 0 + 1)
    assert cost[0, 0, 0].item() == pytest.approx(bce + dice_on)
    assert cost[0, 0, 1].item() == pytest.approx(bce + dice_off)


def test_pad_groups_rejects_nothing():
    with pytest.raises(ValueError, match="at least one group"):
        pad_groups([])


def test_bf16_inputs_are_matched_on_float32_costs():
    """Equal 0.25 x 0.25 boxes on one row (cy 0.5); centres in 1/128ths:
    predictions at 17 and 47, targets at 98 and 100, so every pair is disjoint
    and GIoU = -(C - U) / C = -(D - 32) / (D + 32) for centre distance D
    (enclosing box C = (D + 32) * 32, union U = 2 * 32 * 32). The L1 terms tie
    (81 + 53 = 83 + 51), so the GIoU terms decide; cost 5 D / 128 + 2 (D - 32) / (D + 32):
    c(81) = 3.1640625 + 98/113 = 4.031320, c(53) = 2.0703125 + 42/85 = 2.564430,
    c(83) = 3.2421875 + 102/115 = 4.129144, c(51) = 1.9921875 + 38/83 = 2.450019.
    Straight 6.595750, crossed 6.579163: crossed wins by 0.0166, less than
    bf16's spacing at 4 (0.03125), where bf16 arithmetic picks straight."""
    preds = torch.tensor([[17, 64, 32, 32], [47, 64, 32, 32]]) / 128.0
    targets = torch.tensor([[98, 64, 32, 32], [100, 64, 32, 32]]) / 128.0
    cost = box_match_cost(preds.bfloat16()[None], targets.bfloat16()[None])
    assert cost.dtype == torch.float32
    exact = 5 * np.array([[81, 83], [51, 53]]) / 128 + 2 * np.array(
        [[49 / 113, 51 / 115], [19 / 83, 21 / 85]]
    )
    np.testing.assert_allclose(cost[0].numpy(), exact, rtol=1e-6)
    rows, cols = grouped_hungarian(cost, torch.tensor([2]), torch.tensor([2]))[0]
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]


def test_costs_ignore_autocast():
    """CPU bf16 autocast would run the mask cost's matmuls in bf16: the cost
    must come out float32 and equal to the cost without autocast."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 3, 64, generator=gen)
    targets = (torch.rand(1, 2, 64, generator=gen) > 0.5).float()
    plain = mask_match_cost(logits, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = mask_match_cost(logits, targets)
    assert cast.dtype == torch.float32
    torch.testing.assert_close(cast, plain)


def test_float32_cost_widens_only_narrow_floats():
    seen = {}

    @float32_cost
    def cost(a, parts, counts):
        seen.update(a=a.dtype, b=parts["b"].dtype, counts=counts.dtype)
        return a

    half, double = torch.zeros(1, dtype=torch.bfloat16), torch.zeros(1, dtype=torch.float64)
    cost(half, {"b": double}, torch.zeros(1, dtype=torch.long))
    assert seen == {"a": torch.float32, "b": torch.float64, "counts": torch.long}
