"""Chat template and conversation tokenization.

Template: ``<s>USER: {user} ASSISTANT: {answer}</s>USER: ...``. Only assistant
text (and its closing ``</s>``) is supervised. ``<image>`` in user text expands
to one placeholder token per image token; the model scatters the projected
patches into those positions. ``image_placement="after_text"`` moves the image
of a user turn behind that turn's text.
"""

from __future__ import annotations

import functools

import torch

from .tokenizer import IMAGE

IGNORE = -100


def text_ids(tokenizer, text: str) -> list[int]:
    """``text``'s token ids without special tokens (cached)."""
    return list(_cached_ids(tokenizer, len(tokenizer), text))


@functools.lru_cache(maxsize=1 << 16)
def _cached_ids(tokenizer, vocab_size: int, text: str) -> tuple[int, ...]:
    """Training re-encodes the same template pieces and answers every epoch;
    the vocabulary size is part of the key, so added tokens invalidate it."""
    return tuple(tokenizer(text, add_special_tokens=False).input_ids)


PLACEMENTS = ("as_written", "after_text")


def place_image(text: str, placement: str) -> str:
    """``text`` with its ``<image>`` where ``placement`` puts it."""
    if placement not in PLACEMENTS:
        raise ValueError(f"image placement must be one of {PLACEMENTS}, got {placement!r}")
    if placement == "as_written" or IMAGE not in text:
        return text
    rest = " ".join(chunk.strip() for chunk in text.split(IMAGE) if chunk.strip())
    return f"{rest}\n" + IMAGE * text.count(IMAGE)


def image_turn_text(turns: list[dict[str, str]]) -> str:
    """The text of the user turn that holds the image, without the placeholder."""
    for turn in turns:
        if turn["role"] == "user" and IMAGE in turn["text"]:
            return " ".join(turn["text"].replace(IMAGE, " ").split())
    raise ValueError(f"no user turn holds an {IMAGE} placeholder: {turns!r}")


def encode_conversation(
    tokenizer,
    turns: list[dict[str, str]],
    num_image_tokens: int,
    with_last_answer: bool,
    image_placement: str = "as_written",
) -> tuple[list[int], list[int]]:
    """Token ids and labels of a rendered conversation.

    With ``with_last_answer=False`` the final assistant turn is dropped and the
    ids end with the ``ASSISTANT:`` prompt (for generation).
    """
    if not turns or turns[0]["role"] != "user":
        raise ValueError("a conversation must start with a user turn")
    image_id = tokenizer.convert_tokens_to_ids(IMAGE)
    ids, labels = [tokenizer.bos_token_id], [IGNORE]
    last = len(turns) - 1
    for i, turn in enumerate(turns):
        if turn["role"] == "user":
            piece = []
            text = place_image(turn["text"], image_placement)
            for j, chunk in enumerate(text.split(IMAGE)):
                if j:
                    piece += [image_id] * num_image_tokens
                piece += text_ids(tokenizer, ("USER: " if j == 0 else "") + chunk)
            piece += text_ids(tokenizer, " ASSISTANT:")
            ids += piece
            labels += [IGNORE] * len(piece)
        elif turn["role"] == "assistant":
            if i == last and not with_last_answer:
                break
            piece = answer_ids(tokenizer, turn["text"]) + [tokenizer.eos_token_id]
            ids += piece
            labels += piece
        else:
            raise ValueError(f"unknown role {turn['role']!r}")
    return ids, labels


def answer_ids(tokenizer, text: str) -> list[int]:
    """The ids of an assistant answer as the template writes it (after a space)."""
    return text_ids(tokenizer, " " + text)


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
