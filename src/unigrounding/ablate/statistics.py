"""How sure an ablation's numbers are: intervals over training seeds and
evaluation samples, and paired comparisons of codecs.

A codec's score varies with the training seed and with which expressions it
is evaluated on. Both are resampled: the two-way bootstrap
(:func:`two_way_bootstrap`) draws seeds and evaluation samples with
replacement, independently, and recomputes the mean score of the drawn
(seed, sample) cells. Two codecs are compared *paired* — on the same seeds'
draws and the same samples (:func:`paired_difference`) — so the noise they
share (an expression hard for every codec) cancels. With one seed the
intervals cover the evaluation samples only; the seed-to-seed spread of the
quick preset (up to ~0.2 REC Acc@0.5 before issue 24) is then not in them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: Bootstrap draws: with 10000, the interval's bounds moved by at most one
#: sample's worth (1/300) across 10 bootstrap seeds, for 300 simulated samples
#: at 60% hits under 1 and 3 training seeds (4000 draws: up to 0.0056); one
#: interval takes 0.05-0.07 s on a 2-core EPYC.
DRAWS = 10000
#: Fixed, so a report's intervals are reproducible from its per-sample scores.
BOOTSTRAP_SEED = 0


def _draws(n_seeds: int, n_samples: int, draws: int, rng: np.random.Generator):
    seeds = rng.integers(0, n_seeds, size=(draws, n_seeds))
    samples = rng.integers(0, n_samples, size=(draws, n_samples))
    return seeds, samples


def _resampled_means(scores: np.ndarray, seeds: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """The mean of ``scores[seeds[d]][:, samples[d]]`` for every draw ``d``,
    without materialising the drawn matrices: a drawn sample's weight is how
    often it was drawn."""
    n_samples = scores.shape[1]
    counts = np.stack([np.bincount(row, minlength=n_samples) for row in samples])  # (D, N)
    per_seed = counts @ scores.T / n_samples  # (D, S): each seed's mean over the drawn samples
    return np.take_along_axis(per_seed, seeds, axis=1).mean(1)


def two_way_bootstrap(
    scores: np.ndarray, draws: int = DRAWS, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """95% percentile interval of the mean of ``scores`` (``(seeds,
    samples)``: one score per seed and evaluation sample, e.g. a hit at IoU
    0.5 as 1 / 0), seeds and samples resampled independently."""
    scores = np.asarray(scores, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = _resampled_means(scores, *_draws(*scores.shape, draws, rng))
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def paired_difference(
    a: np.ndarray, b: np.ndarray, draws: int = DRAWS, seed: int = BOOTSTRAP_SEED
) -> dict:
    """Codec ``a`` against codec ``b``, both ``(seeds, samples)`` on the same
    seeds and samples: the mean difference, its 95% two-way bootstrap
    interval, the two-sided bootstrap p-value (twice the share of draws on
    the far side of 0, at most 1) and whether the interval leaves out 0."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = _resampled_means(diff, *_draws(*diff.shape, draws, rng))
    low, high = np.quantile(means, [0.025, 0.975])
    p = min(1.0, 2 * min(float((means <= 0).mean()), float((means >= 0).mean())))
    return {
        "difference": float(diff.mean()),
        "ci95": [float(low), float(high)],
        "p_value": p,
        "distinguishable": bool(low > 0 or high < 0),
    }


def seed_interval(values: Sequence[float]) -> list[float] | None:
    """95% Student-t interval of the mean of per-seed ``values`` (for metrics
    with no per-sample scores, e.g. RES cIoU); ``None`` under two seeds."""
    from scipy import stats

    values = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if len(values) < 2:
        return None
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return [float(values.mean() - half), float(values.mean() + half)]


def aligned(per_seed: Sequence[Mapping[str, float]]) -> tuple[list[str], np.ndarray]:
    """Per-seed ``{sample_id: score}`` as a ``(seeds, samples)`` matrix over
    the sample ids every seed scored (sorted)."""
    ids = sorted(set.intersection(*(set(m) for m in per_seed))) if per_seed else []
    return ids, np.array([[m[i] for i in ids] for m in per_seed], dtype=np.float64)
