"""Group Relative Policy Optimisation (Shao et al. 2024, DeepSeekMath eqs. 3-4,
outcome supervision) as pure functions of per-token log-probabilities.

Shapes: ``N`` answers in groups of ``G`` consecutive rows (one prompt's
samples), ``L`` answer positions; ``mask`` marks each answer's own tokens.
"""

from __future__ import annotations

import torch


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """``(N,)`` advantages: each reward less its group's mean, over the
    group's standard deviation (+ ``eps``). The paper writes ``std`` without
    saying which; the sample (Bessel-corrected) one is used, as in TRL's and
    verl's GRPO. A group whose rewards are all equal teaches nothing: its
    advantages are 0."""
    if rewards.dim() != 1 or len(rewards) % group_size:
        raise ValueError(
            f"rewards must be (N,) with N a multiple of the group size {group_size}, "
            f"got shape {tuple(rewards.shape)}"
        )
    groups = rewards.float().view(-1, group_size)
    mean = groups.mean(dim=1, keepdim=True)
    std = groups.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(mean)
    return ((groups - mean) / (std + eps)).flatten()


def kl_to_reference(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate to the reference policy (eq. 4):
    ``r - log r - 1`` with ``r = pi_ref / pi``; unbiased and never negative."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1


def grpo_objective(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.2,
    kl_coef: float = 0.01,
) -> dict[str, torch.Tensor]:
    """The loss to minimise, eq. 3 negated: per token
    ``-min(rho * A, clip(rho, 1 - clip, 1 + clip) * A) + kl_coef * KL`` with
    ``rho = pi / pi_old``, averaged over each answer's tokens, then over the
    answers. Also returned: the mean per-token ``kl`` and the fraction of
    tokens whose ratio left the clip range (``clipped``)."""
    mask = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    adv = advantages.to(logp.dtype).unsqueeze(1)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    kl = kl_to_reference(logp, ref_logp)
    per_token = -surrogate + kl_coef * kl
    lengths = mask.sum(dim=1).clamp(min=1)
    chosen = mask.bool()
    # where, not a product: a position outside the answers may hold -inf
    # (a token a constrained pass could not choose), and inf * 0 is nan
    loss = (torch.where(chosen, per_token, 0).sum(dim=1) / lengths).mean()
    tokens = mask.sum().clamp(min=1)
    clipped = ((ratio < 1 - clip) | (ratio > 1 + clip)).to(logp.dtype)
    return {
        "loss": loss,
        "kl": (torch.where(chosen, kl, 0).sum() / tokens).detach(),
        "clipped": ((clipped * mask).sum() / tokens).detach(),
    }
