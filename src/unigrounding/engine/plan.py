"""``unigrounding plan``: a recipe's size and memory before any GPU is booked.

The model is built on the meta device — shapes only, no weights read — from
the config: a local LLM folder's ``config.json`` and tokenizer when the
folder is there, else the architecture in ``llm.config`` (which a recipe
writes for exactly this). Parameters are counted per top-level module, and
trainable ones with the config's ``frozen`` / ``trainable`` / LoRA settings.

Peak memory per GPU is estimated as (bytes)::

    weights + gradients + optimizer  (divided by the GPU count under FSDP)
      weights    = sum over parameters of numel * their dtype's size
      gradients  = trainable * 4            (fp32, as the master weights)
      optimizer  = trainable * 8            (AdamW: two fp32 moments)
      FSDP adds two decoder layers gathered at once (one computing, one prefetched)
    + activations = L * B * T * h * a       (the LLM's decoder layers)
      a = 34 bytes with 16-bit autocast, 68 in fp32: the activations a
          transformer layer keeps per token and hidden unit when attention
          scores are not stored (SDPA / flash-attention; Korthikanti et al.
          2022, "Reducing Activation Recomputation in Large Transformer
          Models", sec. 4.1); with gradient checkpointing each layer keeps
          only its input (2 or 4 bytes) and one layer is recomputed at a time
      T = image tokens + text tokens (``model.max_length``, else 256)
      B = the training batch per GPU

The tower's and the codec's activations, the CUDA context and allocator
slack are not counted: read the figure as a lower bound to compare recipes
and GPU counts, not as a promise.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

#: modules reported even when they hold no parameters (e.g. a text-only codec)
ALWAYS_LISTED = ("llm", "vision", "projector", "codec")

#: text tokens per sample assumed when the config sets no ``max_length``
DEFAULT_TEXT_TOKENS = 256


def _planning_model_cfg(model_cfg: dict) -> dict:
    """The model config with every weight source removed and the LLM built
    from its architecture (the folder's config.json, or ``llm.config``)."""
    cfg = copy.deepcopy(dict(model_cfg))
    cfg.pop("init_checkpoint", None)
    if isinstance(cfg.get("vision"), dict):
        cfg["vision"] = {k: v for k, v in cfg["vision"].items() if k != "checkpoint"}
    llm = dict(cfg["llm"])
    folder = llm.pop("pretrained", None)
    if folder is not None and (Path(folder) / "config.json").is_file():
        from transformers import AutoConfig

        arch = AutoConfig.from_pretrained(folder, local_files_only=True).to_dict()
        if cfg.get("tokenizer") is None:
            cfg["tokenizer"] = {"path": folder}
    elif llm.get("config"):
        arch = dict(llm["config"])
        if cfg.get("tokenizer") is None:
            cfg["tokenizer"] = "shapesref"  # the vocabulary's size comes from the config
    else:
        raise ValueError(
            f"plan needs the LLM's architecture: {folder!r} has no config.json and the "
            "config has no llm.config (a recipe writes the published one there)"
        )
    llm["config"] = arch
    cfg["llm"] = llm
    if isinstance(cfg.get("lora"), dict):
        cfg["lora"] = {k: v for k, v in cfg["lora"].items() if k != "adapter"}
    return cfg


def _count(module: torch.nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def plan(config: str | Path | Config, gpus: int = 1, strategy: str | None = None) -> dict:
    """Parameters per module, trainable parameters and the estimated peak
    memory per GPU of ``config`` trained on ``gpus`` GPUs with ``strategy``."""
    import unigrounding.codecs  # noqa: F401  (registers the in-tree codecs)

    from ..models.chat import TEMPLATE_TOKENS
    from ..registry import MODELS, SCOPE
    from .fsdp import decoder_layers
    from .runner import STRATEGIES, load_config

    cfg = load_config(config)
    strategy = strategy or cfg.get("strategy") or "ddp"
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    model_cfg = _planning_model_cfg(cfg.model)
    with DefaultScope.overwrite_default_scope(SCOPE), torch.device("meta"):
        model = MODELS.build(model_cfg)
    named = dict(model.named_children())
    # the four parts every model has are always listed, the others where they hold parameters
    params = {n: _count(m) for n, m in named.items() if _count(m) or n in ALWAYS_LISTED}
    trainable = {n: _count(named[n], True) for n in params}
    total, learn = sum(params.values()), sum(trainable.values())
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    states = learn * (4 + 8)
    layers = decoder_layers(model.llm)
    if strategy == "fsdp":
        largest = max((sum(p.numel() * p.element_size() for p in m.parameters()) for m in layers),
                      default=0)  # fmt: skip
        model_bytes = (weights + states) / gpus + 2 * largest
    else:
        model_bytes = weights + states
    llm_cfg = model.llm.config
    batch = int(cfg.get("train_dataloader", {}).get("batch_size", 1))
    tokens = model.num_image_tokens + (model.max_length or DEFAULT_TEXT_TOKENS)
    sixteen = model.precision in ("bf16", "fp16", "auto")  # auto: bf16 on CUDA
    per_token = 34 if sixteen else 68
    if getattr(model, "gradient_checkpointing", False):
        kept = len(layers) * (2 if sixteen else 4) + per_token
    else:
        kept = len(layers) * per_token
    activations = batch * tokens * llm_cfg.hidden_size * kept
    gib = 2**30
    added = len({"<image>", *model.codec.processor.special_tokens,
                 *TEMPLATE_TOKENS.get(model_cfg.get("chat_template", "auto"), ())})  # fmt: skip
    return {
        "config": str(config),
        "strategy": strategy,
        "gpus": gpus,
        "params": params,
        "params_total": total,
        "trainable": trainable,
        "trainable_total": learn,
        "codec_tokens_added": added,
        "memory_per_gpu_gib": round((model_bytes + activations) / gib, 2),
        "memory_breakdown_gib": {
            "weights_gradients_optimizer": round(model_bytes / gib, 2),
            "activations": round(activations / gib, 2),
        },
        "assumptions": {
            "batch_per_gpu": batch,
            "tokens_per_sample": tokens,
            "decoder_layers": len(layers),
            "activation_bytes_per_token_and_hidden_per_layer": per_token,
            "formula": "see unigrounding/engine/plan.py",
        },
    }
