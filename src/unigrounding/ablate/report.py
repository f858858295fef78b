"""Ablation report: ``report.json``, ``report.md`` and PNG bar charts."""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = [
    ("rec_acc@0.5", "REC Acc@0.5", "{:.3f}"),
    ("rec_miou", "mIoU", "{:.3f}"),
    ("res_ciou", "RES cIoU", "{:.3f}"),
    ("res_giou", "RES gIoU", "{:.3f}"),
    ("parse_failures", "parse fail", "{}"),
    ("parse_repairs", "parse repairs", "{}"),
    ("tokens_per_object", "tok/obj", "{:.1f}"),
    ("train_samples_per_s", "train samp/s", "{:.1f}"),
    ("decode_ms_per_object", "decode ms/obj", "{:.3f}"),
    ("train_seconds", "train s", "{:.0f}"),
]
CHARTS = ("rec_acc@0.5", "rec_miou", "tokens_per_object", "train_samples_per_s")


def _cell(value, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


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
            f"| {name} | " + " | ".join(_cell(row.get(k), f) for k, _, f in columns) + " |"
        )
    return lines


def markdown(report: dict) -> str:
    lines = [
        f"# unigrounding ablation — preset `{report['preset']}`, task "
        f"{report.get('task', 'rec').upper()}, on {report['dataset']}",
        "",
        *table(report),
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
    versions, the host's CPU and thread counts."""
    import os
    import platform

    import mmengine
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
        "mmengine": mmengine.__version__,
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def write_report(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(markdown(report))
    rows = {**{f"{k} (baseline)": v for k, v in report["baselines"].items()}, **report["codecs"]}
    for key in CHARTS:
        names = [n for n, r in rows.items() if r.get(key) is not None]
        if not names:
            continue
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(names), 3.2))
        ax.bar(names, [rows[n][key] for n in names], color="#4a7bd0")
        ax.set_title(key)
        ax.tick_params(axis="x", rotation=30)
        fig.tight_layout()
        fig.savefig(out / f"{key.replace('@', '_at_')}.png", dpi=100)
        plt.close(fig)
