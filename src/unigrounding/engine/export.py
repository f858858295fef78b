"""Exported model directories: ``model.safetensors`` + ``config.py`` + tokenizer."""

from __future__ import annotations

from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.model import is_model_wrapper
from safetensors.torch import load_model, save_model

WEIGHTS = "model.safetensors"
CONFIG = "config.py"


def export_model(model: torch.nn.Module, cfg: Config, out_dir: str | Path) -> Path:
    """Save weights (safetensors; tied tensors handled), config and tokenizer."""
    if is_model_wrapper(model):
        model = model.module
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, str(out / WEIGHTS))
    cfg.dump(str(out / CONFIG))
    if hasattr(model, "tokenizer"):
        model.tokenizer.save_pretrained(str(out / "tokenizer"))
    return out


def load_weights(model: torch.nn.Module, checkpoint: str | Path) -> None:
    """Load an exported directory, a ``.safetensors`` file or an mmengine ``.pth``."""
    path = Path(checkpoint)
    if path.is_dir():
        path = path / WEIGHTS
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        load_model(model, str(path), strict=True)
        return
    from mmengine.runner import load_checkpoint

    load_checkpoint(model, str(path), map_location="cpu", strict=True)


def init_from_pretrained(model: torch.nn.Module, checkpoint: str | Path) -> dict[str, list[str]]:
    """Initialise ``model`` from a checkpoint trained with a smaller vocabulary.

    Tensors of equal shape are copied; an embedding / output matrix whose first
    dimension grew (a codec added tokens after the checkpoint's vocabulary) gets
    the checkpoint's rows and keeps its fresh initialisation for the new rows.
    Returns the names left untouched (``missing``, e.g. the codec's own modules)
    and those the model has no use for (``unexpected``).
    """
    from safetensors.torch import load_file

    path = Path(checkpoint)
    state = load_file(str(path / WEIGHTS if path.is_dir() else path))
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    with torch.no_grad():
        for key, value in state.items():
            if key not in own:
                continue
            target = own[key]
            if target.shape == value.shape:
                target.copy_(value)
            elif (
                target.dim() == value.dim()
                and target.shape[1:] == value.shape[1:]
                and target.shape[0] > value.shape[0]
            ):
                target[: value.shape[0]].copy_(value)
            else:
                raise ValueError(
                    f"{path}: {key} has shape {tuple(value.shape)}, model has {tuple(target.shape)}"
                )
    return {"missing": missing, "unexpected": unexpected}


def carry_over(base: str | Path, export: str | Path) -> list[str]:
    """Add to the exported directory ``export`` every tensor of ``base`` (a
    directory or ``.safetensors`` file) that it does not hold, so a chain of
    stages ends in one checkpoint with all of their parts (e.g. a proposer's
    stage followed by a visual tokenizer's). Returns the names added."""
    from safetensors.torch import load_file, save_file

    base, target = Path(base), Path(export) / WEIGHTS
    earlier = load_file(str(base / WEIGHTS if base.is_dir() else base))
    state = load_file(str(target))
    added = sorted(k for k in earlier if k not in state)
    if added:
        save_file({**state, **{k: earlier[k] for k in added}}, str(target))
    return added
