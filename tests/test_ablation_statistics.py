"""Intervals and paired comparisons of the ablation (ablate/statistics.py,
ablate/summary.py) against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from unigrounding.ablate.statistics import (
    _resampled_means,
    paired_difference,
    seed_interval,
    two_way_bootstrap,
)
from unigrounding.ablate.summary import combine, summarize_row


def test_resampled_means_equal_the_drawn_matrices_means():
    rng = np.random.default_rng(1)
    scores = rng.random((3, 7))
    seeds = rng.integers(0, 3, size=(5, 3))
    samples = rng.integers(0, 7, size=(5, 7))
    explicit = [scores[seeds[d]][:, samples[d]].mean() for d in range(5)]
    np.testing.assert_allclose(_resampled_means(scores, seeds, samples), explicit)


def test_two_way_bootstrap_interval():
    assert two_way_bootstrap(np.full((3, 50), 0.25)) == (0.25, 0.25)
    # one seed, 400 samples, half hits: the normal approximation's 95%
    # half-width is 1.96 * sqrt(0.25 / 400) = 0.049
    hits = np.tile([1.0, 0.0], 200)[None]
    low, high = two_way_bootstrap(hits)
    assert low < 0.5 < high and (high - low) / 2 == pytest.approx(0.049, abs=0.005)
    # seeds that disagree widen it: seed means 0.3 / 0.5 / 0.7, each over 400 samples
    spread = np.stack([np.tile([1.0] * k + [0.0] * (10 - k), 40) for k in (3, 5, 7)])
    assert two_way_bootstrap(spread)[1] - two_way_bootstrap(spread)[0] > 2 * (high - low)


def test_paired_difference_cancels_shared_noise():
    rng = np.random.default_rng(0)
    base = (rng.random((2, 300)) < 0.6).astype(float)
    same = paired_difference(base, base)
    assert same == {"difference": 0.0, "ci95": [0.0, 0.0], "p_value": 1.0, "distinguishable": False}
    # b misses 15 of a's hits (5%): a paired test sees it, though both scores
    # sit inside each other's unpaired intervals
    b = base.copy()
    b[:, np.flatnonzero(base[0] * base[1])[:15]] = 0.0
    result = paired_difference(base, b)
    assert result["difference"] == pytest.approx(0.05)
    assert result["distinguishable"] and result["p_value"] < 0.01
    assert two_way_bootstrap(b)[1] > base.mean()


def test_seed_interval_is_student_t():
    # mean 0.6, sd 0.1, t(0.975, 2) = 4.302653: half-width 0.248414
    low, high = seed_interval([0.5, 0.6, 0.7])
    assert low == pytest.approx(0.351586, abs=1e-6) and high == pytest.approx(0.848414, abs=1e-6)
    assert seed_interval([0.5]) is None and seed_interval([0.5, None]) is None


def _row(ious: dict, acc: float, seconds: float) -> dict:
    return {"rec_acc@0.5": acc, "train_seconds": seconds, "protocols": {"rec": "x"},
            "per_sample": {"rec_iou": ious}}  # fmt: skip


def test_combine_summarises_seeds_and_compares_codecs_on_common_samples():
    ids = [f"s{i}" for i in range(40)]
    good = {i: 0.9 for i in ids}
    half = {i: (0.9 if k % 2 else 0.1) for k, i in enumerate(ids)}
    reports = [
        {"task": "rec", "seconds": 10.0, "pretrained": f"p{s}", "stages": {},
         "baselines": {}, "settings": {"seed": s},
         "codecs": {"a": _row(good, 1.0, 5.0 + s), "b": _row(half, 0.5, 7.0)}}
        for s in (0, 1)
    ]  # fmt: skip
    report, per_sample = combine(reports, [0, 1])
    a = report["codecs"]["a"]
    assert a["per_seed"]["train_seconds"] == [5.0, 6.0] and a["train_seconds"] == 5.5
    assert a["spread"]["train_seconds"] == 1.0 and a["rec_acc@0.5_ci95"] == [1.0, 1.0]
    assert "per_sample" not in a and per_sample["a"][1]["rec_iou"] == good
    (pair,) = report["pairwise"]["rec_acc@0.5"]
    assert (pair["a"], pair["b"], pair["samples"]) == ("a", "b", 40)
    assert pair["difference"] == pytest.approx(0.5) and pair["distinguishable"]
    assert report["seeds"] == [0, 1] and report["seconds"] == 20.0


def test_summarize_row_without_per_sample_scores_has_no_interval():
    row = summarize_row(
        [{"rec_acc@0.5": 0.5, "res_ciou": 0.4}, {"rec_acc@0.5": 0.7, "res_ciou": 0.6}]
    )
    assert row["rec_acc@0.5"] == pytest.approx(0.6) and "rec_acc@0.5_ci95" not in row
    assert row["res_ciou_ci95"] == pytest.approx(seed_interval([0.4, 0.6]))
