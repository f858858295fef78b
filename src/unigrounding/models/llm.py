"""Building the causal LM and its tokenizer (tiny from a config, real from a local dir)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from .tokenizer import build_shapesref_tokenizer


def select_attn_implementation(requested: str = "auto") -> str:
    """``flash_attention_2`` when asked for ``auto`` on CUDA with flash-attn
    installed, else ``sdpa``; an explicit request is passed through unchanged."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def build_tokenizer(
    spec: dict | str | None, llm_path: str | None, extra_words: tuple[str, ...] = ()
):
    """The tokenizer ``spec`` names: ``"shapesref"`` (offline word-level,
    which also learns ``extra_words`` whole), a local directory
    (``dict(path=...)`` or the path itself), or ``None``: the LLM's own when it
    is pretrained, ShapesRef's for an LLM built from a config."""
    path = spec if isinstance(spec, str) else (spec or {}).get("path")
    if path == "shapesref" or (path is None and llm_path is None):
        return build_shapesref_tokenizer(extra_words)
    path = path or llm_path
    if not Path(path).is_dir():
        raise FileNotFoundError(f"tokenizer directory not found: {path}")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.eos_token_id is None:
        raise ValueError(f"tokenizer {path} has no EOS token: answers could not end")
    return tok


def add_special_tokens(tokenizer, tokens: tuple[str, ...]) -> list[str]:
    """Add ``tokens`` the vocabulary lacks (as special tokens, so text never
    splits them); returns the ones added."""
    vocab = tokenizer.get_vocab()  # built anew on each call: once, not per token
    new = [t for t in dict.fromkeys(tokens) if t not in vocab]
    if new:
        tokenizer.add_tokens(new, special_tokens=True)
    return new


#: ``dtype`` names a config may use.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str | torch.dtype) -> str | torch.dtype:
    """A config's ``dtype`` name as a torch dtype (``"auto"`` stays)."""
    if isinstance(name, torch.dtype) or name == "auto":
        return name
    if name not in DTYPES:
        raise ValueError(f"llm dtype must be 'auto' or one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


def build_llm(spec: dict, vocab_size: int, attn_implementation: str = "auto") -> PreTrainedModel:
    """The causal LM ``spec`` describes.

    ``spec`` keys:

    * ``pretrained``: a local ``save_pretrained`` folder to load;
    * ``config``: ``dict(model_type=..., **config)`` for an LLM built from
      scratch (the tiny preset); unused when ``pretrained`` is set, so a
      config inheriting the tiny one only needs to name its folder;
    * ``dtype`` (or its older name ``torch_dtype``): the parameters' dtype,
      ``"float32"`` by default — fp32 master weights for training whatever the
      checkpoint's dtype (a bf16 Qwen2 checkpoint is upcast); ``"bfloat16"``
      keeps the LLM in bf16 (e.g. frozen, for inference), ``"auto"`` the
      checkpoint's;
    * any other key is passed to ``from_pretrained`` / ``from_config``
      (``attn_implementation``, ``rope_scaling``, ...).
    """
    spec = dict(spec)
    pretrained = spec.pop("pretrained", None)
    arch = dict(spec.pop("config", None) or {})
    dtype = resolve_dtype(spec.pop("dtype", spec.pop("torch_dtype", "float32")))
    attn = select_attn_implementation(spec.pop("attn_implementation", attn_implementation))
    if pretrained is not None:
        if not Path(pretrained).is_dir():
            raise FileNotFoundError(f"LLM directory not found: {pretrained}")
        llm = AutoModelForCausalLM.from_pretrained(
            pretrained, local_files_only=True, attn_implementation=attn, dtype=dtype, **spec
        )
    else:
        if not arch:
            raise ValueError(
                "llm needs `pretrained` (a local folder) or `config` (a model_type ...)"
            )
        model_type = arch.pop("model_type", "llama")
        # a vocabulary size the config states (a published architecture) wins
        config = AutoConfig.for_model(model_type, **{"vocab_size": vocab_size, **arch})
        llm = AutoModelForCausalLM.from_config(
            config,
            attn_implementation=attn,
            dtype=torch.float32 if dtype == "auto" else dtype,
            **spec,
        )
    return llm


def fit_vocabulary(llm: PreTrainedModel, tokenizer, base_size: int, source: str) -> None:
    """Check that the tokenizer's own ``base_size`` ids fit the LLM's
    embeddings, then grow them for the tokens added since (new rows are the
    mean of the old ones, transformers' default; codecs may set theirs)."""
    rows = llm.get_input_embeddings().num_embeddings
    if base_size > rows:
        raise ValueError(
            f"the tokenizer ({base_size} tokens) does not fit the LLM {source} "
            f"({rows} embedding rows): pair the LLM with its own tokenizer"
        )
    if len(tokenizer) > rows:
        # mean initialisation needs values: not on the meta device (planning)
        on_meta = llm.get_input_embeddings().weight.is_meta
        llm.resize_token_embeddings(len(tokenizer), mean_resizing=not on_meta)


#: LoRA's default targets: the attention projections of Llama-style decoders.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


def apply_lora(
    llm: PreTrainedModel,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.05,
    target_modules: tuple[str, ...] = LORA_TARGETS,
    adapter: str | None = None,
) -> torch.nn.Module:
    """The LLM with peft LoRA adapters (rank ``r``, scaling ``alpha / r``) on
    ``target_modules``; the rest of the LLM is frozen except the input and
    output embeddings, which stay trainable because codec tokens added to the
    vocabulary have no pretrained rows. ``adapter``: a saved peft adapter
    folder to continue from (an export's ``lora/``) instead of fresh ones."""
    if importlib.util.find_spec("peft") is None:
        raise ImportError("LoRA needs peft: pip install 'unigrounding[lora]'")
    from peft import LoraConfig, PeftModel, get_peft_model

    if adapter is not None:
        model = PeftModel.from_pretrained(llm, adapter, is_trainable=True)
    else:
        config = LoraConfig(
            r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules)
        )
        model = get_peft_model(llm, config)
    model.get_input_embeddings().requires_grad_(True)
    model.get_output_embeddings().requires_grad_(True)
    return model
