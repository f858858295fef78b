"""A pretrained transformers VLM as the shared model's backbone.

``GroundingMLLM(vlm=dict(pretrained=DIR))`` loads a VLM folder and takes it
apart into the three parts the assembled backbone has: a
:class:`~.vision.FeatureTower`, a projector and a language model. The model
and every codec then run on it unchanged. The parts are the loaded modules
themselves: nothing is copied.

* LLaVA-style (``LlavaForConditionalGeneration``: a CLIP / SigLIP encoder, a
  projector, a causal LM): the image tokens are the encoder's
  ``vision_feature_layer`` through the VLM's projector (as the VLM computes
  them), the feature pyramid and proposers read the encoder's last layers up
  to that one, the LM is a causal LM made of its language model and head.
* Qwen2.5-VL (``Qwen2_5_VLForConditionalGeneration``): each image is encoded
  at its own size (the ``qwen2_5_vl`` input frame) by the VLM's encoder and
  merger (:class:`MergedPatchTower`), whose merged tokens are the image
  tokens and the one feature level; the projector is the identity (the
  merger is the VLM's projector); the LM is the VLM without its encoder, given
  what it needs for its 3-D M-RoPE positions (:class:`MRoPEPositions`).

An export writes the LM in ``save_pretrained`` form and the encoder and
projector with the other weights; its config keeps the VLM's config (JSON) and
image statistics, from which ``vlm=dict(config=...)`` rebuilds the encoder and
projector with no other folder present.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    PreTrainedModel,
)

from ..structures import Frame, smart_resize_frame
from .llm import resolve_dtype, select_attn_implementation
from .vision import FeatureTower, VisionTower

#: VLM ``model_type`` → its projector class (module, name): the one part with
#: no Auto class to build it from a config.
PROJECTORS = {"llava": ("transformers.models.llava.modeling_llava", "LlavaMultiModalProjector")}

#: VLMs whose encoder reads each image at its own size, merging patches.
MERGED_PATCH_VLMS = ("qwen2_5_vl",)

#: Text a VLM writes its image tokens between (none: LLaVA's bare ``<image>``s).
IMAGE_MARKUP = {"qwen2_5_vl": ("<|vision_start|>", "<|vision_end|>")}

#: Every supported VLM ``model_type``.
SUPPORTED_VLMS = (*PROJECTORS, *MERGED_PATCH_VLMS)

#: Feature levels the tower returns: the encoder's last layers up to its
#: ``vision_feature_layer`` (as the assembled backbone's plain ViT returns
#: its last three blocks).
LEVELS = 3


class TransformersVisionTower(FeatureTower):
    """A transformers vision encoder (CLIP, SigLIP) as a feature tower.

    Its levels are the hidden states of the encoder's layers up to
    ``feature_layer`` (at most :data:`LEVELS`), each a ``(B, C, S/p, S/p)``
    map of patches; the last is the image-token level. ``select_strategy``
    ``"default"`` drops the class token first (LLaVA's rule for CLIP),
    ``"full"`` keeps every token (an encoder without one, e.g. SigLIP)."""

    def __init__(
        self,
        encoder: PreTrainedModel,
        feature_layer: int,
        select_strategy: str,
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> None:
        super().__init__()
        if select_strategy not in ("default", "full"):
            raise ValueError(f"unknown vision_feature_select_strategy {select_strategy!r}")
        if not isinstance(feature_layer, int):
            raise ValueError(f"vision_feature_layer {feature_layer!r}: only one layer is supported")
        config = encoder.config
        self.encoder = encoder
        self.patch_size = int(config.patch_size)
        self.input_size = int(config.image_size)
        last = feature_layer % (config.num_hidden_layers + 1)  # 0: the embeddings
        self.layers = tuple(range(max(1, last - LEVELS + 1), last + 1))
        self.channels = [int(config.hidden_size)] * len(self.layers)
        self.strides = [self.patch_size] * len(self.layers)
        self.token_levels = (len(self.layers) - 1,)
        self.drop_class_token = select_strategy == "default"
        self.register_normalization(tuple(mean), tuple(std))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if enable:
            self.encoder.gradient_checkpointing_enable({"use_reentrant": False})
        else:
            self.encoder.gradient_checkpointing_disable()

    def forward(
        self, images: torch.Tensor, input_hws: list[tuple[int, int]] | None = None
    ) -> list[torch.Tensor]:
        dtype = next(self.encoder.parameters()).dtype
        out = self.encoder(
            pixel_values=self.normalized(images).to(dtype), output_hidden_states=True
        )
        b, grid = images.shape[0], images.shape[-1] // self.patch_size
        maps = []
        for layer in self.layers:
            tokens = out.hidden_states[layer]
            if self.drop_class_token:
                tokens = tokens[:, 1:]
            if tokens.shape[1] != grid * grid:
                raise ValueError(
                    f"the vision encoder gave {tokens.shape[1]} patch tokens for a "
                    f"{images.shape[-1]} px input ({grid}x{grid} expected): check "
                    "vision_feature_select_strategy and the input size"
                )
            maps.append(tokens.float().transpose(1, 2).reshape(b, -1, grid, grid))
        return maps


class MergedPatchTower(FeatureTower):
    """Qwen2.5-VL's vision encoder and patch merger as a one-level feature tower.

    Each image is encoded at its own size (``input_hws``; multiples of
    ``patch_size * merge``, as the ``qwen2_5_vl`` frame gives), as the VLM
    encodes it: patches from the VLM's image processor with resizing off,
    window attention within the image alone. Its merged tokens — one per
    ``stride`` = ``patch_size * merge`` pixel cell, already in the LLM's width
    — are laid out on the canvas's grid, zero over another image's padding.
    The merger is the VLM's projector, so the model's projector is
    :class:`IdentityProjector`. ``input_size`` is the square side ``plan``
    counts image tokens at (448: 256 tokens)."""

    def __init__(self, visual: PreTrainedModel, processor, input_size: int = 448) -> None:
        super().__init__()
        config = visual.config
        self.visual, self.processor = visual, processor
        self.stride = int(config.patch_size) * int(config.spatial_merge_size)
        self.channels, self.strides = [int(config.out_hidden_size)], [self.stride]
        self.token_levels, self.input_size = (0,), input_size
        self.register_normalization(tuple(processor.image_mean), tuple(processor.image_std))

    def input_frame(self, ori_hw: tuple[int, int], image_size: int) -> Frame:
        """Qwen2.5-VL's: resized to multiples of ``stride`` within the image
        processor's pixel range (``image_size`` does not apply)."""
        size = self.processor.size
        return smart_resize_frame(
            ori_hw, self.stride, (size["shortest_edge"], size["longest_edge"])
        )

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if enable:
            self.visual.gradient_checkpointing_enable({"use_reentrant": False})
        else:
            self.visual.gradient_checkpointing_disable()

    def forward(
        self, images: torch.Tensor, input_hws: list[tuple[int, int]] | None = None
    ) -> list[torch.Tensor]:
        """``(B, 3, H, W)`` uint8 canvas → ``[(B, D, H / stride, W / stride)]``."""
        hws = input_hws or [tuple(images.shape[-2:])] * len(images)
        for h, w in hws:
            if h % self.stride or w % self.stride:
                raise ValueError(
                    f"a {h}x{w} input is not a multiple of {self.stride} pixels: "
                    "give this backbone the qwen2_5_vl input frame"
                )
        crops = [images[b, :, :h, :w].cpu() for b, (h, w) in enumerate(hws)]
        packed = self.processor(images=crops, do_resize=False, return_tensors="pt")
        dtype = next(self.visual.parameters()).dtype
        merged = self.visual(
            packed["pixel_values"].to(images.device, dtype),
            grid_thw=packed["image_grid_thw"].to(images.device),
        ).pooler_output.float()
        b, (height, width) = len(images), images.shape[-2:]
        canvas = merged.new_zeros(b, merged.shape[-1], height // self.stride, width // self.stride)
        counts = [(h // self.stride) * (w // self.stride) for h, w in hws]
        for row, ((h, w), tokens) in enumerate(zip(hws, merged.split(counts), strict=True)):
            rows, cols = h // self.stride, w // self.stride
            canvas[row, :, :rows, :cols] = tokens.T.reshape(-1, rows, cols)
        return [canvas]


class IdentityProjector(nn.Module):
    """The projector of a tower whose tokens are already the LLM's (a merger's)."""

    merge = 1
    instruction = None

    def forward(self, fmap: torch.Tensor, instruction: torch.Tensor | None = None) -> torch.Tensor:
        return fmap.flatten(2).transpose(1, 2)

    def project(
        self, features: torch.Tensor, instruction: torch.Tensor | None = None
    ) -> torch.Tensor:
        return features


class SequencePositions:
    """How a causal LM is told token positions: from the attention mask
    (transformers' default), nothing to add to its inputs."""

    def lm_inputs(
        self, input_ids: torch.Tensor, is_image: torch.Tensor, grids: list[tuple[int, int]]
    ) -> dict:
        """Keyword inputs for the LM's forward and ``generate`` beside the embeddings."""
        return {}

    def padded_inputs(
        self,
        input_ids: torch.Tensor,
        is_image: torch.Tensor,
        grids: list[tuple[int, int]],
        mask: torch.Tensor,
    ) -> dict:
        """Keyword inputs for one forward over left-padded rows (a prompt and
        a sampled answer): positions counted from each row's first token, as
        ``generate`` counts them (a forward alone would count the padding)."""
        return {"position_ids": (mask.long().cumsum(-1) - 1).clamp(min=0)}

    def step_positions(self, llm: PreTrainedModel, mask: torch.Tensor) -> torch.Tensor:
        """Position of the one new token of a cached step after ``mask`` ``(B, T)``."""
        return mask.sum(-1, keepdim=True) - 1


class MRoPEPositions(SequencePositions):
    """Qwen2.5-VL's 3-D M-RoPE positions: the VLM computes them itself
    (``get_rope_index``) when given the token ids, which tokens are image
    tokens and each image's patch grid beside the embeddings; a cached step
    adds the per-row offset it kept (``rope_deltas``) to the text position."""

    def __init__(self, merge: int) -> None:
        self.merge = merge

    def lm_inputs(
        self, input_ids: torch.Tensor, is_image: torch.Tensor, grids: list[tuple[int, int]]
    ) -> dict:
        # a row without image tokens (a codec that shows the image as codes)
        # has no grid: the VLM takes one grid per image span, in row order
        spans = [g for row, g in enumerate(grids) if is_image[row].any()]
        if not spans:
            return {}
        m = self.merge
        thw = torch.tensor([[1, r * m, c * m] for r, c in spans], device=input_ids.device)
        return {
            "input_ids": input_ids,
            "mm_token_type_ids": is_image.int(),
            "image_grid_thw": thw,
        }

    def padded_inputs(
        self,
        input_ids: torch.Tensor,
        is_image: torch.Tensor,
        grids: list[tuple[int, int]],
        mask: torch.Tensor,
    ) -> dict:
        # the VLM counts its positions from the attention mask itself
        return self.lm_inputs(input_ids, is_image, grids)

    def step_positions(self, llm: PreTrainedModel, mask: torch.Tensor) -> torch.Tensor:
        base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm  # peft
        deltas = base.model.rope_deltas
        text = mask.sum(-1, keepdim=True) - 1
        return (text + (0 if deltas is None else deltas.to(text)))[None].expand(3, -1, -1)


class TransformersProjector(nn.Module):
    """A VLM's projector with :class:`~.vision.Projector`'s interface (no
    token merge, no position code, not instruction-aware: the VLM's own)."""

    merge = 1
    instruction = None

    def __init__(self, projector: nn.Module) -> None:
        super().__init__()
        self.projector = projector

    def forward(self, fmap: torch.Tensor, instruction: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, H * W, D)`` tokens in raster order."""
        return self.project(fmap.flatten(2).transpose(1, 2))

    def project(
        self, features: torch.Tensor, instruction: torch.Tensor | None = None
    ) -> torch.Tensor:
        dtype = next(self.projector.parameters()).dtype
        return self.projector(features.to(dtype)).float()


@dataclass
class VLMParts:
    """A VLM taken apart. ``llm`` is ``None`` when rebuilt from a config
    without it (an export's LM comes from its own folder); ``spec`` is what
    an export writes to rebuild the tower and projector (``None`` for a
    merged-patch VLM, whose export writes the whole VLM folder); ``folder`` holds
    the tokenizer; ``positions`` tells the LM where its tokens are;
    ``image_markup`` is the text around an image's tokens."""

    vision: FeatureTower
    projector: nn.Module
    llm: PreTrainedModel | None
    spec: dict | None
    folder: str | None
    positions: SequencePositions
    image_markup: tuple[str, str] = ("", "")


def load_vlm(spec: dict, attn_implementation: str = "auto", with_llm: bool = True) -> VLMParts:
    """The parts of the VLM ``spec`` names.

    ``spec`` keys: ``pretrained`` (a local folder: weights, config and image
    processor) or, unused when ``pretrained`` is set, ``config`` (a VLM
    config as a dict, e.g. an export's or a recipe's published architecture,
    with ``image_mean`` / ``image_std``, and for Qwen2.5-VL its
    ``image_processor`` settings): the parts built with fresh weights, for an
    export's to be loaded into or for ``plan`` to count — the LM only
    ``with_llm`` (an export brings its own); ``dtype`` (``"float32"`` by
    default, as :func:`~.llm.build_llm`); ``attn_implementation``; other keys
    go to ``from_pretrained``."""
    spec = dict(spec)
    pretrained, config = spec.pop("pretrained", None), spec.pop("config", None)
    mean, std = spec.pop("image_mean", None), spec.pop("image_std", None)
    processor_settings = spec.pop("image_processor", None)
    dtype = resolve_dtype(spec.pop("dtype", spec.pop("torch_dtype", "float32")))
    attn = select_attn_implementation(spec.pop("attn_implementation", attn_implementation))
    if pretrained is None and config is None:
        raise ValueError("vlm needs `pretrained` (a local folder) or `config`")
    if pretrained is not None:
        if not Path(pretrained).is_dir():
            raise FileNotFoundError(f"VLM directory not found: {pretrained}")
        vlm_config = AutoConfig.from_pretrained(pretrained, local_files_only=True)
        _check_supported(vlm_config, pretrained)
        vlm = AutoModelForImageTextToText.from_pretrained(
            pretrained, local_files_only=True, dtype=dtype, attn_implementation=attn, **spec
        )
        processor = AutoImageProcessor.from_pretrained(pretrained, local_files_only=True)
        if vlm_config.model_type in MERGED_PATCH_VLMS:
            encoder, projector = vlm.model.visual, None
            vlm.model.visual = None  # the tower's now; the LM never encodes pixels
            llm = vlm
        else:
            encoder, projector = vlm.model.vision_tower, vlm.model.multi_modal_projector
            llm = _causal_lm(vlm, attn) if with_llm else None
        if not with_llm:
            llm = None  # a vision-only stage: the LM's weights are let go
    else:
        config = dict(config)
        vlm_config = AutoConfig.for_model(config.pop("model_type"), **config)
        _check_supported(vlm_config, "the export's config")
        built = torch.float32 if dtype == "auto" else dtype
        encoder = AutoModel.from_config(vlm_config.vision_config, attn_implementation=attn)
        encoder, projector, processor, llm = encoder.to(built), None, None, None
        if vlm_config.model_type in MERGED_PATCH_VLMS:
            if processor_settings is None:
                raise ValueError(
                    f"vlm=dict(config=...) of a {vlm_config.model_type} needs image_processor"
                )
            processor = _image_processor(processor_settings)
        else:
            if mean is None or std is None:
                raise ValueError("vlm=dict(config=...) needs image_mean and image_std")
            module, name = PROJECTORS[vlm_config.model_type]
            projector = getattr(importlib.import_module(module), name)(vlm_config).to(built)
        if with_llm:
            llm = _fresh_lm(vlm_config, attn, built)
    if vlm_config.model_type in MERGED_PATCH_VLMS:
        merge = int(vlm_config.vision_config.spatial_merge_size)
        return VLMParts(
            MergedPatchTower(encoder, processor),
            IdentityProjector(),
            llm,
            None,
            pretrained,
            MRoPEPositions(merge),
            IMAGE_MARKUP[vlm_config.model_type],
        )
    if pretrained is not None:
        mean, std = tuple(processor.image_mean), tuple(processor.image_std)
    vision = TransformersVisionTower(
        encoder,
        vlm_config.vision_feature_layer,
        vlm_config.vision_feature_select_strategy,
        mean,
        std,
    )
    export_spec = {
        "config": json.loads(vlm_config.to_json_string(use_diff=False)),
        "image_mean": list(mean),
        "image_std": list(std),
    }
    projector = TransformersProjector(projector)
    return VLMParts(vision, projector, llm, export_spec, pretrained, SequencePositions())


#: The model-config keys of the assembled backbone, which a ``vlm`` replaces.
ASSEMBLED_BACKBONE_KEYS = ("vision", "projector", "llm")


def with_backbone(cfg: dict, backbone: dict) -> dict:
    """A model config with its assembled backbone (:data:`ASSEMBLED_BACKBONE_KEYS`)
    replaced by ``backbone``'s keys (e.g. ``dict(vlm=...)``)."""
    kept = {k: v for k, v in cfg.items() if k not in ASSEMBLED_BACKBONE_KEYS}
    return {**kept, **backbone}


def build_tower(vision: dict | None = None, vlm: dict | None = None) -> FeatureTower:
    """The feature tower of a vision-only stage (the cell, proposer and
    quantizer pretraining): the assembled backbone's (``vision``:
    :class:`~.vision.VisionTower` arguments) or a VLM's encoder with its
    projector (``vlm``: a :func:`load_vlm` spec; the LM is not kept). Its
    weights are named as in the grounding model on the same backbone, so the
    stage's export initialises that model."""
    if (vision is None) == (vlm is None):
        raise ValueError("give `vision` (an assembled tower) or `vlm` (a VLM's encoder)")
    if vlm is None:
        return VisionTower(**vision)
    return load_vlm(vlm, with_llm=False).vision


def _check_supported(config, where: str) -> None:
    if config.model_type not in SUPPORTED_VLMS:
        raise ValueError(
            f"{where}: VLM model_type {config.model_type!r} is not supported as a backbone "
            f"(supported: {sorted(SUPPORTED_VLMS)})"
        )


def _image_processor(settings: dict):
    """An image processor from its ``to_dict`` settings: the transformers
    class they name, built from the values (no code is loaded)."""
    import transformers

    settings = dict(settings)
    name = settings.pop("image_processor_type", None)
    cls = getattr(transformers, name, None) if isinstance(name, str) else None
    if cls is None or not hasattr(cls, "from_dict"):
        raise ValueError(f"image_processor names no transformers image processor: {name!r}")
    return cls.from_dict(settings)


def _fresh_lm(vlm_config, attn: str, dtype: torch.dtype) -> PreTrainedModel:
    """The VLM's language side with fresh weights (planning, from scratch)."""
    if vlm_config.model_type in MERGED_PATCH_VLMS:
        llm = AutoModelForImageTextToText.from_config(
            vlm_config, attn_implementation=attn, dtype=dtype
        )
        llm.model.visual = None
        return llm
    return AutoModelForCausalLM.from_config(
        vlm_config.text_config, attn_implementation=attn, dtype=dtype
    )


def _causal_lm(vlm: PreTrainedModel, attn: str) -> PreTrainedModel:
    """A causal LM whose base model and LM head are the VLM's own modules
    (built empty on the meta device, then given them: no weight is copied)."""
    with torch.device("meta"):
        llm = AutoModelForCausalLM.from_config(vlm.config.text_config, attn_implementation=attn)
    setattr(llm, llm.base_model_prefix, vlm.model.language_model)
    llm.lm_head = vlm.lm_head
    left = [n for n, t in [*llm.named_parameters(), *llm.named_buffers()] if t.is_meta]
    if left:
        raise ValueError(f"{type(llm).__name__} has parts the VLM did not supply: {left[:4]}")
    return llm
