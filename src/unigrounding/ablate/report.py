"""Ablation report: ``report.json``, ``report.md`` and PNG bar charts."""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = [
    ("rec_acc@0.5", "REC Acc@0.5", "{:.3f}"),
    ("rec_miou", "mIoU", "{:.3f}"),
    ("res_ciou", "RES cIoU", "{:.3f}"),
    ("res_giou", "RES gIoU", "{:.3f}"),
    ("parse_failures", "parse fail", "{:.4g}"),
    ("parse_repairs", "parse repairs", "{:.4g}"),
    ("tokens_per_object", "tok/obj", "{:.1f}"),
    ("train_samples_per_s", "train samp/s", "{:.1f}"),
    ("decode_ms_per_object", "decode ms/obj", "{:.3f}"),
    ("train_seconds", "train s", "{:.0f}"),
]
CHARTS = ("rec_acc@0.5", "rec_miou", "tokens_per_object", "train_samples_per_s")


def statistics_columns(report: dict, metric: str) -> list[tuple[str, str, str]]:
    """Columns of ``metric``'s 95% interval and, with several seeds, its
    per-seed values and spread (keys into a row; ``a/b`` is ``row[a][b]``)."""
    columns = [(f"{metric}_ci95", "95% CI", "[{:.3f}, {:.3f}]")]
    if len(report.get("seeds", [])) > 1:
        columns += [
            (f"per_seed/{metric}", "per seed", "{:.3f}"),
            (f"spread/{metric}", "spread", "{:.3f}"),
        ]
    return columns


def _value(row: dict, key: str):
    head, _, rest = key.partition("/")
    if rest and head not in row:
        return None
    return row.get(head, {}).get(rest) if rest else row.get(key)


def _cell(value, fmt: str) -> str:
    """A table cell: ``n/a`` for nothing; a list fills a format of as many
    fields (an interval), else each item is formatted (per-seed values)."""
    if value is None:
        return "n/a"
    if isinstance(value, list):
        if fmt.count("{") == len(value) > 1:
            return fmt.format(*value)
        return " / ".join(_cell(v, fmt) for v in value)
    return fmt.format(value)


def _listing(metrics: dict) -> str:
    return ", ".join(
        f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
    )


def table(report: dict, columns: list[tuple[str, str, str]] = COLUMNS) -> list[str]:
    """The report's rows (baselines first, then codecs) as a markdown table of
    ``columns`` (key, title, format)."""
    lines = [
        "| codec | " + " | ".join(title for _, title, _ in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    rows = {**{f"*{k} (baseline)*": v for k, v in report["baselines"].items()}, **report["codecs"]}
    for name, row in rows.items():
        lines.append(
            f"| {name} | " + " | ".join(_cell(_value(row, k), f) for k, _, f in columns) + " |"
        )
    return lines


def comparisons(report: dict) -> list[str]:
    """The paired comparisons as markdown: every pair, and which are not
    distinguishable."""
    lines = []
    for metric, pairs in report.get("pairwise", {}).items():
        if not pairs:
            continue
        same = [f"{c['a']} vs {c['b']}" for c in pairs if not c["distinguishable"]]
        lines += [
            "",
            f"Paired comparisons on {metric} (same seeds and evaluation samples; "
            f"{pairs[0]['samples']} samples, {len(report.get('seeds', [None]))} seed(s)). "
            + (
                f"**Not distinguishable** (the 95% interval of the difference holds 0): "
                f"{'; '.join(same)}."
                if same
                else "Every difference is distinguishable."
            ),
            "",
            "| a | b | a - b | 95% CI | p | distinguishable |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {c['a']} | {c['b']} | {c['difference']:+.3f} | "
            f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] | {c['p_value']:.3f} | "
            f"{'yes' if c['distinguishable'] else '**no**'} |"
            for c in pairs
        ]
    return lines


def with_statistics(
    report: dict, columns: list[tuple[str, str, str]]
) -> list[tuple[str, str, str]]:
    """``columns`` with the compared metric's interval (and per-seed values,
    spread) after it."""
    out = []
    for column in columns:
        out.append(column)
        if column[0] in report.get("pairwise", {}):
            out += statistics_columns(report, column[0])
    return out


def _backbone_line(backbone: dict) -> str:
    folder = f", loaded from `{backbone['folder']}`" if backbone["folder"] else ""
    return f"Backbone `{backbone['name']}`: {backbone['summary']}{folder}."


def markdown(report: dict) -> str:
    lines = [
        f"# unigrounding ablation — preset `{report['preset']}`, task "
        f"{report.get('task', 'rec').upper()}, on {report['dataset']}",
        "",
        _backbone_line(report["backbone"]),
        "",
        *table(report, with_statistics(report, COLUMNS)),
        *comparisons(report),
    ]
    if report.get("statistics"):
        lines += [
            "",
            "Statistics: " + " ".join(f"{k}: {v}." for k, v in report["statistics"].items()),
        ]
    for name, row in report["codecs"].items():
        if row.get("codec_metrics"):
            lines += ["", f"`{name}` metrics: {_listing(row['codec_metrics'])}."]
    for stage, metrics in report.get("stages", {}).items():
        lines += ["", f"Stage `{stage}`: {_listing(metrics)}."]
    lines += [
        "",
        f"Total wall time: {report['seconds']:.0f} s. Settings: `{json.dumps(report.get('settings', {}))}`.",
    ]
    if report.get("manifest"):
        lines += ["", f"Run on: `{json.dumps(report['manifest'])}`."]
    return "\n".join(lines) + "\n"


def manifest() -> dict:
    """Where and with what a report was made: the library's source digest and
    versions, the host's CPU, the CPU kernels torch runs (``cpu_capability``:
    AVX2 and AVX-512 kernels round differently, so the same run gives other
    figures on another host) and thread counts."""
    import os
    import platform

    import mmengine
    import timm
    import torch
    import transformers

    from .. import __version__
    from .stages import source_digest

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                 if ln.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else cpu
    return {
        "unigrounding": __version__,
        "source_digest": source_digest(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "timm": timm.__version__,
        "mmengine": mmengine.__version__,
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def write_report(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(markdown(report))
    rows = {**{f"{k} (baseline)": v for k, v in report["baselines"].items()}, **report["codecs"]}
    for key in CHARTS:
        names = [n for n, r in rows.items() if r.get(key) is not None]
        if not names:
            continue
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(names), 3.2))
        means = np.array([rows[n][key] for n in names], dtype=float)
        intervals = [rows[n].get(f"{key}_ci95") for n in names]
        # error bars: the 95% interval where a row has one (none: a zero-length bar)
        errors = np.array(
            [
                [m - ci[0], ci[1] - m] if ci else [0.0, 0.0]
                for m, ci in zip(means, intervals, strict=True)
            ]
        ).T
        ax.bar(names, means, color="#4a7bd0", yerr=errors if any(intervals) else None, capsize=3)
        ax.set_title(key)
        ax.tick_params(axis="x", rotation=30)
        fig.tight_layout()
        fig.savefig(out / f"{key.replace('@', '_at_')}.png", dpi=100)
        plt.close(fig)
