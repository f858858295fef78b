"""Groma's class-agnostic region proposer (Groma [docs/papers.md], section 3.1).

A Deformable-DETR head (Zhu et al.) built from transformers' encoder and
decoder layers, with the classification head replaced by one binary logit
that scores each box by its *localization quality* (Groma: "a binary
classifier to score region proposals based on their localization quality").
It reads a ViTDet-style pyramid built from the last 4 levels of the vision
tower and keeps Groma's two convergence aids from DINO:

* mixed query selection — the encoder scores every pyramid position as an
  anchor box; the ``num_queries`` best become the decoder's reference boxes
  (detached), while the content queries are learned embeddings;
* look forward twice — layer ``i``'s box is refined from layer ``i - 1``'s box
  *without* detaching it, so layer ``i``'s loss also trains layer ``i - 1``'s
  box head; the reference fed to the next layer is detached.

Choices the paper leaves open (documented and tested):

* The quality target of a matched query is the IoU of its box with its ground
  truth (detached); unmatched queries target 0. The loss is the quality focal
  loss (Li et al., GFL): BCE against the soft target, modulated by
  ``|target - p| ** 2``.
* Matching and loss weights are Deformable DETR's: objectness 2, L1 5, GIoU 2;
  the matching's objectness cost is its focal cost (alpha 0.25, gamma 2).
* Every decoder layer and the encoder's anchor proposals are supervised
  (Deformable DETR's auxiliary and two-stage losses).
* Inference keeps boxes with quality ``>= score_threshold`` (0.15), removes
  duplicates by NMS at IoU ``nms_threshold`` (0.6) and keeps the best
  ``max_proposals`` (100): Groma's published values. (Its public code defaults
  NMS to 0.0 at evaluation while training at 0.6 — an evaluation gap users
  reported; here one setting serves both.)
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData
from torch import nn
from torchvision.ops import (
    box_convert,
    nms,
)
from transformers.models.deformable_detr.configuration_deformable_detr import (
    DeformableDetrConfig,
)
from transformers.models.deformable_detr.modeling_deformable_detr import (
    DeformableDetrDecoderLayer,
    DeformableDetrEncoder,
)

from ..decoders.matching import (
    PAD_BOX,
    box_match_cost,
    float32_cost,
    grouped_hungarian,
    pad_groups,
)
from ..decoders.query_decoders import box_losses, mlp
from ..layers import FeaturePyramid, sincos_2d
from ..registry import PROPOSERS
from ..structures import paired_box_iou


def _box_code(boxes: torch.Tensor, dim: int) -> torch.Tensor:
    """Sine code of normalised ``(cx, cy, w, h)`` boxes, ``(..., dim)`` (DAB-DETR)."""
    quarter = dim // 4
    freqs = 1.0 / (10000 ** (torch.arange(quarter, device=boxes.device) / quarter))
    angles = boxes[..., :, None] * 2 * math.pi * freqs  # (..., 4, quarter)
    return torch.cat([angles[..., ::2].sin(), angles[..., 1::2].cos()], -1).flatten(-2)


def quality_focal_loss(logits: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Summed GFL quality focal loss: BCE to the soft ``quality`` target,
    weighted by ``|quality - sigmoid(logits)| ** 2``."""
    weight = (quality - logits.sigmoid()).abs().pow(2)
    return (F.binary_cross_entropy_with_logits(logits, quality, reduction="none") * weight).sum()


@PROPOSERS.register_module()
class DeformableDetrProposer(nn.Module):
    """Class-agnostic Deformable-DETR region proposer.

    Args:
        in_channels / in_strides: the vision tower's levels (the model passes
            them); the last 4 build the pyramid.
        dim: transformer width. strides: pyramid strides (4 levels, ViTDet).
        num_queries: proposals per image before filtering (Groma: 300; capped
            by the number of pyramid positions).
        encoder_layers / decoder_layers / heads / points: Deformable DETR sizes
            (Groma: 6 / 6; the tiny preset uses fewer).
        score_threshold / nms_threshold / max_proposals: inference filtering.
        loss_weights: ``objectness`` / ``l1`` / ``giou``.
    """

    def __init__(
        self,
        in_channels: list[int],
        in_strides: list[int],
        dim: int = 256,
        strides: tuple[int, ...] = (8, 16, 32, 64),
        num_queries: int = 300,
        encoder_layers: int = 6,
        decoder_layers: int = 6,
        heads: int = 8,
        points: int = 4,
        ffn_dim: int = 1024,
        score_threshold: float = 0.15,
        nms_threshold: float = 0.6,
        max_proposals: int = 100,
        loss_weights: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.strides = tuple(strides)
        self.num_queries = num_queries
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold
        self.max_proposals = max_proposals
        self.loss_weights = {"objectness": 2.0, "l1": 5.0, "giou": 2.0, **(loss_weights or {})}
        self.pyramid = FeaturePyramid(list(in_channels)[-4:], list(in_strides)[-4:], strides, dim)
        config = DeformableDetrConfig(
            d_model=dim,
            encoder_layers=encoder_layers,
            decoder_layers=decoder_layers,
            encoder_attention_heads=heads,
            decoder_attention_heads=heads,
            encoder_n_points=points,
            decoder_n_points=points,
            encoder_ffn_dim=ffn_dim,
            decoder_ffn_dim=ffn_dim,
            num_feature_levels=len(strides),
            dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
        )
        self.level_embed = nn.Parameter(torch.zeros(len(strides), dim))
        self.encoder = DeformableDetrEncoder(config)
        self.anchor_proj = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.anchor_score = nn.Linear(dim, 1)
        self.anchor_box = mlp(dim, 4)
        self.content = nn.Embedding(num_queries, dim)
        self.query_pos = mlp(dim, dim, 2)
        self.layers = nn.ModuleList(
            DeformableDetrDecoderLayer(config) for _ in range(decoder_layers)
        )
        self.box_heads = nn.ModuleList(mlp(dim, 4) for _ in range(decoder_layers))
        self.score_heads = nn.ModuleList(nn.Linear(dim, 1) for _ in range(decoder_layers))
        prior = -math.log((1 - 0.01) / 0.01)  # focal-loss prior: start at p = 0.01
        for head in [self.anchor_score, *self.score_heads]:
            nn.init.constant_(head.bias, prior)
        for head in [self.anchor_box, *self.box_heads]:
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)

    # ------------------------------------------------------------------ forward
    def forward(
        self, feats: list[torch.Tensor], canvas_hw: tuple[int, int]
    ) -> list[dict[str, torch.Tensor]]:
        """Raw outputs, first the encoder's anchors then each decoder layer:
        ``{"boxes": (B, Q, 4) cxcywh fractions of the canvas, "logits": (B, Q)}``."""
        levels = self.pyramid(feats, canvas_hw)
        shapes = [tuple(x.shape[-2:]) for x in levels]
        memory = torch.cat([x.flatten(2).transpose(1, 2) for x in levels], 1)
        pos = torch.cat(
            [
                sincos_2d(h, w, memory.shape[-1]).to(memory) + self.level_embed[i]
                for i, (h, w) in enumerate(shapes)
            ]
        )
        b, n, _ = memory.shape
        spatial = torch.tensor(shapes, dtype=torch.long, device=memory.device)
        starts = torch.cat([spatial.new_zeros(1), (spatial[:, 0] * spatial[:, 1]).cumsum(0)[:-1]])
        ratios = memory.new_ones(b, len(shapes), 2)
        memory = self.encoder(
            inputs_embeds=memory,
            attention_mask=torch.ones(b, n, dtype=torch.bool, device=memory.device),
            spatial_position_embeddings=pos.expand(b, -1, -1),
            spatial_shapes=spatial,
            spatial_shapes_list=shapes,
            level_start_index=starts,
            valid_ratios=ratios,
        ).last_hidden_state

        anchors = self._anchors(shapes, memory)
        hidden = self.anchor_proj(memory)
        anchor_logits = self.anchor_score(hidden).squeeze(-1)
        anchor_boxes = (self.anchor_box(hidden) + torch.logit(anchors, eps=1e-4)).sigmoid()
        outputs = [{"boxes": anchor_boxes, "logits": anchor_logits}]

        k = min(self.num_queries, n)
        top = anchor_logits.topk(k, dim=1).indices
        previous = anchor_boxes.gather(1, top[..., None].expand(-1, -1, 4)).detach()
        queries = self.content.weight[:k].expand(b, -1, -1)
        for layer, box_head, score_head in zip(
            self.layers, self.box_heads, self.score_heads, strict=True
        ):
            reference = previous.detach()
            queries = layer(
                queries,
                self.query_pos(_box_code(reference, queries.shape[-1])),
                reference[:, :, None].expand(-1, -1, len(shapes), -1),
                spatial,
                shapes,
                starts,
                memory,
                None,
            )
            # look forward twice: refine from the undetached previous box
            boxes = (box_head(queries) + torch.logit(previous, eps=1e-4)).sigmoid()
            outputs.append({"boxes": boxes, "logits": score_head(queries).squeeze(-1)})
            previous = boxes
        return outputs

    def _anchors(self, shapes: list[tuple[int, int]], like: torch.Tensor) -> torch.Tensor:
        """``(1, N, 4)`` anchor boxes: every position's centre, a side of
        ``0.05 * 2 ** level`` of the image (Deformable DETR's two-stage anchors)."""
        out = []
        for level, (h, w) in enumerate(shapes):
            ys, xs = torch.meshgrid(
                (torch.arange(h, device=like.device) + 0.5) / h,
                (torch.arange(w, device=like.device) + 0.5) / w,
                indexing="ij",
            )
            side = torch.full_like(xs, 0.05 * 2**level)
            out.append(torch.stack([xs, ys, side, side], -1).reshape(-1, 4))
        return torch.cat(out)[None].to(like.dtype)

    # ------------------------------------------------------------------ training
    def loss(
        self, feats: list[torch.Tensor], canvas_hw: tuple[int, int], targets: list[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Set losses of every output stage; ``targets`` are per image ``(M, 4)``
        normalised cxcywh boxes (an image may have none)."""
        losses: dict[str, torch.Tensor] = {}
        num = max(sum(len(t) for t in targets), 1)
        for stage, out in enumerate(self(feats, canvas_hw)):
            name = "anchors" if stage == 0 else f"layer{stage - 1}"
            for key, value in self._stage_loss(out, targets, num).items():
                losses[f"loss_{name}_{key}"] = value
        return losses

    def _stage_loss(
        self, out: dict[str, torch.Tensor], targets: list[torch.Tensor], num: int
    ) -> dict[str, torch.Tensor]:
        boxes, logits = out["boxes"], out["logits"]
        matches = self.match(boxes, logits, targets)
        images = torch.cat(
            [torch.full((len(r),), b, dtype=torch.long) for b, (r, _) in enumerate(matches)]
        )
        rows = torch.cat([torch.as_tensor(r, dtype=torch.long) for r, _ in matches])
        matched_pred = boxes[images, rows]
        matched_target = torch.cat(
            [
                t[torch.as_tensor(c, dtype=torch.long)]
                for t, (_, c) in zip(targets, matches, strict=True)
            ]
        )
        quality = torch.zeros_like(logits)
        if len(rows):
            iou = paired_box_iou(
                box_convert(matched_pred.detach(), "cxcywh", "xyxy"),
                box_convert(matched_target, "cxcywh", "xyxy"),
            )
            quality[images, rows] = iou.clamp(min=0.0).to(quality.dtype)
        w = self.loss_weights
        out_losses = {"objectness": w["objectness"] * quality_focal_loss(logits, quality) / num}
        if len(rows):
            l1, giou = box_losses(matched_pred, matched_target)
            out_losses["l1"], out_losses["giou"] = w["l1"] * l1 / num, w["giou"] * giou / num
        else:  # keep every head in the graph (distributed training never waits on a missing grad)
            out_losses["l1"] = out_losses["giou"] = boxes.sum() * 0.0
        return out_losses

    @torch.no_grad()
    @float32_cost
    def match(
        self, boxes: torch.Tensor, logits: torch.Tensor, targets: list[torch.Tensor]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Hungarian matching of each image's ``(Q, 4)`` predictions (``boxes``
        ``(B, Q, 4)``, ``logits`` ``(B, Q)``) to its ``(M, 4)`` targets
        (normalised cxcywh) with Deformable DETR's cost: the costs of the
        whole batch are built at once (the images are the groups of
        :func:`grouped_hungarian`). Per image, ``(query indices, target indices)``."""
        prob = logits.sigmoid()[..., None]
        alpha, gamma = 0.25, 2.0
        pos = alpha * (1 - prob) ** gamma * -(prob + 1e-8).log()
        neg = (1 - alpha) * prob**gamma * -(1 - prob + 1e-8).log()
        padded, counts = pad_groups([t.to(boxes) for t in targets], PAD_BOX.to(boxes))
        w = self.loss_weights
        cost = w["objectness"] * (pos - neg) + box_match_cost(boxes, padded, w["l1"], w["giou"])
        queries = torch.full_like(counts, boxes.shape[1])
        return grouped_hungarian(cost, queries, counts)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def propose(self, feats: list[torch.Tensor], canvas_hw: tuple[int, int]) -> list[InstanceData]:
        """Filtered proposals per image: ``bboxes`` ``(K, 4)`` xyxy pixels of
        the model input and ``scores`` ``(K,)``, best first."""
        last = self(feats, canvas_hw)[-1]
        return [
            self.filter(boxes, logits, canvas_hw)
            for boxes, logits in zip(last["boxes"], last["logits"], strict=True)
        ]

    def filter(
        self, boxes: torch.Tensor, logits: torch.Tensor, canvas_hw: tuple[int, int]
    ) -> InstanceData:
        """Score threshold, then NMS, then the top ``max_proposals``. Boxes
        thinner than one input pixel (clipped at the border) are dropped."""
        scores = logits.float().sigmoid()
        scale = boxes.new_tensor([canvas_hw[1], canvas_hw[0]] * 2, dtype=torch.float32)
        xyxy = box_convert(boxes.float(), "cxcywh", "xyxy").clamp(0, 1) * scale
        keep = (scores >= self.score_threshold) & (xyxy[:, 2:] - xyxy[:, :2] >= 1).all(-1)
        xyxy, scores = xyxy[keep], scores[keep]
        keep = nms(xyxy, scores, self.nms_threshold)
        keep = keep[: self.max_proposals]
        return InstanceData(bboxes=xyxy[keep], scores=scores[keep])
