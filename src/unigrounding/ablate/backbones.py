"""The backbones ``ablate --backbone`` runs the codecs on.

``tiny`` (the default) is the configs' own assembled model: the timm ConvNeXt
tower, the MLP projector and the 2-layer Llama (docs/tiny_preset.md). Every
other name is a pretrained-VLM layout a real study fine-tunes, as an offline
miniature (:mod:`unigrounding.miniatures`): built once into the cache, then
loaded from its folder exactly as a downloaded checkpoint is. Applying one to
a config swaps the assembled backbone for ``model.vlm`` and packs every
dataset in the VLM's own input frame; stage 0, the codecs' own stages and
the fine-tuning all run on it, so a ranking is a ranking on that layout.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmengine.config import Config

from .configs import leaf_datasets
from .presets import cache_dir

#: the configs' own assembled backbone
TINY = "tiny"


@dataclass(frozen=True)
class VLMBackbone:
    """A pretrained-VLM backbone for the ablation.

    build: writes the VLM folder into the given (empty) directory.
    frame: the data pipelines' frame keys (``frame``, ``pixels``; the same as
        the folder's image processor).
    cell: input pixels one image token covers (stage 0's cell lattice).
    max_new_tokens: the generation budget (its tokenizer spells answers in
        more tokens than the tiny preset's word-level one).
    summary: one line for ``--help`` and the report.
    """

    build: Callable[[Path], Path]
    frame: dict
    cell: int
    max_new_tokens: int
    summary: str


#: ShapesRef's 60x72 images resized to 224x252: 8x9 = 72 image tokens of 28
#: pixels, as many as the tiny preset's 8x8 over its padded square (4x5 at
#: the smallest Qwen2.5-VL input would give an object 8-16 px wide one token)
QWEN2_5_VL_TINY_PIXELS = (224 * 224, 252 * 280)


def _qwen2_5_vl_tiny(out: Path) -> Path:
    """Qwen2.5-VL-Instruct's architecture at the tiny preset's LM size
    (``configs/_base_/models/tiny_mllm.py``) with a 4-block windowed ViT (one
    full-attention block last, as Qwen's every eighth), initialised as a model
    about to be trained: stage 0 gives its tower the head start, as for the
    tiny one."""
    from ..miniatures import qwen2_5_vl_folder
    from .presets import config_dir

    tiny = Config.fromfile(str(config_dir() / "_base_" / "models" / "tiny_mllm.py"))
    text = {k: v for k, v in tiny.model.llm.config.items() if k != "model_type"}
    pairs = text["hidden_size"] // text["num_attention_heads"] // 2
    # M-RoPE in Qwen's temporal / height / width proportions (16 / 24 / 24 of 64 pairs)
    sections = [pairs // 4, pairs * 3 // 8, pairs - pairs // 4 - pairs * 3 // 8]
    text["rope_parameters"] = dict(rope_type="default", rope_theta=1e6, mrope_section=sections)
    vision = dict(
        depth=4,
        hidden_size=64,
        intermediate_size=128,
        num_heads=2,
        out_hidden_size=text["hidden_size"],
        window_size=112,
        fullatt_block_indexes=[3],
        initializer_range=0.02,
    )
    return qwen2_5_vl_folder(out, QWEN2_5_VL_TINY_PIXELS, vision=vision, text=text)


BACKBONES: dict[str, VLMBackbone] = {
    "qwen2_5_vl_tiny": VLMBackbone(
        build=_qwen2_5_vl_tiny,
        frame=dict(frame="qwen2_5_vl", pixels=QWEN2_5_VL_TINY_PIXELS),
        cell=28,
        max_new_tokens=160,
        summary="Qwen2.5-VL architecture (windowed ViT, M-RoPE, ChatML), 72 image tokens",
    ),
}


def backbone_names() -> list[str]:
    return [TINY, *BACKBONES]


def describe_backbone(name: str) -> dict:
    """What a report says of backbone ``name``: its name, one line, its folder."""
    backbone = _check(name)
    if backbone is None:
        summary = "the configs' assembled timm tower + MLP projector + 2-layer Llama"
        return {"name": name, "summary": summary, "folder": None}
    return {"name": name, "summary": backbone.summary, "folder": str(backbone_folder(name))}


def _check(name: str) -> VLMBackbone | None:
    if name == TINY:
        return None
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {backbone_names()}")
    return BACKBONES[name]


def backbone_folder(name: str) -> Path:
    """The VLM folder of backbone ``name``, built into the cache on first use
    (in a temporary folder renamed into place, so a half-written one is never
    read). Its name carries a digest of the code that builds it and of the
    library versions that write it, so a change rebuilds it."""
    import tokenizers
    import torch
    import transformers

    backbone = _check(name)
    if backbone is None:
        raise ValueError(f"backbone {TINY!r} is assembled from the configs, it has no folder")
    package = Path(__file__).resolve().parent.parent
    sources = [
        Path(__file__),
        package / "miniatures.py",
        package / "configs" / "_base_" / "models" / "tiny_mllm.py",
    ]
    text = "".join(p.read_text() for p in sources)
    text += f"{transformers.__version__} {tokenizers.__version__} {torch.__version__}"
    folder = cache_dir() / f"backbone-{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    if (folder / "config.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        # the same random weights on every machine and run
        with torch.random.fork_rng():
            torch.manual_seed(0)
            backbone.build(staging)
        staging.rename(folder)
    except OSError:
        if not (folder / "config.json").exists():  # not a concurrent build that won
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


#: the frame-setting transforms, and the keys of theirs a VLM backbone replaces
FRAME_TRANSFORMS = ("PackGroundingSample", "PackCellLabels")


def apply_backbone(cfg: Config, name: str) -> None:
    """Put ``cfg`` (a codec's or a stage's) on backbone ``name``: the model's
    assembled ``vision`` / ``projector`` / ``llm`` become ``vlm`` (its folder),
    and every dataset of its loaders is packed in the VLM's frame (stage 0's
    cells on its token lattice)."""
    from ..models.vlm import ASSEMBLED_BACKBONE_KEYS

    backbone = _check(name)
    if backbone is None:
        return
    if "policy" not in cfg.model:  # an RL stage's model is an export, backbone and all
        # image_size is the assembled tower's square input; the VLM's frame has its own
        for key in (*ASSEMBLED_BACKBONE_KEYS, "image_size"):
            cfg.model.pop(key, None)
        cfg.model.vlm = dict(pretrained=str(backbone_folder(name)))
        if "max_new_tokens" in cfg.model:
            cfg.model.max_new_tokens = max(cfg.model.max_new_tokens, backbone.max_new_tokens)
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(loader) is None:
            continue
        for ds in leaf_datasets(cfg[loader].dataset):
            for step in ds.get("pipeline", []):
                if step.type not in FRAME_TRANSFORMS:
                    raise ValueError(
                        f"{loader}: pipeline step {step.type!r} is not one ablate can put "
                        f"in the {name} frame (it adapts {FRAME_TRANSFORMS})"
                    )
                step.pop("image_size", None)
                step.update(backbone.frame)
                if step.type == "PackCellLabels":
                    step.cell = backbone.cell
