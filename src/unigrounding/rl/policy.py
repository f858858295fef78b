"""The GRPO stage as an mmengine model: a fine-tuned export is the policy.

Each training iteration is one rollout and one update: every question of the
batch gets ``num_samples`` sampled answers, each answer is decoded by the
codec and scored by the stage's rewards, rewards become group-normalised
advantages, and one gradient step minimises the GRPO objective against a
frozen copy of the starting policy. Validation and testing run the policy
greedily, as any grounding model, and the stage's export is the policy's.

Why not TRL's ``GRPOTrainer``: it drives a transformers model from token
ids and a processor, while this model's image tokens, proposals and codec
state are put in by :class:`~unigrounding.models.mllm.GroundingMLLM` around
the LLM, and answers are scored on geometry the codec decodes; wrapping that
as a transformers model (and giving up mmengine's resume, hooks and
exports) would be the contortion. Sampling is transformers' ``generate``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from mmengine.model import BaseModel

from ..models.preprocessor import GroundingDataPreprocessor
from ..registry import MODELS, REWARDS
from .grpo import group_advantages, grpo_objective


@MODELS.register_module()
class GRPOPolicy(BaseModel):
    """GRPO on a fine-tuned grounding model.

    Args:
        policy: the export folder the stage starts from (its SFT or
            cold-start run); it is also the frozen reference policy.
        rewards: reward configs (:mod:`.rewards`, or a codec's), each with a
            ``weight`` (default 1); an answer's reward is their weighted sum.
        overrides: dotted model-config overrides applied to the export's
            config before it is built (e.g. ``{"codec.refine": False}``: a
            grid-stage rollout without the offset pass).
        num_samples: answers sampled per question (the group, ``G``).
        temperature, top_p: the rollout's sampling.
        follow_up: sample the codec's follow-up pass after a greedy first
            answer instead of the first answer
            (:meth:`~unigrounding.models.mllm.GroundingMLLM.sample`): GETok's
            offset stage, which refines a fixed grid proposal.
        clip: the ratio's clip range ``epsilon``.
        kl_coef: weight of the KL to the reference policy (``beta``).
        seed: the rollouts' sampling seed; rollout ``k`` samples with seed
            ``(seed, k)``, and ``k`` is saved with the weights, so a resumed
            run samples what the uninterrupted one would have.

    One update per rollout (GRPO's ``mu = 1``), so the old policy is the
    current one: the ratio is 1 in value and the clip never binds, as in
    TRL's and verl's defaults; the ratio still carries the gradient.
    """

    def __init__(
        self,
        policy: str,
        rewards: list[dict],
        overrides: dict | None = None,
        num_samples: int = 8,
        temperature: float = 1.0,
        top_p: float = 1.0,
        follow_up: bool = False,
        clip: float = 0.2,
        kl_coef: float = 0.01,
        seed: int = 0,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor or GroundingDataPreprocessor(), init_cfg=init_cfg
        )
        from ..engine.export import build_exported, exported_config

        if num_samples < 2:
            raise ValueError(
                f"GRPO compares answers to one question: num_samples >= 2, got {num_samples}"
            )
        if not rewards:
            raise ValueError("GRPOPolicy needs at least one reward")
        self.policy = build_exported(Path(policy), overrides)
        self.policy_cfg = exported_config(Path(policy), overrides)
        if self.policy.codec.kind != "vocab":
            raise ValueError(
                f"{policy}: GRPO samples answers as tokens; codec {type(self.policy.codec).__name__} "
                f"is of kind {self.policy.codec.kind!r}, not 'vocab'"
            )
        self.reference = copy.deepcopy(self.policy).requires_grad_(False).eval()
        # the reference is the export, rebuilt from it on every start: a
        # checkpoint holds the policy only (half the size at any scale)
        self.register_state_dict_post_hook(_without_reference)
        self.register_load_state_dict_post_hook(_reference_not_missing)
        self.rewards, self.weights = [], []
        for spec in rewards:
            spec = dict(spec)
            self.weights.append(float(spec.pop("weight", 1.0)))
            self.rewards.append(REWARDS.build(spec))
        self.num_samples, self.temperature, self.top_p = num_samples, temperature, top_p
        self.follow_up = follow_up
        self.clip, self.kl_coef, self.seed = clip, kl_coef, seed
        self.register_buffer("rollouts", torch.zeros((), dtype=torch.long))

    def train(self, mode: bool = True) -> GRPOPolicy:
        super().train(mode)
        self.reference.eval()
        return self

    def exported_model(self) -> tuple[torch.nn.Module, dict]:
        """What the stage's export writes: the policy and its model config."""
        return self.policy, self.policy_cfg

    def train_step(self, data, optim_wrapper) -> dict[str, torch.Tensor]:
        data = self.data_preprocessor(data, True)
        inputs, samples = data["inputs"], data["data_samples"]
        with optim_wrapper.optim_context(self):
            with torch.random.fork_rng(devices=[inputs.device] if inputs.is_cuda else []):
                torch.manual_seed(self.seed * 1_000_003 + int(self.rollouts))
                rollout = self.policy.sample(
                    inputs, samples, self.num_samples, self.temperature, self.top_p, self.follow_up
                )
            self.rollouts += 1
            answered, ids, mask = rollout.samples, rollout.answer_ids, rollout.mask
            scores = torch.tensor(
                [[reward(s) for reward in self.rewards] for s in answered], device=inputs.device
            )
            total = scores @ torch.tensor(self.weights, device=inputs.device)
            advantages = group_advantages(total, self.num_samples)
            images = inputs.repeat_interleave(self.num_samples, 0)
            scored = (images, answered, ids, self.temperature, rollout.allowed)
            logp = self.policy.answer_logprobs(*scored)
            with torch.no_grad():
                ref_logp = self.reference.answer_logprobs(*scored)
            out = grpo_objective(
                logp, logp.detach(), ref_logp, advantages, mask, self.clip, self.kl_coef
            )
        optim_wrapper.update_params(out["loss"])
        log = {"loss": out["loss"].detach(), "kl": out["kl"], "clipped": out["clipped"]}
        log["reward"] = total.mean()
        for reward, column in zip(self.rewards, scores.T, strict=True):
            log[f"reward_{reward.name}"] = column.mean()
        log["answer_tokens"] = mask.sum(dim=1).float().mean()
        return log

    def forward(self, inputs: torch.Tensor, data_samples: list, mode: str = "tensor"):
        return self.policy(inputs, data_samples, mode)


def _without_reference(module, state_dict, prefix, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(f"{prefix}reference.")]:
        del state_dict[key]


def _reference_not_missing(module, incompatible_keys) -> None:
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if not k.startswith("reference.")]
