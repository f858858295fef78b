"""What the model's decoding hands to transformers' ``generate``: a
generation config that ignores the LLM folder's own sampling defaults (greedy,
or the sampling an RL stage asks for), the constrained-decoding logits
processor, and the stop handling codecs rely on."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, LogitsProcessor

from ..structures import GroundingDataSample


def generation_config(
    max_new_tokens: int,
    stop_ids: list[int],
    pad_id: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
) -> GenerationConfig:
    """Greedy decoding (``temperature`` 0) or sampling at ``temperature`` with
    nucleus ``top_p``, whatever the LLM folder's ``generation_config.json``
    asks for: ``generate`` fills every setting left unset from it (a Qwen
    folder samples at temperature 0.7, top-k 20, with a repetition penalty),
    so the search, the truncations and the scalar penalties are pinned here.
    Token lists a folder names (``suppress_tokens``, ``bad_words_ids``) still
    apply: ``generate`` takes no empty value for them."""
    sampling = temperature > 0
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        min_new_tokens=0,
        do_sample=sampling,
        num_beams=1,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        eos_token_id=list(stop_ids),
        pad_token_id=pad_id,
        **(dict(temperature=temperature, top_p=top_p, top_k=0, typical_p=1.0) if sampling else {}),
    )


def answer_mask(ids: torch.Tensor, stop_ids: list[int]) -> torch.Tensor:
    """``(N, L)`` bool: each generated row up to and with its first stop id
    (the whole row if it has none): the tokens the model chose."""
    stops = torch.isin(ids, torch.tensor(stop_ids, device=ids.device)).long()
    return (stops.cumsum(dim=1) - stops) == 0


@dataclass
class Rollout:
    """Sampled answers (an RL stage's rollout), ``num_samples`` rows per question.

    ``samples``: the decoded copies (``pred_refs``, ``metainfo["pred_text"]``);
    each copy's ``conversation`` is the one its answer was sampled after.
    ``answer_ids``: ``(N, L)`` the answers' token ids as sampled. ``mask``:
    ``(N, L)`` bool, the tokens the model chose (a row it was not asked to
    answer has none). ``allowed``: the ids a constrained pass could use, so
    log-probabilities are taken over the distribution it sampled from.
    """

    samples: list[GroundingDataSample]
    answer_ids: torch.Tensor
    mask: torch.Tensor
    allowed: torch.Tensor | None = None


class AllowedTokens(LogitsProcessor):
    """Constrained decoding: every token outside ``allowed`` (ids) gets -inf
    (in the last dimension of ``scores``, one step's or a whole answer's)."""

    def __init__(self, allowed: torch.Tensor):
        self.allowed = allowed

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        allowed = self.allowed.to(scores.device)
        return torch.full_like(scores, float("-inf")).index_copy(
            -1, allowed, scores.index_select(-1, allowed)
        )


def ended_at_stops(sequences: torch.Tensor, stop_ids: list[int], eos: int) -> torch.Tensor:
    """``sequences`` with each row's first stop id and everything after it
    replaced by ``eos``: one end marker for every chat template."""
    stops = torch.isin(sequences, torch.tensor(stop_ids, device=sequences.device))
    ended = stops.cumsum(dim=1) > 0
    return torch.where(ended, torch.full_like(sequences, eos), sequences)


def cache_step_kwargs(llm, generated) -> dict:
    """The KV cache of a ``generate`` output as the keyword ``llm``'s forward
    takes it: transformers 5.x renamed ``past_key_values`` to ``cache`` (the
    old name warns, and goes in 5.40); earlier 5.x releases know only the old."""
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm  # a peft wrapper
    cache = getattr(generated, "cache", None)
    if "cache" in inspect.signature(base.forward).parameters and cache is not None:
        return {"cache": cache}
    return {"past_key_values": generated.past_key_values}
