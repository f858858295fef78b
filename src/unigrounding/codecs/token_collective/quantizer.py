"""The visual tokenizer of ClawMachine's hybrid perception
(ClawMachine [docs/papers.md], section 2.1): LaVIT's vector-quantization
layer — a 2-layer MLP and a lookup of the nearest codebook entry — turning
each patch feature of the vision tower into a discrete code, later a
``<vis_k>`` token of the LLM's vocabulary.

Choices the papers leave open (documented and tested):

* Codes live on the unit sphere: the projected feature and the codebook are
  L2-normalised and matched by cosine similarity (ViT-VQGAN's factorised,
  normalised codes), which keeps small codebooks in use.
* Training: VQ-VAE's codebook and commitment losses (``commitment`` 0.25) with
  the straight-through estimator, plus a decoder MLP that reconstructs the
  patch feature from its code (cosine loss) — LaVIT trains its tokenizer to
  reconstruct the ViT features, which is what makes a code mean something.
* The codebook starts from projected features of the first training batch
  (k-means++-like seeding by random sampling), so no entry starts dead.
* Frozen mode (``requires_grad_(False)``, as ClawMachine keeps its tokenizer)
  only encodes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VisualQuantizer(nn.Module):
    """Patch features ``(..., in_dim)`` → codes ``(...)`` in ``[0, codebook_size)``.

    Args:
        in_dim: feature width of the tower's token map.
        codebook_size: number of codes (ClawMachine / LaVIT: 16384).
        code_dim: width of a code (LaVIT: 32).
        commitment: weight of the commitment loss (VQ-VAE's beta).
    """

    def __init__(
        self, in_dim: int, codebook_size: int = 16384, code_dim: int = 32, commitment: float = 0.25
    ) -> None:
        super().__init__()
        self.codebook_size, self.commitment = codebook_size, commitment
        self.encoder = nn.Sequential(
            nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, code_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(code_dim, in_dim), nn.GELU(), nn.Linear(in_dim, in_dim)
        )
        self.codebook = nn.Parameter(F.normalize(torch.randn(codebook_size, code_dim), dim=-1))
        self.register_buffer("seeded", torch.tensor(False))

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.encoder(features), dim=-1)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the most similar (cosine) codebook entry per row of ``z``."""
        return (z @ F.normalize(self.codebook, dim=-1).T).argmax(-1)

    @torch.no_grad()
    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Codes of ``features`` ``(..., in_dim)`` → ``(...)`` long."""
        return self.nearest(self.project(features))

    def loss(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Codebook, commitment and reconstruction losses on ``(N, in_dim)``."""
        z = self.project(features)
        if not bool(self.seeded):
            self._seed(z.detach())
        codes = self.nearest(z.detach())
        q = F.normalize(self.codebook, dim=-1)[codes]
        quantized = z + (q - z).detach()  # straight-through
        recon = self.decoder(quantized)
        return {
            "loss_codebook": F.mse_loss(q, z.detach()),
            "loss_commitment": self.commitment * F.mse_loss(z, q.detach()),
            "loss_reconstruction": (
                1 - F.cosine_similarity(recon, features.detach(), dim=-1)
            ).mean(),
        }

    @torch.no_grad()
    def _seed(self, z: torch.Tensor) -> None:
        picks = torch.randint(len(z), (self.codebook_size,), device=z.device)
        noise = 0.01 * torch.randn(self.codebook_size, z.shape[-1], device=z.device)
        self.codebook.copy_(F.normalize(z[picks] + noise, dim=-1))
        self.seeded.fill_(True)
