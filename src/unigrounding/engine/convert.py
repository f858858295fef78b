"""Converting exports of unigrounding 0.1 (``config.py`` + one safetensors file).

Their config is Python: converting runs it, so it is only done when a user
asks for it on a folder they trust (``unigrounding export-convert``); loading
never does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mmengine.config import Config
from mmengine.registry import DefaultScope

from .export import LEGACY_CONFIG, WEIGHTS, export_model, load_weights


def convert_legacy_export(folder: str | Path, out: str | Path | None = None) -> Path:
    """Rewrite the 0.1 export ``folder`` in the current format (into ``out``,
    default in place). The LLM is rebuilt from the config: a pretrained base
    LLM folder it names must still exist (its weights are then replaced by
    the export's)."""
    from ..registry import MODELS, SCOPE

    folder = Path(folder)
    if not (folder / LEGACY_CONFIG).exists():
        raise FileNotFoundError(f"{folder} has no {LEGACY_CONFIG}: not a 0.1 export")
    cfg = Config.fromfile(str(folder / LEGACY_CONFIG))
    cfg.model.init_checkpoint = None
    cfg.model.vision.pop("checkpoint", None)
    if (folder / "tokenizer").is_dir():
        cfg.model.tokenizer = str(folder / "tokenizer")
    llm = dict(cfg.model.llm)
    if "pretrained" not in llm and "config" not in llm:  # 0.1 kept the architecture flat
        cfg.model.llm = dict(config=llm)
    with DefaultScope.overwrite_default_scope(SCOPE):
        model = MODELS.build(cfg.model)
    load_weights(model, folder / WEIGHTS)
    out = Path(out) if out is not None else folder
    export_model(model, cfg, out)
    if out == folder and (folder / "tokenizer").is_dir():
        shutil.rmtree(folder / "tokenizer")
    return out
