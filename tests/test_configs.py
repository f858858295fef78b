"""Every shipped config parses and builds its model (no training). The
papers' 7B recipes name real weights: tests/test_recipes.py builds them on
the meta device instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from unigrounding.registry import MODELS

ROOT = Path(__file__).resolve().parents[1] / "configs"
#: read by ``ablate`` only, to order its jobs: no model, nothing to train
COST_TABLE = ROOT / "ablate" / "stage_costs.py"
CONFIGS = sorted(
    p
    for p in ROOT.rglob("*.py")
    if "_base_" not in p.parts and "7b" not in p.stem and p != COST_TABLE
)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_config_builds_its_model(path, tmp_path):
    cfg = Config.fromfile(str(path))
    assert cfg.get("train_dataloader") is not None, "every config trains something"
    with DefaultScope.overwrite_default_scope("unigrounding"):
        if cfg.model.type == "GRPOPolicy":  # an RL stage starts from its codec's SFT export
            from unigrounding.engine.export import export_model

            task = "res" if "res" in path.stem.split("_") else "rec"
            sft = Config.fromfile(str(path.parent / f"{task}_shapesref.py"))
            export = export_model(MODELS.build(sft.model), sft, tmp_path / "sft")
            cfg.model.policy = str(export)
        model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
