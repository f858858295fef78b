"""The GPU check script runs end to end in its CPU dry mode."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_reports_every_part(tmp_path):
    out = tmp_path / "gpu_check.json"
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "gpu_check.py"),
        "--dry-run",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parts = {r["part"]: r for r in json.loads(out.read_text())["results"]}
    train = parts["train+decode"]
    assert train["train_samples_per_s"] > 0 and train["decode_tokens_per_s"] > 0
    for strategy in ("fsdp", "deepspeed"):
        sharded = parts[strategy]
        assert "error" not in sharded, sharded.get("error")
        assert sharded["iterations"] == list(range(1, 9)) and sharded["resumed_from"] == 4
        assert sharded["export_written"]
