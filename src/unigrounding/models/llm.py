"""Building the causal LM and its tokenizer (tiny from a config, real from a local dir)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from .tokenizer import IMAGE, build_shapesref_tokenizer


def select_attn_implementation(requested: str = "auto") -> str:
    """``flash_attention_2`` when asked for ``auto`` on CUDA with flash-attn
    installed, else ``sdpa``; an explicit request is passed through unchanged."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def build_tokenizer(
    spec: dict | str | None,
    llm_path: str | None,
    extra_tokens: tuple[str, ...],
    extra_words: tuple[str, ...] = (),
):
    """``"shapesref"`` (offline word-level, which also learns ``extra_words``
    whole), a local directory, or the LLM's own."""
    path = spec if isinstance(spec, str) else (spec or {}).get("path")
    if path == "shapesref" or (path is None and llm_path is None):
        tok = build_shapesref_tokenizer(extra_words)
    else:
        tok = AutoTokenizer.from_pretrained(path or llm_path, local_files_only=True)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
    new = [t for t in (IMAGE, *extra_tokens) if t not in tok.get_vocab()]
    if new:
        tok.add_tokens(new, special_tokens=True)
    return tok


def build_llm(spec: dict, vocab_size: int, attn_implementation: str = "auto") -> PreTrainedModel:
    """``spec``: ``{"pretrained": local_dir}`` or ``{"model_type": ..., **config}``."""
    spec = dict(spec)
    attn = select_attn_implementation(attn_implementation)
    pretrained = spec.pop("pretrained", None)
    if pretrained is not None:
        if not Path(pretrained).is_dir():
            raise FileNotFoundError(f"LLM directory not found: {pretrained}")
        llm = AutoModelForCausalLM.from_pretrained(
            pretrained, local_files_only=True, attn_implementation=attn
        )
    else:
        model_type = spec.pop("model_type", "llama")
        config = AutoConfig.for_model(model_type, vocab_size=vocab_size, **spec)
        llm = AutoModelForCausalLM.from_config(config, attn_implementation=attn)
    if llm.get_input_embeddings().num_embeddings < vocab_size:
        llm.resize_token_embeddings(vocab_size)
    return llm


#: LoRA's default targets: the attention projections of Llama-style decoders.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


def apply_lora(
    llm: PreTrainedModel,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.05,
    target_modules: tuple[str, ...] = LORA_TARGETS,
) -> torch.nn.Module:
    """The LLM with peft LoRA adapters (rank ``r``, scaling ``alpha / r``) on
    ``target_modules``; the rest of the LLM is frozen except the input and
    output embeddings, which stay trainable because codec tokens added to the
    vocabulary have no pretrained rows."""
    if importlib.util.find_spec("peft") is None:
        raise ImportError("LoRA needs peft: pip install 'unigrounding[lora]'")
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules)
    )
    model = get_peft_model(llm, config)
    model.get_input_embeddings().requires_grad_(True)
    model.get_output_embeddings().requires_grad_(True)
    return model
