"""``unigrounding roundtrip``: a codec's accuracy ceiling on ShapesRef val,
the data and stages the ablation uses (:mod:`unigrounding.roundtrip` measures
it)."""

from __future__ import annotations

import copy
from pathlib import Path

from mmengine.registry import DefaultScope

from .ablate.codec_job import over_eval_variants
from .ablate.configs import apply_preset, codec_config
from .ablate.presets import PRESETS, config_dir, shapesref_root
from .ablate.stages import PRETRAIN_STAGE, run_stage
from .registry import DATASETS, MODELS
from .roundtrip import prepared_samples, roundtrip


def codec_roundtrip(name: str, n: int = 200, config_dir_path: str | Path | None = None) -> dict:
    """The ceiling of the codec *with its default arguments* (e.g. Shikra's 3
    decimals for ``text_coords``) on ``n`` ShapesRef val samples, and of each
    of its evaluation variants. A codec with its own training stages (a
    proposer, a visual tokenizer) keeps its ablate config's arguments: the
    stages fix its parameters (e.g. the codebook size)."""
    cdir = config_dir(config_dir_path)
    cfg = codec_config(cdir, name)
    settings = dict(PRESETS["quick"], eval_samples=n)
    data_root = shapesref_root(settings)
    start_from = None
    if cfg.get("ablate_stages"):  # e.g. the proposer whose boxes bound the ceiling
        start_from, _ = run_stage(cdir, PRETRAIN_STAGE, settings, data_root)
        for stage in cfg.ablate_stages:
            start_from, _ = run_stage(cdir, stage, settings, data_root, start_from)
    else:
        cfg.model.codec = {"type": name}
    apply_preset(cfg, settings, data_root, 1)
    cfg.model.init_checkpoint = None if start_from is None else str(start_from)
    with DefaultScope.overwrite_default_scope("unigrounding"):
        model = MODELS.build(cfg.model)
        dataset = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    items = [dataset[i] for i in range(min(n, len(dataset)))]
    samples = prepared_samples(model, items)
    rows = over_eval_variants(
        model.codec, lambda: roundtrip(model.codec, model.tokenizer, samples, progress=True)
    )
    return {"codec": name, **rows.pop(""), **rows}
