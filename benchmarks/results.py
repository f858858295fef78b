"""Regenerate the results tables from an ablation's ``report.json``.

    python benchmarks/results.py work_dirs/ablate/report.json

writes ``benchmarks/RESULTS.md`` (the whole report: every column, stages,
codec metrics, the run's manifest) and replaces the table between the
``results`` markers of ``README.md`` with its headline columns. Tables are
never edited by hand: rerun the ablation, then this.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from unigrounding.ablate.report import markdown, table, with_statistics

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- results: benchmarks/results.py writes this table -->", "<!-- /results -->"
README_COLUMNS = [
    ("rec_acc@0.5", "REC Acc@0.5", "{:.3f}"),
    ("rec_acc@0.75", "Acc@0.75", "{:.3f}"),
    ("rec_miou", "mIoU", "{:.3f}"),
    ("parse_failures", "parse failures", "{:.4g}"),
    ("parse_repairs", "parse repairs", "{:.4g}"),
    ("tokens_per_object", "tokens / object", "{:.1f}"),
]


def provenance(report: dict, source: str) -> str:
    run = report.get("manifest", {})
    # the kernels decide float rounding, so they belong next to the figures
    kernels = f", {run['cpu_capability']} kernels" if run.get("cpu_capability") else ""
    return (
        f"From `{source}`: `unigrounding ablate`, preset `{report['preset']}`, task "
        f"{report.get('task', 'rec').upper()}, settings `{json.dumps(report['settings'])}`; "
        f"{report['seconds'] / 60:.1f} min on {run.get('cpu', 'an unrecorded host')} "
        f"({run.get('cpu_count', '?')} CPUs{kernels}), unigrounding "
        f"{run.get('unigrounding', '?')}, torch {run.get('torch', '?')}, transformers "
        f"{run.get('transformers', '?')}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    report = json.loads(args.report.read_text())
    where = provenance(report, args.report.name)
    args.out.write_text(markdown(report) + "\n" + where + "\n")
    readme = args.readme.read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"{args.readme}: no results markers ({START} ... {END})")
    block = "\n".join(
        [START, *table(report, with_statistics(report, README_COLUMNS)), "", where, END]
    )
    args.readme.write_text(
        re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, readme, flags=re.S)
    )
    print(f"wrote {args.out} and the table of {args.readme}")


if __name__ == "__main__":
    main()
