"""A multi-scale feature pyramid over a vision tower's levels."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class FeaturePyramid(nn.Module):
    """A simple (ViTDet-style) pyramid: every output stride is built from the
    nearest tower level by a 1x1 projection and resampling to that stride.

    ``token_channels``: also fuse the image tokens the LLM reads (the
    projector's output, ``(B, h*w, D)`` on a square grid) into every level —
    REF-VLM concatenates the global encoder's features with the multi-scale
    ones before its decoders; concatenation followed by a 1x1 projection is
    the sum of two projections, which is what is computed here. With an
    instruction-aware projector these tokens already know what was asked.
    """

    def __init__(
        self,
        in_channels: list[int],
        in_strides: list[int],
        strides: tuple[int, ...] = (8, 16, 32),
        dim: int = 64,
        token_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.strides = tuple(strides)
        self.sources = [
            min(range(len(in_strides)), key=lambda i: abs(math.log2(in_strides[i] / s)))
            for s in strides
        ]
        self.proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_channels[i], dim, 1), nn.GroupNorm(1, dim))
            for i in self.sources
        )
        self.token_proj = None
        if token_channels is not None:
            self.token_proj = nn.ModuleList(nn.Linear(token_channels, dim) for _ in self.strides)

    @property
    def reads_tokens(self) -> bool:
        """Whether :meth:`forward` needs the LLM-side image tokens."""
        return self.token_proj is not None

    def forward(
        self,
        feats: list[torch.Tensor],
        canvas_hw: tuple[int, int],
        tokens: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Level ``i`` at ``canvas_hw // strides[i]`` (the batch's ``(H, W)``).
        ``tokens``: the LLM-side image tokens as a ``(B, D, h, w)`` map,
        required iff ``token_channels`` was given."""
        if (tokens is not None) != self.reads_tokens:
            raise ValueError("image tokens must be given exactly when token_channels is set")
        out = []
        for level, (proj, src, stride) in enumerate(
            zip(self.proj, self.sources, self.strides, strict=True)
        ):
            size = (max(1, canvas_hw[0] // stride), max(1, canvas_hw[1] // stride))
            x = _resized(proj(feats[src]), size)
            if tokens is not None:
                grid = self.token_proj[level](tokens.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
                x = x + _resized(grid, size)
            out.append(x)
        return out


def _resized(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
