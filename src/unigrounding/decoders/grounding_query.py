"""UGLMM's grounding decoder: learnable grounding queries over the feature
pyramid, selected by similarity to the LLM's grounding embeddings.

``K_q`` learnable queries (300 in UGLMM) are decoded over the shared feature
pyramid (:class:`~.query_decoders.QueryDecoder`, a compact stand-in for
MaskDINO's decoder); every decoded query predicts a box and a mask. As in
MaskDINO (and DAB-DETR before it) each query owns an anchor box — learnable,
initialised on a grid over the image — whose sin-cos code joins the query and
which the box head refines, so queries are tied to places. Without anchors,
one object per image (REC) lets a single query win every match and regress to
the mean box of the training set (seen: the loss stalled for 300 steps). The
similarity of a query to an object's grounding embedding is the query's
classification logit for that object. Training matches queries to the objects
of each image by Hungarian matching on classification + box + mask costs
(:mod:`.matching`, one group per image) and applies eq. (1) of the UGLMM
supplementary: query classification (sigmoid focal), mask BCE, mask Dice, box
GIoU and box L1, weighted 0.08 / 0.1 / 0.1 / 0.04 / 0.1. At inference each
grounding embedding takes the query it is most similar to.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import sigmoid_focal_loss

from ..registry import DECODERS
from .matching import box_match_cost, float32_cost, grouped_hungarian, mask_match_cost
from .query_decoders import PixelDecoder, QueryDecoder, box_losses, dice_loss, mask_logits, mlp

#: UGLMM supplementary B.3: lambda_cls, lambda_bce, lambda_dice, lambda_giou, lambda_l1.
UGLMM_LOSS_WEIGHTS = {"cls": 0.08, "bce": 0.1, "dice": 0.1, "giou": 0.04, "l1": 0.1}


def _grid_anchors(n: int) -> torch.Tensor:
    """``(n, 4)`` anchor boxes in logit space: centres on a near-square grid over
    the image (row-major, the first ``n`` cells), sides one grid step."""
    side = math.ceil(math.sqrt(n))
    centres = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    cy, cx = torch.meshgrid(centres, centres, indexing="ij")
    boxes = torch.stack(
        [
            cx.flatten(),
            cy.flatten(),
            torch.full((side * side,), 1 / side),
            torch.full((side * side,), 1 / side),
        ],
        dim=1,
    )[:n]
    return torch.logit(boxes.clamp(1e-4, 1 - 1e-4))


def _anchor_code(anchors: torch.Tensor, dim: int) -> torch.Tensor:
    """Sin-cos code of the anchors' centres, ``(K, dim)`` (half x, half y)."""
    quarter = dim // 4
    # wavelengths from twice the image down to 1/16 of it
    freqs = math.pi * 2.0 ** torch.linspace(
        0, 5, quarter, dtype=anchors.dtype, device=anchors.device
    )
    x = anchors[:, :1] * freqs
    y = anchors[:, 1:2] * freqs
    code = torch.cat([x.sin(), x.cos(), y.sin(), y.cos()], dim=1)
    return torch.nn.functional.pad(code, (0, dim - code.shape[1]))


@DECODERS.register_module()
class GroundingQueryDecoder(QueryDecoder):
    """Args:
    num_queries: ``K_q`` learnable grounding queries (UGLMM: 300).
    loss_weights: eq. (1) weights (defaults :data:`UGLMM_LOSS_WEIGHTS`).
    match_weights: matching-cost weights ``cls`` / ``l1`` / ``giou`` / ``mask``
        (MaskDINO-style: 2 / 5 / 2 / 5; UGLMM does not give its own).
    dim / layers / heads / levels: as :class:`~.query_decoders.QueryDecoder`.
    """

    unit = "box"
    units = ("box", "mask")

    def __init__(
        self,
        num_queries: int = 300,
        loss_weights: dict[str, float] | None = None,
        match_weights: dict[str, float] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.loss_weights = {**UGLMM_LOSS_WEIGHTS, **(loss_weights or {})}
        self.match_weights = {
            "cls": 2.0,
            "l1": 5.0,
            "giou": 2.0,
            "mask": 5.0,
            **(match_weights or {}),
        }
        self.queries = nn.Embedding(num_queries, self.dim)
        self.anchors = nn.Parameter(_grid_anchors(num_queries))
        self.box_head = mlp(self.dim, 4)
        self.mask_head = mlp(self.dim, self.dim)
        self.pixel = PixelDecoder(self.dim)
        # focal-loss prior: every query starts at p = 0.01 for every object
        self.logit_bias = nn.Parameter(torch.tensor(-math.log(99.0)))

    def forward(
        self,
        embeddings: torch.Tensor,
        pyramid: list[torch.Tensor],
        images: torch.Tensor,
        with_masks: bool = True,
    ) -> dict[str, torch.Tensor]:
        """``(B, M, dim)`` grounding embeddings → ``logits`` ``(B, K, M)``
        (query-object similarity), ``boxes`` ``(B, K, 4)`` normalised
        ``cxcywh`` (fractions of the canvas) and ``masks`` ``(B, K, h*w)``
        logits on the images' :func:`~.query_decoders.mask_grid`.

        ``with_masks=False`` (box-only batches) computes the mask of the first
        query only: the mask branch stays in the graph (REF-VLM's fake-tensor
        argument) without paying for ``K`` masks nobody scores."""
        b = embeddings.shape[0]
        anchors = self.anchors.sigmoid()
        queries = self.queries.weight + _anchor_code(anchors, self.dim)
        decoded = self.decode(queries.expand(b, -1, -1), pyramid)
        logits = decoded @ embeddings.transpose(1, 2) / math.sqrt(self.dim) + self.logit_bias
        return {
            "logits": logits,
            "boxes": (self.anchors + self.box_head(decoded)).sigmoid(),
            "masks": mask_logits(
                self.mask_head(decoded if with_masks else decoded[:, :1]),
                self.pixel(pyramid, tuple(images.shape[-2:])),
            ),
        }

    @float32_cost
    def match(
        self, out: dict[str, torch.Tensor], boxes: torch.Tensor, masks: torch.Tensor | None, counts
    ):
        """Per image, ``(query indices, object indices)``; ``boxes`` ``(B, M, 4)``
        and ``masks`` ``(B, M, h*w)`` padded targets, ``counts`` ``(B,)`` objects."""
        w = self.match_weights
        cost = -w["cls"] * out["logits"].sigmoid() + box_match_cost(
            out["boxes"], boxes, w["l1"], w["giou"]
        )
        if masks is not None:
            cost = cost + w["mask"] * mask_match_cost(out["masks"], masks) / 2
        queries = torch.full_like(counts, out["boxes"].shape[1])
        return grouped_hungarian(cost, queries, counts)

    def loss(
        self,
        out: dict[str, torch.Tensor],
        boxes: torch.Tensor,
        masks: torch.Tensor | None,
        counts: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Eq. (1) without the text term, normalised by the number of objects."""
        matches = self.match(out, boxes, masks, counts)
        n = max(int(counts.sum()), 1)
        w = self.loss_weights
        target_cls = torch.zeros_like(out["logits"])
        for b, (q, o) in enumerate(matches):
            target_cls[b, q, o] = 1.0
        valid = (
            torch.arange(out["logits"].shape[2], device=counts.device)[None, None]
            < counts[:, None, None]
        )
        cls = sigmoid_focal_loss(out["logits"], target_cls, reduction="none")
        losses = {"gnd_cls": w["cls"] * (cls * valid).sum() / n}
        pred_b = torch.cat([out["boxes"][b, q] for b, (q, _) in enumerate(matches)])
        gt_b = torch.cat([boxes[b, o] for b, (_, o) in enumerate(matches)])
        l1, giou = box_losses(pred_b, gt_b)
        losses["gnd_l1"], losses["gnd_giou"] = w["l1"] * l1 / n, w["giou"] * giou / n
        if masks is not None:
            pred_m = torch.cat([out["masks"][b, q] for b, (q, _) in enumerate(matches)])
            gt_m = torch.cat([masks[b, o] for b, (_, o) in enumerate(matches)])
            bce = F.binary_cross_entropy_with_logits(pred_m, gt_m, reduction="none").mean(-1)
            losses["gnd_bce"] = w["bce"] * bce.sum() / n
            losses["gnd_dice"] = w["dice"] * dice_loss(pred_m, gt_m).sum() / n
        else:  # keep the mask branch in the graph (a box-only batch)
            losses["gnd_bce"] = 0.0 * out["masks"].sum()
        return losses
