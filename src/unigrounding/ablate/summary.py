"""One ablation report from the reports of its seeds: per codec and metric
the mean over seeds, the per-seed values, their spread and a 95% interval,
and paired comparisons between codecs (:mod:`.statistics`)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from .statistics import aligned, paired_difference, seed_interval, two_way_bootstrap

#: Metrics with a score per evaluation sample: metric → (per-sample scores
#: of a row's ``per_sample``, the per-sample score from them).
PER_SAMPLE_METRICS = {
    "rec_acc@0.5": ("rec_iou", lambda iou: iou >= 0.5),
    "rec_acc@0.75": ("rec_iou", lambda iou: iou >= 0.75),
    "rec_acc@0.9": ("rec_iou", lambda iou: iou >= 0.9),
    "rec_miou": ("rec_iou", lambda iou: iou),
    "res_giou": ("res_giou", lambda giou: giou),
}
#: Metrics with one value per run: intervals over seeds only (Student t).
PER_RUN_METRICS = ("res_ciou",)
#: What codecs are compared on, pairwise, per task.
COMPARED = {"rec": "rec_acc@0.5", "res": "res_giou"}


def per_sample_matrix(rows: Sequence[dict], metric: str) -> tuple[list[str], np.ndarray] | None:
    """``(sample ids, (seeds, samples) scores)`` of ``metric`` for one row's
    per-seed versions; ``None`` if a seed has no per-sample scores for it."""
    source, score = PER_SAMPLE_METRICS[metric]
    scored = [r.get("per_sample", {}).get(source) for r in rows]
    if not scored or any(s is None for s in scored):
        return None
    ids, values = aligned(scored)
    return ids, score(values).astype(np.float64)


def summarize_row(rows: Sequence[dict]) -> dict:
    """One codec's row from its per-seed rows: every numeric field's mean,
    ``per_seed`` values, ``spread`` (max - min) and ``<metric>_ci95``."""
    out = dict(rows[0])
    out.pop("per_sample", None)
    out["per_seed"], out["spread"] = {}, {}
    for key, first in rows[0].items():
        if isinstance(first, bool) or not isinstance(first, int | float):
            continue
        values = [r.get(key) for r in rows]
        present = [v for v in values if v is not None]
        out[key] = float(np.mean(present)) if present else None
        out["per_seed"][key] = values
        if len(present) > 1:
            out["spread"][key] = float(max(present) - min(present))
    for metric in PER_SAMPLE_METRICS:
        matrix = per_sample_matrix(rows, metric)
        if matrix is not None and matrix[1].size:
            out[f"{metric}_ci95"] = list(two_way_bootstrap(matrix[1]))
    for metric in PER_RUN_METRICS:
        interval = seed_interval([r.get(metric) for r in rows])
        if interval is not None:
            out[f"{metric}_ci95"] = interval
    return out


def pairwise(rows_by_codec: dict[str, Sequence[dict]], metric: str) -> list[dict]:
    """Every pair of codecs compared on ``metric``, paired over the seeds and
    the evaluation samples both scored, largest difference first."""
    out = []
    for a, b in combinations(rows_by_codec, 2):
        ma, mb = (per_sample_matrix(rows_by_codec[n], metric) for n in (a, b))
        if ma is None or mb is None:
            continue
        common = sorted(set(ma[0]) & set(mb[0]))
        if not common:
            continue
        pick = [{sid: k for k, sid in enumerate(m[0])} for m in (ma, mb)]
        va = ma[1][:, [pick[0][s] for s in common]]
        vb = mb[1][:, [pick[1][s] for s in common]]
        out.append({"a": a, "b": b, "samples": len(common), **paired_difference(va, vb)})
    return sorted(out, key=lambda c: -abs(c["difference"]))


def combine(
    reports: Sequence[dict], seeds: Sequence[int | None]
) -> tuple[dict, dict[str, list[dict]]]:
    """The report of several seeds' reports (each one seed's run): codec rows
    summarised over seeds, the paired comparisons, the seeds; the per-sample
    scores are returned apart (``per_sample``: row → one mapping per seed)."""
    first = reports[0]
    combined = {k: v for k, v in first.items() if k not in ("codecs", "seconds", "pretrained")}
    combined["seeds"] = list(seeds)
    if len(reports) > 1:  # each seed's own settings and configs; the rest is shared
        combined["settings"] = {k: v for k, v in first["settings"].items() if k != "seed"}
    combined["manifest"] = dict(
        first.get("manifest", {}),
        seeds=list(seeds),
        configs={
            name: [r.get("manifest", {}).get("configs", {}).get(name) for r in reports]
            for name in first.get("manifest", {}).get("configs", {})
        },
    )
    combined["seconds"] = sum(r["seconds"] for r in reports)
    combined["pretrained"] = [r["pretrained"] for r in reports]
    combined["stages"] = {
        stage: summarize_row([r["stages"][stage] for r in reports]) for stage in first["stages"]
    }
    rows_by_codec = {name: [r["codecs"][name] for r in reports] for name in first["codecs"]}
    combined["codecs"] = {name: summarize_row(rows) for name, rows in rows_by_codec.items()}
    metric = COMPARED[first.get("task", "rec")]
    combined["pairwise"] = {metric: pairwise(rows_by_codec, metric)}
    combined["statistics"] = {
        "per_seed": "each seed trains every stage and codec anew on the same data",
        "ci95": (
            "per-sample metrics: 95% percentile interval of a two-way bootstrap, seeds and "
            "evaluation samples resampled independently; per-run metrics (RES cIoU): Student t "
            "over seeds. With one seed an interval covers the evaluation samples only."
        ),
        "pairwise": (
            "paired two-way bootstrap of the difference on the same seeds and samples; "
            "distinguishable when its 95% interval leaves out 0"
        ),
    }
    per_sample = {
        name: [r.get("per_sample", {}) for r in rows] for name, rows in rows_by_codec.items()
    }
    return combined, per_sample
