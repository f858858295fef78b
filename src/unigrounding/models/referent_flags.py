"""Referent flags: an auxiliary loss that teaches the LLM to bind words to image tokens.

A tiny LLM trained from scratch learns REC answers in two parts: finding *an*
object and reading its position out is quick; choosing the object the words
describe ("binding") is not — on ShapesRef most early errors pick a wrong
object. Binding is the same for every codec, so the shared model can teach it
directly. With ``image_placement="after_text"`` the image tokens follow the
question; this loss asks each of them, halfway up the LLM, whether it lies on
the question's referent (binary cross-entropy against the fraction of its cell
the referent's box covers). That is a one-hop comparison — an image token
against the words before it — and its flag stays in the residual stream, where
any codec's answer tokens can attend to it. The head is used only in training.
"""

from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..structures import SLOT_PATTERN, GroundingDataSample


def cell_coverage(boxes: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Fraction of each cell of a ``rows x cols`` lattice over the unit square
    covered by ``boxes`` (``(N, 4)`` normalised xyxy); ``(rows * cols,)``,
    row-major, overlaps counted once up to 1."""
    rows, cols = grid
    xs, ys = np.linspace(0.0, 1.0, cols + 1), np.linspace(0.0, 1.0, rows + 1)
    covered = np.zeros((rows, cols))
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        wx = np.clip(np.minimum(xs[1:], x2) - np.maximum(xs[:-1], x1), 0, None)
        wy = np.clip(np.minimum(ys[1:], y2) - np.maximum(ys[:-1], y1), 0, None)
        covered += np.outer(wy, wx)
    return np.clip(covered * rows * cols, 0.0, 1.0).reshape(-1)


class ReferentFlags(nn.Module):
    """Linear flag head over the image tokens and its loss.

    Args:
        hidden_size: LLM width.
        num_layers: LLM depth; the flags are read from the output of layer
            ``num_layers // 2`` — halfway, so the layers above can use them.
        cell: side in model-input pixels of the square each image token covers.
    """

    def __init__(self, hidden_size: int, num_layers: int, cell: int) -> None:
        super().__init__()
        self.head = nn.Linear(hidden_size, 1)
        self.layer = max(1, num_layers // 2)
        self.cell = cell

    def forward(
        self,
        hidden_states: tuple[torch.Tensor, ...],
        is_image: torch.Tensor,
        samples: list[GroundingDataSample],
        grids: list[tuple[int, int]],
    ) -> torch.Tensor:
        """Mean BCE over the image tokens of every sample whose first answer
        names a referent (others — captions, no-target answers — are skipped).

        ``hidden_states`` are the LLM's per-layer outputs (embeddings first,
        ``(B, T, D)`` each); ``is_image`` ``(B, T)`` marks the image tokens,
        ``grids[b]`` is sample ``b``'s ``(rows, cols)`` of them (row-major
        from the top left of its input).
        """
        states = hidden_states[self.layer]
        rows, targets = [], []
        for b, sample in enumerate(samples):
            answer = next((t["text"] for t in sample.conversation if t["role"] == "assistant"), "")
            slot = next((m for m in re.finditer(SLOT_PATTERN, answer) if m[1] == "target"), None)
            if slot is None:
                continue
            refs = sample.gt_refs.group(int(slot[2]))
            if len(refs) == 0:
                continue
            grid = grids[b]
            extent = np.array([grid[1], grid[0]] * 2, dtype=np.float64) * self.cell
            boxes = sample.frame.boxes_to_input(refs.boxes.numpy()) / extent
            rows.append(b)
            targets.append(cell_coverage(boxes, grid))
        if not rows:
            return states.sum() * 0.0
        logits = self.head(states[rows][is_image[rows]]).squeeze(-1).float()
        target = torch.as_tensor(np.concatenate(targets), dtype=logits.dtype, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits, target)
