"""Reinforcement learning after supervised fine-tuning (GRPO).

:mod:`.grpo` is the objective as pure functions (group-normalised
advantages, the clipped policy ratio, the KL to the reference policy);
:mod:`.rewards` the rewards two or more codecs share (a paradigm's own, e.g.
GETok's, live in its package); :mod:`.policy` the training stage as an
mmengine model, :class:`~.policy.GRPOPolicy`, that samples, scores and
updates a fine-tuned export of any vocabulary codec.
"""

from . import policy, rewards  # noqa: F401  (registration)
from .grpo import group_advantages, grpo_objective, kl_to_reference

__all__ = ["group_advantages", "grpo_objective", "kl_to_reference"]
