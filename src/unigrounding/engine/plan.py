"""``unigrounding plan``: a recipe's size and memory before any GPU is booked.

The model is built on the meta device — shapes only, no weights read — from
the config: a local LLM (or VLM) folder's ``config.json`` and tokenizer when
the folder is there, else the architecture in ``llm.config`` (``vlm.config``),
which a recipe writes for exactly this. Parameters are counted per top-level module, and
trainable ones with the config's ``frozen`` / ``trainable`` / LoRA settings.

Peak memory per GPU is estimated as model state plus activations (bytes).

Model state, per parameter (P: all, P_t: trainable)::

    ddp, fsdp, deepspeed fp32    weights 4 P (their dtype) + gradients 4 P_t
                                 + AdamW moments 8 P_t
    deepspeed bf16 / fp16        weights 2 P + fp32 master copies 4 P_t
                                 + gradients 4 P_t + moments 8 P_t
    divided by the GPU count N   fsdp: everything, plus two decoder layers
                                 gathered at once (one computing, one
                                 prefetched); deepspeed ZeRO-1: master and
                                 moments; ZeRO-2: also gradients; ZeRO-3:
                                 everything, plus two gathered layers
    16-bit autocast over fp32    + 2 bytes per LLM parameter (the bf16 copies
    weights (ddp, fsdp)          of the weights autocast keeps during forward)

Activations, for a batch of B sequences of T tokens (image tokens + text
tokens: ``--text-tokens``, else ``model.max_length``, else 256)::

    LLM    layers * B * T * bytes(7 h + 2 h_kv + 4 I)
    logits B * T_text * V * (8 bytes in fp32, 10 with 16-bit autocast)
    tower  blocks * B * T_img * bytes(17 w)   (a trainable ViT tower only)

h, h_kv, I: the LLM's hidden, key/value and MLP widths; V: its vocabulary;
w: the tower's width. The element counts are what autograd keeps per token
of a pre-norm decoder layer (Llama / Qwen2 / Mistral with SwiGLU and SDPA or
flash-attention, which keep no attention scores): the two norms' inputs,
the inputs of the q/k/v, output and gate/up projections, SDPA's q, k, v and
output, the gate's and up projection's outputs, the activation's output and
the down projection's input — 9 h + 4 I with full multi-head attention,
7 h + 2 h_kv + 4 I with grouped keys and values. ``bytes`` counts the norms'
inputs (the residual stream, in the master weights' dtype) at 4 bytes and the
rest at 2 with 16-bit autocast, everything at 4 in fp32. A ViT block keeps
17 w per token (Korthikanti et al. 2022, "Reducing Activation Recomputation
in Large Transformer Models", sec. 4.1, without dropout). With gradient
checkpointing each layer keeps only its input (the residual stream) and one
layer's activations are recomputed at a time. The logits are computed at
answer positions only: all text tokens is an upper bound.

Left out: a CNN tower's activations, the codec's and the decoders'
activations, temporaries of single operations, the CUDA context and the
allocator's slack. Measured on CPU (``tests/test_plan.py``), the estimate
is within 15% of the peak of a training step of an LLM-dominated model.
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
    """The model config with every weight source removed and the LLM (or VLM)
    built from its architecture (the folder's config.json, or ``llm.config``
    / ``vlm.config``)."""
    cfg = copy.deepcopy(dict(model_cfg))
    cfg.pop("init_checkpoint", None)
    if isinstance(cfg.get("vision"), dict):
        cfg["vision"] = {k: v for k, v in cfg["vision"].items() if k != "checkpoint"}
    for name, decoder in dict(cfg.get("decoders") or {}).items():  # e.g. SAM's weights
        cfg["decoders"][name] = {k: v for k, v in decoder.items() if k != "checkpoint"}
    # a VLM backbone or the LLM, built from its architecture
    key = "vlm" if isinstance(cfg.get("vlm"), dict) else "llm"
    cfg[key] = _from_architecture(dict(cfg[key]), cfg, key)
    if key == "vlm":  # the image statistics do not change shapes
        cfg["vlm"].setdefault("image_mean", (0.5, 0.5, 0.5))
        cfg["vlm"].setdefault("image_std", (0.5, 0.5, 0.5))
    if isinstance(cfg.get("lora"), dict):
        cfg["lora"] = {k: v for k, v in cfg["lora"].items() if k != "adapter"}
    return cfg


def _from_architecture(spec: dict, cfg: dict, key: str) -> dict:
    """``spec`` (``cfg[key]``) without its folder, its ``config`` the
    folder's config.json when the folder is there, else the one it states (a
    recipe writes the published one); the tokenizer the folder's, else
    ShapesRef's (the vocabulary's size comes from the config)."""
    folder = spec.pop("pretrained", None)
    if folder is not None and (Path(folder) / "config.json").is_file():
        from transformers import AutoConfig

        spec["config"] = AutoConfig.from_pretrained(folder, local_files_only=True).to_dict()
        tokenizer = {"path": folder}
    elif spec.get("config"):
        spec["config"] = dict(spec["config"])
        tokenizer = "shapesref"
    else:
        raise ValueError(
            f"plan needs the {key.upper()}'s architecture: {folder!r} has no config.json and "
            f"the config has no {key}.config (a recipe writes the published one there)"
        )
    if cfg.get("tokenizer") is None:
        cfg["tokenizer"] = tokenizer
    return spec


def _count(module: torch.nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def plan(
    config: str | Path | Config,
    gpus: int = 1,
    strategy: str | None = None,
    text_tokens: int | None = None,
) -> dict:
    """Parameters per module, trainable parameters and the estimated peak
    memory per GPU of ``config`` trained on ``gpus`` GPUs with ``strategy``
    (``text_tokens`` per sample: default ``model.max_length``, else 256)."""
    from ..models.chat import TEMPLATE_TOKENS
    from ..models.mllm import resolve_precision
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
    counts = {n: _count(m) for n, m in named.items()}
    params = {n: c for n, c in counts.items() if c or n in ALWAYS_LISTED}
    trainable = {n: _count(named[n], True) for n in params}
    total, learn = sum(params.values()), sum(trainable.values())
    sixteen = resolve_precision(model.precision, "cuda") != "fp32"  # planned for GPUs
    zero_stage = int((cfg.get("deepspeed") or {}).get("zero_stage", 2))
    layers = decoder_layers(model.llm)
    state = _model_state_bytes(model, layers, strategy, gpus, zero_stage, sixteen)
    batch = int(cfg.get("train_dataloader", {}).get("batch_size", 1))
    text = text_tokens or model.max_length or DEFAULT_TEXT_TOKENS
    activations = _activation_bytes(model, len(layers), batch, text, sixteen)
    gib = 2**30
    added = len({"<image>", *model.codec.processor.special_tokens,
                 *TEMPLATE_TOKENS.get(model_cfg.get("chat_template", "auto"), ())})  # fmt: skip
    return {
        "config": str(config),
        "strategy": strategy,
        **({"zero_stage": zero_stage} if strategy == "deepspeed" else {}),
        "gpus": gpus,
        "params": params,
        "params_total": total,
        "trainable": trainable,
        "trainable_total": learn,
        "codec_tokens_added": added,
        "llm_params_as_published": _published_llm_params(model, _published_vocab(model_cfg)),
        "memory_per_gpu_gib": round((sum(state.values()) + sum(activations.values())) / gib, 3),
        "memory_breakdown_gib": {
            "weights_gradients_optimizer": round(sum(state.values()) / gib, 3),
            "activations": round(sum(activations.values()) / gib, 3),
            **{f"activations_{k}": round(v / gib, 3) for k, v in activations.items()},
        },
        "assumptions": {
            "batch_per_gpu": batch,
            "tokens_per_sample": model.num_image_tokens + text,
            "image_tokens": model.num_image_tokens,
            "text_tokens": text,
            "autocast": "16-bit" if sixteen else "fp32",
            "gradient_checkpointing": bool(getattr(model, "gradient_checkpointing", False)),
            "formula": "see unigrounding/engine/plan.py",
        },
    }


def _published_vocab(model_cfg: dict) -> int:
    """The embedding rows of the LLM's published architecture (0: unknown)."""
    if isinstance(model_cfg.get("vlm"), dict):
        arch = dict(model_cfg["vlm"]["config"].get("text_config") or {})
    else:
        arch = model_cfg["llm"]["config"]
    return int(arch.get("vocab_size", 0) or 0)


def _published_llm_params(model: torch.nn.Module, vocab_size: int) -> int:
    """The LLM's parameters as its model card counts them: without LoRA
    adapters and without the embedding rows added for the codec's tokens."""
    llm = model.llm
    base = sum(p.numel() for n, p in llm.named_parameters() if "lora_" not in n)
    rows = llm.get_input_embeddings().num_embeddings - vocab_size
    text = llm.config.get_text_config()
    tied = bool(getattr(text, "tie_word_embeddings", False))
    return base - max(rows, 0) * text.hidden_size * (1 if tied else 2)


def _model_state_bytes(
    model: torch.nn.Module,
    layers: list[torch.nn.Module],
    strategy: str,
    gpus: int,
    zero_stage: int,
    sixteen: bool,
) -> dict[str, float]:
    """Weights, gradients and optimizer state per GPU (module docstring);
    ``layers``: the LLM's decoder layers (FSDP / ZeRO-3 gather two at once)."""
    all_params = sum(p.numel() for p in model.parameters())
    learn = sum(p.numel() for p in model.parameters() if p.requires_grad)
    half_engine = strategy == "deepspeed" and sixteen  # DeepSpeed keeps 16-bit weights
    if half_engine:
        weights = 2.0 * all_params
        optimizer = (4 + 8) * learn  # fp32 master copies and the two moments
    else:
        weights = float(sum(p.numel() * p.element_size() for p in model.parameters()))
        optimizer = 8.0 * learn
    gradients = 4.0 * learn
    largest = max((sum(p.numel() for p in m.parameters()) for m in layers), default=0)
    gathered = 2 * largest * (2 if half_engine else 4)
    if strategy == "fsdp" or (strategy == "deepspeed" and zero_stage == 3):
        weights, gradients, optimizer = (
            weights / gpus + gathered,
            gradients / gpus,
            optimizer / gpus,
        )
    elif strategy == "deepspeed":
        optimizer /= gpus if zero_stage >= 1 else 1
        gradients /= gpus if zero_stage >= 2 else 1
    state = {"weights": weights, "gradients": gradients, "optimizer": optimizer}
    if sixteen and not half_engine:
        state["autocast_weight_copies"] = 2.0 * sum(p.numel() for p in model.llm.parameters())
    return state


def _activation_bytes(
    model: torch.nn.Module, layers: int, batch: int, text_tokens: int, sixteen: bool
) -> dict[str, float]:
    """What autograd keeps for backward, per part (module docstring);
    ``layers``: the LLM's decoder layers."""
    arch = model.llm.config.get_text_config()
    h = arch.hidden_size
    kv = h * (getattr(arch, "num_key_value_heads", None) or arch.num_attention_heads)
    kv //= arch.num_attention_heads
    inner = getattr(arch, "intermediate_size", 4 * h)
    residual = 4  # the norms' inputs: the residual stream, in fp32 master weights
    rest = 2 if sixteen else 4
    layer = 2 * h * residual + (5 * h + 2 * kv + 4 * inner) * rest
    tokens = model.num_image_tokens + text_tokens
    if getattr(model, "gradient_checkpointing", False):
        llm = batch * tokens * (layers * h * residual + layer)
    else:
        llm = batch * tokens * layers * layer
    logits = batch * text_tokens * arch.vocab_size * (10 if sixteen else 8)
    out = {"llm": float(llm), "logits": float(logits)}
    blocks = [m for m in model.vision.modules() if hasattr(m, "attn") and hasattr(m, "mlp")]
    if blocks and any(p.requires_grad for p in model.vision.parameters()):
        width = blocks[0].mlp.fc1.in_features
        image_tokens = _tower_tokens(model.vision)
        per_block = 2 * width * residual + 15 * width * rest
        kept = len(blocks) * per_block
        if getattr(model, "gradient_checkpointing", False):
            kept = len(blocks) * width * residual + per_block
        out["tower"] = float(batch * image_tokens * kept)
    return out


def _tower_tokens(vision: torch.nn.Module) -> int:
    """Tokens a ViT tower's blocks see: its patches plus prefix tokens."""
    embed = next(m for m in vision.modules() if hasattr(m, "num_patches"))
    prefix = next(
        (m.num_prefix_tokens for m in vision.modules() if hasattr(m, "num_prefix_tokens")), 0
    )
    return int(embed.num_patches) + int(prefix)
