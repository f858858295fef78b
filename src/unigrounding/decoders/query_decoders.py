"""Query-based unit decoders for latent codecs: DETR-style boxes,
MaskFormer-style masks and keypoints (REF-VLM section 4.3, appendix C).

Each decoder turns a set of query embeddings (projected LLM hidden states,
one per instance) into one prediction per query by cross-attending to the
shared feature pyramid. There is no classification head: the LLM already said
what each query is, and how many there are (REF-VLM's point (1)). Every decoder
exposes the same small interface, so a codec routes queries by unit without
knowing which decoder it talks to:

* ``forward(queries, pyramid, images)`` → predictions ``(B, Q, ...)`` (the
  model-input images are there for decoders with their own image encoder,
  e.g. ``plugins/sam_ref_decoder.py``);
* ``targets(refs, frame, canvas_hw)`` → ground truth of the same form
  (``canvas_hw``: the batch's model-input ``(H, W)``, see
  :attr:`~unigrounding.codecs.base.ModelView.canvas_hw`);
* ``match_cost(pred, target)`` → ``(G, N, M)`` for :mod:`.matching` (callers
  run it under :func:`~.matching.float32_cost`);
* ``loss(pred, target)`` → weighted losses over matched pairs;
* ``geometry(pred, frame, canvas_hw)`` → ``RefTargets`` fields in original-image pixels.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert, generalized_box_iou_loss, sigmoid_focal_loss

from ..layers.position import sincos_2d
from ..registry import DECODERS
from .matching import PAD_BOX, box_match_cost, mask_match_cost


def mlp(dim: int, out: int, layers: int = 3) -> nn.Sequential:
    """``layers`` linear layers of width ``dim`` with ReLUs between, the last one
    mapping to ``out``: ``Sequential(Linear, ReLU, ..., Linear)``, so ``[-1]`` is
    the output layer and ``[:-1]`` the hidden stack."""
    # Not torchvision.ops.MLP: same function and init order, but it appends a
    # Dropout after every Linear (even at p=0), which moves the indices: state-dict
    # keys change (earlier stages' exports stop loading) and ``head[-1]`` (the
    # Deformable-DETR proposer's zero init) / ``head[:-1]`` (KeypointDecoder's
    # init_from_box_decoder) would pick the Dropout instead of the output Linear.
    mods: list[nn.Module] = []
    for _ in range(layers - 1):
        mods += [nn.Linear(dim, dim), nn.ReLU()]
    return nn.Sequential(*mods, nn.Linear(dim, out))


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-row Dice loss (``+1`` smoothing) of mask logits against ``{0, 1}``
    targets, both ``(N, P)``: the matched-pair form of
    :func:`~.matching.mask_match_cost`'s Dice term."""
    prob = logits.sigmoid()
    return 1 - (2 * (prob * target).sum(-1) + 1) / (prob.sum(-1) + target.sum(-1) + 1)


def box_losses(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed L1 and summed GIoU loss of matched ``(N, 4)`` normalised
    ``(cx, cy, w, h)`` boxes (DETR's box terms; callers weight and normalise)."""
    giou = generalized_box_iou_loss(
        box_convert(pred, "cxcywh", "xyxy"), box_convert(target, "cxcywh", "xyxy"), reduction="sum"
    )
    return F.l1_loss(pred, target, reduction="sum"), giou


def box_targets(refs, frame, canvas_hw: tuple[int, int]) -> torch.Tensor:
    """Boxes of ``refs`` as ``(cx, cy, w, h)`` fractions of the ``(H, W)``
    model-input canvas (the sample's input sits at its top left)."""
    boxes = frame.boxes_to_input(refs.boxes.numpy()) / _xyxy_scale(canvas_hw)
    boxes = torch.as_tensor(np.clip(boxes, 0.0, 1.0), dtype=torch.float32).reshape(-1, 4)
    return box_convert(boxes, "xyxy", "cxcywh")


def box_geometry(pred: torch.Tensor, frame, canvas_hw: tuple[int, int]) -> np.ndarray:
    """``(cx, cy, w, h)`` canvas fractions → xyxy original-image pixels."""
    xyxy = box_convert(pred.float(), "cxcywh", "xyxy").clamp(0, 1).detach().cpu().numpy()
    return frame.boxes_to_original(xyxy * _xyxy_scale(canvas_hw))


def _xyxy_scale(canvas_hw: tuple[int, int]) -> np.ndarray:
    return np.array([canvas_hw[1], canvas_hw[0]] * 2, dtype=np.float64)


def mask_grid(canvas_hw: tuple[int, int]) -> tuple[int, int]:
    """The stride-4 grid masks are predicted on: ``ceil`` of the canvas / 4."""
    return (-(-canvas_hw[0] // 4), -(-canvas_hw[1] // 4))


def mask_targets(refs, frame, canvas_hw: tuple[int, int]) -> torch.Tensor:
    """Masks of ``refs`` in the input frame on the canvas, area-pooled to
    :func:`mask_grid`, rounded: ``(N, h * w)``."""
    grid = mask_grid(canvas_hw)
    if not len(refs):
        return torch.zeros(0, grid[0] * grid[1])
    masks = torch.zeros(len(refs), 1, *canvas_hw)
    h, w = frame.input_hw
    masks[:, 0, :h, :w] = torch.stack([frame.mask_to_input(m) for m in refs.masks]).float()
    return F.adaptive_avg_pool2d(masks, grid).flatten(1).round()


def mask_geometry(pred: torch.Tensor, frame, canvas_hw: tuple[int, int]) -> torch.Tensor | None:
    """:func:`mask_grid` logits ``(N, h * w)`` → ``(N, H, W)`` bool masks of the original image."""
    logits = pred.detach().float().reshape(-1, 1, *mask_grid(canvas_hw))
    up = F.interpolate(logits, size=tuple(canvas_hw), mode="bilinear", align_corners=False)
    h, w = frame.input_hw
    masks = [frame.mask_to_original(m[0, :h, :w].cpu() > 0) for m in up]
    return torch.stack(masks) if masks else None


class QueryDecoder(nn.Module):
    """Transformer decoder over the flattened multi-level feature pyramid.

    The pyramid levels are flattened and concatenated with a fixed 2-D sin-cos
    position code and a learned level embedding (MaskFormer's multi-scale
    memory); queries self-attend and cross-attend to it for ``layers`` layers.
    """

    unit: ClassVar[str] = ""
    #: What padded target / prediction rows hold when groups are batched
    #: (:func:`~.matching.pad_groups`); any value the match cost stays finite on.
    pad_value: ClassVar[torch.Tensor | float] = 0.0

    def __init__(self, dim: int = 64, layers: int = 2, heads: int = 4, levels: int = 3) -> None:
        super().__init__()
        self.dim = dim
        self.level_embed = nn.Parameter(torch.zeros(levels, dim))
        layer = nn.TransformerDecoderLayer(
            dim, heads, dim_feedforward=4 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, layers, norm=nn.LayerNorm(dim))

    def memory(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        parts = []
        for level, fmap in enumerate(pyramid[: len(self.level_embed)]):
            b, c, h, w = fmap.shape
            pos = sincos_2d(h, w, c).to(fmap)
            parts.append(fmap.flatten(2).transpose(1, 2) + pos + self.level_embed[level])
        return torch.cat(parts, dim=1)

    def decode(self, queries: torch.Tensor, pyramid: list[torch.Tensor]) -> torch.Tensor:
        """``(B, Q, dim)`` queries → ``(B, Q, dim)`` decoded embeddings."""
        return self.decoder(queries, self.memory(pyramid))


@DECODERS.register_module()
class BoxDecoder(QueryDecoder):
    """DETR-style box decoder: normalised ``(cx, cy, w, h)`` per query, L1 + GIoU.

    ``l1_weight`` / ``giou_weight`` weigh both the matching cost and the loss
    (DETR's 5 and 2: REF-VLM names the terms, not the coefficients).
    """

    unit = "box"
    pad_value = PAD_BOX

    def __init__(self, l1_weight: float = 5.0, giou_weight: float = 2.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.l1_weight, self.giou_weight = l1_weight, giou_weight
        self.head = mlp(self.dim, 4)

    def forward(
        self, queries: torch.Tensor, pyramid: list[torch.Tensor], images=None
    ) -> torch.Tensor:
        return self.head(self.decode(queries, pyramid)).sigmoid()

    def targets(self, refs, frame, canvas_hw: tuple[int, int]) -> torch.Tensor:
        return box_targets(refs, frame, canvas_hw)

    def match_cost(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return box_match_cost(pred, target, self.l1_weight, self.giou_weight)

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        n = max(len(pred), 1)
        l1, giou = box_losses(pred, target)
        return {"box_l1": self.l1_weight * l1 / n, "box_giou": self.giou_weight * giou / n}

    def geometry(self, pred: torch.Tensor, frame, canvas_hw: tuple[int, int]) -> dict:
        return {"boxes": box_geometry(pred, frame, canvas_hw)}


class MaskUnit:
    """What a mask prediction is, for any mask decoder: ``(B, Q, g*g)`` logits
    on the stride-4 grid of the canvas (:func:`mask_grid`), trained
    with sigmoid focal + Dice (MaskFormer's 20 : 1), matched with
    :func:`~.matching.mask_match_cost`."""

    unit = "mask"
    pad_value = 0.0

    def __init__(self, focal_weight: float = 20.0, dice_weight: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.focal_weight, self.dice_weight = focal_weight, dice_weight

    def targets(self, refs, frame, canvas_hw: tuple[int, int]) -> torch.Tensor:
        return mask_targets(refs, frame, canvas_hw)

    def match_cost(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return mask_match_cost(pred, target)

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        n = max(len(pred), 1)
        focal = sigmoid_focal_loss(pred, target, reduction="none").mean(-1).sum() / n
        return {
            "mask_focal": self.focal_weight * focal,
            "mask_dice": self.dice_weight * dice_loss(pred, target).sum() / n,
        }

    def geometry(self, pred: torch.Tensor, frame, canvas_hw: tuple[int, int]) -> dict:
        return {"masks": mask_geometry(pred, frame, canvas_hw)}


class PixelDecoder(nn.Module):
    """Per-pixel embeddings for mask logits: the pyramid levels resampled to the
    finest and summed, one 3x3 conv, upsampled to the :func:`mask_grid` (2x
    for a stride-8 pyramid of a canvas that is a multiple of 8) — a small
    top-down stand-in for MaskFormer's FPN."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1), nn.GroupNorm(1, dim), nn.ReLU()
        )

    def forward(self, pyramid: list[torch.Tensor], canvas_hw: tuple[int, int]) -> torch.Tensor:
        finest = pyramid[0]
        fused = finest + sum(
            F.interpolate(p, size=finest.shape[-2:], mode="bilinear", align_corners=False)
            for p in pyramid[1:]
        )
        grid = mask_grid(canvas_hw)
        return F.interpolate(self.conv(fused), size=grid, mode="bilinear", align_corners=False)


def mask_logits(embed: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """``(B, Q, C)`` mask embeddings · ``(B, C, h, w)`` pixel embeddings → ``(B, Q, h*w)``."""
    return torch.einsum("bqc,bchw->bqhw", embed, pixels).flatten(2)


@DECODERS.register_module()
class MaskDecoder(MaskUnit, QueryDecoder):
    """MaskFormer-style mask decoder: each decoded query becomes a mask embedding
    whose dot product with per-pixel embeddings (:class:`PixelDecoder`) gives
    mask logits on the stride-4 grid."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pixel = PixelDecoder(self.dim)
        self.head = mlp(self.dim, self.dim)

    def forward(
        self, queries: torch.Tensor, pyramid: list[torch.Tensor], images: torch.Tensor
    ) -> torch.Tensor:
        """``(B, Q, h*w)`` mask logits on the :func:`mask_grid` of the images (flattened)."""
        pixels = self.pixel(pyramid, tuple(images.shape[-2:]))
        return mask_logits(self.head(self.decode(queries, pyramid)), pixels)


@DECODERS.register_module()
class KeypointDecoder(QueryDecoder):
    """``num_keypoints`` normalised ``(x, y)`` per query; L1 on the points.

    REF-VLM's stage 3 adds the keypoint decoder after the others and
    initialises it from the trained box decoder: :meth:`init_from_box_decoder`
    copies the shared transformer weights (the heads differ in shape).
    """

    unit = "keypoint"

    def __init__(self, num_keypoints: int = 4, l1_weight: float = 5.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_keypoints, self.l1_weight = num_keypoints, l1_weight
        self.head = mlp(self.dim, 2 * num_keypoints)

    def init_from_box_decoder(self, box_decoder: BoxDecoder) -> None:
        self.decoder.load_state_dict(box_decoder.decoder.state_dict())
        self.level_embed.data.copy_(box_decoder.level_embed.data)
        hidden = copy.deepcopy(box_decoder.head[:-1])
        self.head[:-1].load_state_dict(hidden.state_dict())

    def forward(
        self, queries: torch.Tensor, pyramid: list[torch.Tensor], images=None
    ) -> torch.Tensor:
        out = self.head(self.decode(queries, pyramid)).sigmoid()
        return out.reshape(*out.shape[:-1], self.num_keypoints * 2)

    def targets(self, refs, frame, canvas_hw: tuple[int, int]) -> torch.Tensor:
        scale = _xyxy_scale(canvas_hw)[:2]
        rows = [frame.points_to_input(p.numpy()) / scale for p in refs.points]
        for i, r in enumerate(rows):
            if len(r) != self.num_keypoints:
                raise ValueError(
                    f"keypoint target {i} has {len(r)} points, the decoder predicts "
                    f"{self.num_keypoints}"
                )
        flat = (
            np.stack(rows).reshape(len(rows), -1) if rows else np.zeros((0, 2 * self.num_keypoints))
        )
        return torch.as_tensor(np.clip(flat, 0, 1), dtype=torch.float32)

    def match_cost(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.l1_weight * (pred[:, :, None] - target[:, None]).abs().mean(-1)

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        n = max(len(pred), 1)
        return {"keypoint_l1": self.l1_weight * F.l1_loss(pred, target, reduction="sum") / n}

    def geometry(self, pred: torch.Tensor, frame, canvas_hw: tuple[int, int]) -> dict:
        pts = pred.float().reshape(len(pred), -1, 2).cpu().numpy() * _xyxy_scale(canvas_hw)[:2]
        points = [frame.points_to_original(p) for p in pts]
        boxes = [
            np.concatenate([p.min(0), np.maximum(p.max(0), p.min(0) + 1)]) for p in points
        ]  # the points' extent: every RefTargets row has a box
        return {"points": points, "boxes": np.array(boxes).reshape(-1, 4)}
