"""Each paper's 7B-class recipe: it reads, every dataset and model it names is
registered, and ``plan`` counts the published sizes and fits 8 A100-80GB."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import unigrounding as ug
from unigrounding.engine.plan import plan
from unigrounding.registry import DATASETS, MODELS, SCOPE, TRANSFORMS

CONFIGS = Path(ug.__file__).resolve().parent / "configs"
RECIPES = sorted(p for p in CONFIGS.glob("*/*7b*.py") if not p.stem.endswith("_base"))

#: billions of parameters as published: (LLM, vision tower)
PUBLISHED = {
    "clawmachine": (6.74, 1.0),  # LLaMA-2-7B; EVA-CLIP g/14, "EVA-G/14 (1.0B)" (Table 1)
    "groma": (6.74, 0.30),  # Vicuna-7B v1.5; DINOv2-L/14
    "ref_vlm": (6.74, 0.30),  # Vicuna-7B v1.5; CLIP ViT-L/14-336
    # Qwen2.5-VL-7B as a pretrained VLM backbone: its Qwen2.5-7B LM; its encoder with merger
    "getok": (7.62, 0.68),
    "uglmm": (6.74, 0.30),  # Vicuna-7B; CLIP ViT-L/14-336
    # LLaVA-1.5-7B as a pretrained VLM backbone: Vicuna-7B v1.5; CLIP ViT-L/14-336
    "llava": (6.74, 0.30),
}


def paper(recipe: Path) -> str:
    return next(name for name in PUBLISHED if recipe.stem.startswith(name))


def test_every_paper_has_a_recipe():
    assert {paper(r) for r in RECIPES} == set(PUBLISHED)
    assert len(RECIPES) >= 11


def _types(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["type"]] if isinstance(node.get("type"), str) else []
        return found + [t for v in node.values() for t in _types(v)]
    if isinstance(node, (list, tuple)):
        return [t for v in node for t in _types(v)]
    return []


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_names_registered_datasets_and_local_data_roots(recipe):
    cfg = Config.fromfile(str(recipe))
    loaders = [cfg.get(k) for k in ("train_dataloader", "val_dataloader", "test_dataloader")]
    datasets = [t for loader in loaders if loader for t in _types(loader["dataset"])]
    assert datasets
    with DefaultScope.overwrite_default_scope(SCOPE):
        for name in datasets:
            found = DATASETS.get(name) or TRANSFORMS.get(name)
            assert found is not None, f"{recipe.name}: {name} is not registered"
        assert MODELS.get(cfg.model.type) is not None
    roots = [v for k, v in _walk(cfg.train_dataloader) if k == "data_root"]
    assert roots and all(not str(r).startswith(("http", "s3:")) for r in roots)


def _walk(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _walk(v)


MLLM_RECIPES = [r for r in RECIPES if Config.fromfile(str(r)).model.type == "GroundingMLLM"]


@pytest.mark.parametrize("recipe", MLLM_RECIPES, ids=lambda p: p.stem)
def test_plan_counts_the_published_sizes_and_fits_8_a100_80gb(recipe):
    out = plan(recipe, gpus=8)
    llm, vision = PUBLISHED[paper(recipe)]
    assert round(out["llm_params_as_published"] / 1e9, 2) == llm
    assert round(out["params"]["vision"] / 1e9, 2 if vision < 1 else 1) == vision
    assert out["strategy"] == "deepspeed" and out["zero_stage"] == 2
    assert 0 < out["memory_per_gpu_gib"] < 80, out["memory_breakdown_gib"]


@pytest.mark.parametrize(
    "recipe", [r for r in RECIPES if r not in MLLM_RECIPES], ids=lambda p: p.stem
)
def test_stages_before_the_mllm_build_on_the_meta_device(recipe):
    cfg = Config.fromfile(str(recipe))
    cfg.model.vision.pop("checkpoint")
    with DefaultScope.overwrite_default_scope(SCOPE), torch.device("meta"):
        model = MODELS.build(cfg.model)
    vision = PUBLISHED[paper(recipe)][1]
    count = sum(p.numel() for p in model.vision.parameters()) / 1e9
    assert round(count, 2 if vision < 1 else 1) == vision
