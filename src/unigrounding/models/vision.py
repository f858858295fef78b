"""Vision towers (any timm model; a pretrained VLM's own, :mod:`.vlm`) and the projector."""

from __future__ import annotations

import sys
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

from ..layers.position import sincos_2d
from ..structures import Frame, square_resize_frame


class FeatureTower(nn.Module):
    """What the model reads of a vision tower, whatever builds it.

    A subclass sets ``channels`` and ``strides`` (one per feature level its
    ``forward(images, input_hws=None)`` returns, ``(B, C_l, H/s_l, W/s_l)``
    maps of a ``(B, 3, H, W)`` uint8 canvas whose image ``b`` is the top-left
    ``input_hws[b]`` of it; a tower that encodes the canvas whole may ignore
    them), ``token_levels`` (the levels whose cells become the LLM's
    image tokens), ``input_size`` (the side it was built for) and the
    ``mean`` / ``std`` buffers it normalises with."""

    channels: list[int]
    strides: list[int]
    token_levels: tuple[int, ...]
    input_size: int

    def input_frame(self, ori_hw: tuple[int, int], image_size: int) -> Frame:
        """The steps from an original ``(H, W)`` image to this tower's input
        (LLaVA's padded square of side ``image_size``; a tower that reads
        each image at its own size says otherwise)."""
        return square_resize_frame(ori_hw, image_size)

    def register_normalization(self, mean, std) -> None:
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def normalized(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, 3, S, S)`` images as the tower's float input."""
        return (images.float() / 255.0 - self.mean) / self.std

    @property
    def token_channels(self) -> int:
        return sum(self.channels[i] for i in self.token_levels)

    @property
    def token_stride(self) -> int:
        return self.strides[self.token_levels[0]]

    def token_map(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """``(B, C_tokens, H, W)``: the token levels resampled to the first one's grid."""
        first = feats[self.token_levels[0]]
        maps = [first] + [
            F.interpolate(feats[i], size=first.shape[-2:], mode="nearest")
            for i in self.token_levels[1:]
        ]
        return torch.cat(maps, dim=1)


class VisionTower(FeatureTower):
    """A timm backbone returning its multi-level feature maps.

    Args:
        model_name: any timm model name (``vit_large_patch14_clip_336.openai``,
            ``eva02_large_patch14_clip_336``, ``vit_large_patch14_dinov2``,
            ``vit_so400m_patch14_siglip_384``, ``convnext_large_mlp``, ...).
        out_indices: timm feature levels to return (``features_only``); the
            default is the last three (a ViT's last three blocks, a
            hierarchical network's three coarsest stages).
        token_levels: indices (into ``out_indices``) of the maps whose cells
            become the LLM's image tokens. The first sets the token grid; deeper
            (coarser) levels are upsampled to it and concatenated channel-wise,
            so each token carries both fine position and wide context. Default:
            the last level for a plain ViT (every level has one stride: the
            last block's tokens, as LLaVA-style models read one layer), every
            level for a hierarchical tower.
        checkpoint: local weights file (safetensors / pth) for the backbone,
            read through timm's loader (so published formats timm converts,
            e.g. OpenAI CLIP, load); keys that do not match are an error.
        model_kwargs: extra ``timm.create_model`` arguments (e.g. ``img_size``).
    """

    def __init__(
        self,
        model_name: str,
        out_indices: tuple[int, ...] = (-3, -2, -1),
        token_levels: tuple[int, ...] | None = None,
        checkpoint: str | None = None,
        model_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        kwargs = dict(model_kwargs or {})
        if checkpoint is not None:
            state = _checked_tower_state(model_name, kwargs, checkpoint)
            kwargs["pretrained_cfg_overlay"] = {"state_dict": state}
        self.backbone = timm.create_model(
            model_name,
            pretrained=checkpoint is not None,
            features_only=True,
            out_indices=tuple(out_indices),
            **kwargs,
        )
        info = self.backbone.feature_info
        self.channels: list[int] = list(info.channels())
        self.strides: list[int] = list(info.reduction())
        if token_levels is None:
            plain = len(set(self.strides)) == 1
            token_levels = (len(self.strides) - 1,) if plain else tuple(range(len(self.strides)))
        self.token_levels = tuple(token_levels)
        cfg = self.backbone.pretrained_cfg
        #: the input side the tower was built for (``img_size`` if given)
        size = kwargs.get("img_size") or cfg.get("input_size", (3, 224, 224))[-1]
        self.input_size = int(size if isinstance(size, int) else size[-1])
        self.register_normalization(cfg.get("mean", (0.5,) * 3), cfg.get("std", (0.5,) * 3))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the backbone's blocks in backward. timm's feature wrappers
        for ViTs (``FeatureGetterNet``) do not pass the switch on: it is set
        on the model they wrap, whose ``forward_intermediates`` honours it."""
        backbone = self.backbone
        if not hasattr(backbone, "set_grad_checkpointing"):
            backbone = backbone.model
        backbone.set_grad_checkpointing(enable)

    def forward(
        self, images: torch.Tensor, input_hws: list[tuple[int, int]] | None = None
    ) -> list[torch.Tensor]:
        """``images``: ``(B, 3, H, W)`` uint8 → feature maps ``(B, C_l, H/s_l, W/s_l)``
        (the canvas is encoded whole)."""
        return list(self.backbone(self.normalized(images)))


def _read_state_dict(file: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors or torch file (never unpickling code)."""
    from ..engine.safe_load import read_checkpoint, read_safetensors

    if file.suffix == ".safetensors":
        return read_safetensors(file)
    state = read_checkpoint(file)
    for key in ("state_dict", "model", "module"):  # common training-checkpoint nestings
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def _checked_tower_state(model_name: str, kwargs: dict, checkpoint: str) -> dict:
    """The checkpoint's tensors, after checking them against the tower they
    are for. timm's own loader is lenient for feature extractors (keys that
    do not match are only logged), so a wrong file would silently leave a
    randomly initialised tower; here it is an error naming the keys. The
    family's checkpoint filter (format conversion, position-embedding
    resampling) runs as timm runs it; the classifier is not compared."""
    file = Path(checkpoint)
    if not file.is_file():
        raise FileNotFoundError(f"vision tower checkpoint not found: {checkpoint}")
    state = _read_state_dict(file)
    with torch.device("meta"):
        reference = timm.create_model(model_name, pretrained=False, **kwargs)
    convert = getattr(sys.modules[type(reference).__module__], "checkpoint_filter_fn", None)
    expected = reference.state_dict()
    compared = state
    if convert is not None:
        try:
            compared = convert(dict(state), reference)
        except Exception:  # noqa: BLE001  (a filter that cannot run on meta tensors)
            compared = state
    head = reference.pretrained_cfg.get("classifier") or ()
    head = (head,) if isinstance(head, str) else tuple(head)

    def kept(key: str) -> bool:
        return not any(key.startswith(h + ".") for h in head)

    missing = [k for k in expected if kept(k) and k not in compared]
    unexpected = [k for k in compared if kept(k) and k not in expected]
    wrong = [
        f"{k} {tuple(compared[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if kept(k) and k in compared and tuple(compared[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f"vision tower checkpoint {checkpoint} does not match timm model {model_name!r} "
            f"(options {kwargs}): Missing keys ({len(missing)}) {missing[:6]}; Unexpected keys "
            f"({len(unexpected)}) {unexpected[:6]}; wrong shapes ({len(wrong)}) {wrong[:4]}"
        )
    return state


class Projector(nn.Module):
    """2-layer MLP from patch features to the LLM width.

    ``merge=2`` concatenates each 2x2 block of neighbouring patches (adjacent in
    2-D, not in the flattened sequence) into one token first. ``pos_embed``
    ``"sincos"`` adds a fixed 2-D position code to the projected tokens, a strong
    positional signal that tiny models trained from scratch otherwise lack.

    ``instruction_aware=True`` conditions every token on the instruction
    (InstructBLIP's instruction-aware visual features, here without a Q-Former):
    the RMS-normalised mean embedding of the instruction's words is projected and
    added to the MLP's hidden layer, so the nonlinearity can compare each patch
    with what is asked about. A tiny LLM trained from scratch does not learn
    that comparison through its own attention within a CPU budget (see
    ``configs/_base_/models/tiny_mllm.py`` for the figures).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        merge: int = 1,
        pos_embed: str | None = "sincos",
        instruction_aware: bool = False,
    ) -> None:
        super().__init__()
        if pos_embed not in (None, "sincos"):
            raise ValueError(f"pos_embed must be None or 'sincos', got {pos_embed!r}")
        self.merge, self.pos_embed = merge, pos_embed
        self.mlp = nn.Sequential(
            nn.Linear(in_dim * merge * merge, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim)
        )
        self.instruction = nn.Linear(out_dim, out_dim, bias=False) if instruction_aware else None

    def forward(self, fmap: torch.Tensor, instruction: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, H/m * W/m, D)`` tokens in raster order;
        ``instruction`` ``(B, D)`` is required if the projector is instruction-aware."""
        b, c, h, w = fmap.shape
        m = self.merge
        if h % m or w % m:
            raise ValueError(f"feature map {h}x{w} is not divisible by merge={m}")
        x = (
            fmap.reshape(b, c, h // m, m, w // m, m)
            .permute(0, 2, 4, 3, 5, 1)
            .reshape(b, (h // m) * (w // m), m * m * c)
        )
        x = self._mlp(x, instruction)
        if self.pos_embed == "sincos":
            x = x + sincos_2d(h // m, w // m, x.shape[-1]).to(x)
        return x

    def project(
        self, features: torch.Tensor, instruction: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(N, C)`` feature vectors (e.g. pooled over a region) → ``(N, D)``
        through the same MLP as the image tokens, without the grid position
        code. With ``merge > 1`` a vector stands for every patch of its merged
        block (it is repeated ``merge**2`` times)."""
        return self._mlp(features.repeat(1, self.merge * self.merge), instruction)

    def _mlp(self, x: torch.Tensor, instruction: torch.Tensor | None) -> torch.Tensor:
        """The MLP on ``(..., in_dim)``; the instruction ``(B, D)`` (one per
        leading row of ``x``) joins its hidden layer."""
        hidden = self.mlp[0](x)
        if self.instruction is not None:
            if instruction is None:
                raise ValueError("an instruction-aware projector needs the instruction embedding")
            cue = self.instruction(F.rms_norm(instruction, instruction.shape[-1:]))
            hidden = hidden + cue.reshape(len(cue), *[1] * (x.dim() - 2), -1)
        return self.mlp[2](self.mlp[1](hidden))
