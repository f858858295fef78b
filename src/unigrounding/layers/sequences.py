"""Token sequences in batches."""

from __future__ import annotations

import torch

#: the label of a position without a next-token target (torch's cross-entropy default)
IGNORE = -100


def pad_batch(seqs: list[list[int]], pad: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, T)`` padded ids and their attention mask (left padding for generation)."""
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        sl = slice(width - len(s), width) if left else slice(0, len(s))
        out[i, sl] = torch.tensor(s, dtype=torch.long)
        mask[i, sl] = 1
    return out, mask
