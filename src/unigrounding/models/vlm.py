"""A pretrained transformers VLM as the shared model's backbone.

``GroundingMLLM(vlm=dict(pretrained=DIR))`` loads a LLaVA-style folder
(``LlavaForConditionalGeneration``: a CLIP / SigLIP vision encoder, a
projector, a causal LM) and takes it apart into the three parts the assembled
backbone has: a :class:`~.vision.FeatureTower` over the encoder, the VLM's own
projector, and a causal LM made of its language model and LM head. The model
and every codec then run on it unchanged: the image tokens are the encoder's
``vision_feature_layer`` through the VLM's projector (as the VLM computes
them), the feature pyramid and proposers read the encoder's last layers up to
that one, and answers come from the VLM's LM. The parts are the loaded modules
themselves: nothing is copied.

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

from .llm import resolve_dtype, select_attn_implementation
from .vision import FeatureTower

#: VLM ``model_type`` → its projector class (module, name): the one part with
#: no Auto class to build it from a config.
PROJECTORS = {"llava": ("transformers.models.llava.modeling_llava", "LlavaMultiModalProjector")}

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

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
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
    without it (an export's LM comes from its own folder); ``spec`` is what an export writes
    to rebuild the tower and projector; ``folder`` holds the tokenizer."""

    vision: TransformersVisionTower
    projector: TransformersProjector
    llm: PreTrainedModel | None
    spec: dict
    folder: str | None


def load_vlm(spec: dict, attn_implementation: str = "auto", with_llm: bool = True) -> VLMParts:
    """The parts of the VLM ``spec`` names.

    ``spec`` keys: ``pretrained`` (a local folder: weights, config and image
    processor) or, unused when ``pretrained`` is set, ``config`` (a VLM
    config as a dict, e.g. an export's or a recipe's published architecture,
    with ``image_mean`` / ``image_std``): the parts built with fresh weights,
    for an export's to be loaded into or for ``plan`` to count — the LM only
    ``with_llm`` (an export brings its own); ``dtype`` (``"float32"`` by
    default, as :func:`~.llm.build_llm`); ``attn_implementation``; other keys
    go to ``from_pretrained``."""
    spec = dict(spec)
    pretrained, config = spec.pop("pretrained", None), spec.pop("config", None)
    mean, std = spec.pop("image_mean", None), spec.pop("image_std", None)
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
        stats = AutoImageProcessor.from_pretrained(pretrained, local_files_only=True)
        mean, std = tuple(stats.image_mean), tuple(stats.image_std)
        encoder, projector = vlm.model.vision_tower, vlm.model.multi_modal_projector
        llm = _causal_lm(vlm, attn)
    else:
        config = dict(config)
        vlm_config = AutoConfig.for_model(config.pop("model_type"), **config)
        _check_supported(vlm_config, "the export's config")
        if mean is None or std is None:
            raise ValueError("vlm=dict(config=...) needs image_mean and image_std")
        encoder = AutoModel.from_config(vlm_config.vision_config, attn_implementation=attn)
        module, name = PROJECTORS[vlm_config.model_type]
        projector = getattr(importlib.import_module(module), name)(vlm_config)
        built = torch.float32 if dtype == "auto" else dtype
        encoder, projector = encoder.to(built), projector.to(built)
        llm = None
        if with_llm:
            llm = AutoModelForCausalLM.from_config(
                vlm_config.text_config, attn_implementation=attn, dtype=built
            )
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
    return VLMParts(vision, TransformersProjector(projector), llm, export_spec, pretrained)


def _check_supported(config, where: str) -> None:
    if config.model_type not in PROJECTORS:
        raise ValueError(
            f"{where}: VLM model_type {config.model_type!r} is not supported as a backbone "
            f"(supported: {sorted(PROJECTORS)})"
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
