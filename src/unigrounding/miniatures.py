"""Offline miniatures of published checkpoints, saved the way they are published.

Each builder writes a folder a user could have downloaded: a real
transformers architecture class at tiny size with random weights, in the
checkpoint's dtype, with a byte-level BPE tokenizer trained here with
``tokenizers`` (the family's special tokens, BOS policy and chat template),
or a timm tower's state dict as safetensors. Nothing is downloaded. The
tests load them exactly as a user loads a real folder, and ``ablate
--backbone`` runs the codecs on one (:mod:`~unigrounding.ablate.backbones`).
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Config,
    Qwen2ForCausalLM,
)
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

from unigrounding.data.shapesref import vocabulary

#: Qwen2-Instruct's template: ChatML with a default system turn.
QWEN2_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

#: Mistral-Instruct v0.1's template: BOS once, [INST] turns, EOS after answers.
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}"
)


def _corpus() -> list[str]:
    words = " ".join(vocabulary())
    return [
        words,
        "Where is the red circle? Please give its box. What is in the region?",
        "0.12 0.34 0.56 0.78 [0.1,0.2,0.3,0.4] 0123456789 ,.;:()[]{}<>",
        "USER: ASSISTANT: system user assistant You are a helpful assistant.",
    ] * 4


def train_tokenizer(
    out: Path,
    specials: list[str],
    *,
    eos: str,
    pad: str,
    bos: str | None = None,
    unk: str | None = None,
    add_bos: bool = False,
    chat_template: str | None = None,
    vocab_size: int = 700,
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ShapesRef text, saved to ``out``."""
    tok = Tokenizer(models.BPE(unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A",
            pair=f"{bos} $A {bos} $B",
            special_tokens=[(bos, tok.token_to_id(bos))],
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad, unk_token=unk
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    fast.save_pretrained(str(out))
    return fast


def _llm_dims(**extra) -> dict:
    return dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        **extra,
    )


def _save_llm(model: torch.nn.Module, out: Path, dtype: torch.dtype) -> Path:
    model.to(dtype).save_pretrained(str(out))
    return out


def qwen2_folder(out: Path) -> Path:
    """Qwen2/2.5-Instruct: ChatML template, no BOS token, EOS ``<|im_end|>``,
    tied embeddings padded past the tokenizer (as Qwen's 151936 rows for a
    151665-token vocabulary), bf16 weights."""
    tok = train_tokenizer(
        out,
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        eos="<|im_end|>",
        pad="<|endoftext|>",
        chat_template=QWEN2_TEMPLATE,
    )
    rows = (len(tok) + 63) // 64 * 64 + 64
    config = Qwen2Config(
        vocab_size=rows,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
        **_llm_dims(),
    )
    return _save_llm(Qwen2ForCausalLM(config), out, torch.bfloat16)


def llama_folder(out: Path) -> Path:
    """Llama-2 / Vicuna v1.5: ``<s>`` added by the tokenizer, no chat
    template (Vicuna's is the format's own), fp16 weights."""
    tok = train_tokenizer(
        out, ["<unk>", "<s>", "</s>"], eos="</s>", pad="<unk>", bos="<s>", unk="<unk>", add_bos=True
    )
    config = LlamaConfig(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        **_llm_dims(),
    )
    return _save_llm(LlamaForCausalLM(config), out, torch.float16)


def mistral_folder(out: Path) -> Path:
    """Mistral-7B-Instruct: ``[INST]`` template that writes BOS itself, no
    pad token (EOS stands in), sliding-window attention config, bf16 weights."""
    tok = train_tokenizer(
        out,
        ["<unk>", "<s>", "</s>"],
        eos="</s>",
        pad=None,
        bos="<s>",
        unk="<unk>",
        add_bos=True,
        chat_template=MISTRAL_TEMPLATE,
    )
    config = MistralConfig(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        sliding_window=4096,
        **_llm_dims(),
    )
    return _save_llm(MistralForCausalLM(config), out, torch.bfloat16)


def llava_folder(out: Path, image_size: int = 64) -> Path:
    """LLaVA-1.5-hf (``LlavaForConditionalGeneration``): a CLIP ViT encoder
    read at its second-to-last layer without the class token, a 2-layer MLP
    projector, a Llama LM with ``<s>`` added by the tokenizer and ``<image>``
    in its vocabulary, CLIP's image processor, fp16 weights. Patch 8 at
    ``image_size`` 64: the tiny model's 8x8 image tokens."""
    tok = train_tokenizer(
        out,
        ["<unk>", "<s>", "</s>", "<pad>", "<image>"],
        eos="</s>",
        pad="<pad>",
        bos="<s>",
        unk="<unk>",
        add_bos=True,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=8,
            projection_dim=32,
        ),
        text_config=LlamaConfig(
            vocab_size=(len(tok) + 63) // 64 * 64,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            **_llm_dims(),
        ),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(str(out))
    return _save_llm(LlavaForConditionalGeneration(config), out, torch.float16)


#: Qwen2.5-VL's special tokens (its tokenizer's added tokens, in order).
QWEN2_5_VL_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def qwen2_5_vl_folder(
    out: Path,
    pixels: tuple[int, int] = (56 * 56, 84 * 84),
    vision: dict | None = None,
    text: dict | None = None,
) -> Path:
    """Qwen2.5-VL-Instruct (``Qwen2_5_VLForConditionalGeneration``): a
    windowed ViT with 14-pixel patches, 2x2 patch merger into the LM's width,
    a Qwen2 LM with 3-D M-RoPE (sections 2/3/3 of its 8 rotary pairs), ChatML,
    no BOS, tied embeddings, its image processor (``pixels``: min / max
    area), bf16 weights. ``vision`` / ``text`` override the encoder's and the
    LM's config values (a wider LM needs its own ``rope_parameters``)."""
    tok = train_tokenizer(
        out,
        QWEN2_5_VL_SPECIALS,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        chat_template=QWEN2_TEMPLATE,
    )
    ids = tok.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [1],
            # wider than the 0.02 of a model about to be trained: a random
            # encoder that tells cells apart, as a trained one does
            "initializer_range": 0.5,
            **(vision or {}),
        },
        text_config=dict(
            vocab_size=(len(tok) + 63) // 64 * 64,
            tie_word_embeddings=True,
            bos_token_id=None,
            eos_token_id=tok.eos_token_id,
            **{
                "rope_parameters": {
                    "rope_type": "default",
                    "rope_theta": 1e6,
                    "mrope_section": [2, 3, 3],
                },
                **_llm_dims(),
                **(text or {}),
            },
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )
    Qwen2VLImageProcessor(min_pixels=pixels[0], max_pixels=pixels[1]).save_pretrained(str(out))
    return _save_llm(Qwen2_5_VLForConditionalGeneration(config), out, torch.bfloat16)


#: The towers the seed papers use, at miniature width and depth.
TOWERS = {
    "clip_vit_l14_336": ("vit_large_patch14_clip_336", dict(depth=3, embed_dim=64, num_heads=2)),
    "clip_vit_b16": ("vit_base_patch16_clip_224", dict(depth=3, embed_dim=64, num_heads=2)),
    "eva02_clip_l14": ("eva02_large_patch14_clip_224", dict(depth=3, embed_dim=64, num_heads=2)),
    "dinov2_l14": (
        "vit_large_patch14_dinov2",
        dict(depth=3, embed_dim=64, num_heads=2, img_size=112),
    ),
    "siglip_so400m": (
        "vit_so400m_patch14_siglip_384",
        dict(depth=3, embed_dim=64, num_heads=2, mlp_ratio=2.0, img_size=112),
    ),
    "convnext_clip": ("convnext_large_mlp", dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128))),
}


def tower_checkpoint(name: str, out: Path) -> tuple[str, dict, Path]:
    """A random-weight miniature of tower ``name`` saved as safetensors; the
    timm model name, the options that make it miniature, and the file."""
    model_name, kwargs = TOWERS[name]
    model = timm.create_model(model_name, pretrained=False, **kwargs)
    file = out / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(file))
    return model_name, kwargs, file
