"""Conversation rendering and tokenization: chat formats.

A chat format turns a codec-rendered conversation (``[{"role", "text"}]``
turns) into token ids and labels. Only assistant answers (and the tokens that
end them) are supervised. ``<image>`` in user text expands to one placeholder
token per image token; the model scatters the projected patches into those
positions. ``image_placement="after_text"`` moves the image of a user turn
behind that turn's text.

Two kinds of format:

* :class:`VicunaFormat` — ``<s>USER: {user} ASSISTANT: {answer}</s>USER: ...``
  (Vicuna v1.1 / LLaVA-1.5), for LLMs without a chat template and the tiny
  preset; ``<s>`` only where the tokenizer has a BOS token.
* :class:`TemplateFormat` — a Jinja chat template, the tokenizer's own (e.g.
  Qwen2's ChatML) or :data:`CHATML_TEMPLATE` by name, rendered by transformers'
  ``apply_chat_template``. The supervised span of each answer is found by
  rendering the conversation up to that answer with and without it, so any
  template works without ``{% generation %}`` markers.

:func:`build_chat_format` picks one: the tokenizer's template when it has one,
else Vicuna, unless the config names a format.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from ..layers.sequences import IGNORE
from ..structures import IMAGE, SLOT_PATTERN

#: U+2060 WORD JOINER: invisible, and no tokenizer matches a token across it
_BREAK = "\u2060"


def plain_text(text: str, reserved: Iterable[str], slots: bool = False) -> str:
    """User-typed ``text`` made safe to put in a conversation: each occurrence
    of a ``reserved`` string (special tokens, ``<image>``) and, with ``slots``,
    of a ``{prompt:i}`` / ``{target:i}`` slot gets a word joiner after its
    first character — still the text the user typed, but no longer a control
    token or a slot. Lone surrogates, which no tokenizer encodes, become U+FFFD."""
    text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    for token in sorted((t for t in reserved if t and t in text), key=len, reverse=True):
        text = text.replace(token, token[0] + _BREAK + token[1:])
    if slots:
        text = re.sub(SLOT_PATTERN, lambda m: m.group(0)[0] + _BREAK + m.group(0)[1:], text)
    return text


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


def _check_turns(turns: list[dict[str, str]]) -> None:
    if not turns or turns[0]["role"] != "user":
        raise ValueError("a conversation must start with a user turn")
    for turn in turns:
        if turn["role"] not in ("user", "assistant"):
            raise ValueError(f"unknown role {turn['role']!r}")


class ChatFormat:
    """How a conversation becomes ids and labels for one tokenizer.

    Attributes:
        name: the format's name, recorded in exports.
        stop_ids: ids that end an answer in generation (the tokenizer's EOS
            and the template's end-of-turn token).

    ``image_markup``: text the image tokens are written between (a VLM's own,
    e.g. Qwen2.5-VL's ``<|vision_start|>`` / ``<|vision_end|>``).
    """

    name: str
    stop_ids: tuple[int, ...]

    def __init__(self, tokenizer, image_markup: tuple[str, str] = ("", "")) -> None:
        self.tokenizer = tokenizer
        self.image_id = tokenizer.convert_tokens_to_ids(IMAGE)
        self.image_markup = tuple(image_markup)
        self._image_open, self._image_close = (text_ids(tokenizer, m) for m in image_markup)

    def image_block(self, num_image_tokens: int) -> list[int]:
        """The ids one image is written as: its placeholders within the markup."""
        return [*self._image_open, *[self.image_id] * num_image_tokens, *self._image_close]

    def encode(
        self,
        turns: list[dict[str, str]],
        num_image_tokens: int,
        with_last_answer: bool,
        image_placement: str = "as_written",
    ) -> tuple[list[int], list[int]]:
        """Token ids and labels of a rendered conversation. With
        ``with_last_answer=False`` the final assistant turn is dropped and the
        ids end with the generation prompt."""
        raise NotImplementedError

    def answer_ids(self, text: str) -> list[int]:
        """The ids of an assistant answer as the format writes it in context,
        without the tokens that end the turn."""
        raise NotImplementedError


class VicunaFormat(ChatFormat):
    """``<s>USER: {user} ASSISTANT: {answer}</s>`` (Vicuna v1.1 / LLaVA-1.5)."""

    name = "vicuna"

    def __init__(self, tokenizer, image_markup: tuple[str, str] = ("", "")) -> None:
        super().__init__(tokenizer, image_markup)
        self.stop_ids = (tokenizer.eos_token_id,)

    def encode(self, turns, num_image_tokens, with_last_answer, image_placement="as_written"):
        _check_turns(turns)
        tok = self.tokenizer
        bos = [] if tok.bos_token_id is None else [tok.bos_token_id]
        ids, labels = list(bos), [IGNORE] * len(bos)
        last = len(turns) - 1
        for i, turn in enumerate(turns):
            if turn["role"] == "user":
                piece = []
                text = place_image(turn["text"], image_placement)
                for j, chunk in enumerate(text.split(IMAGE)):
                    if j:
                        piece += self.image_block(num_image_tokens)
                    piece += text_ids(tok, ("USER: " if j == 0 else "") + chunk)
                piece += text_ids(tok, " ASSISTANT:")
                ids += piece
                labels += [IGNORE] * len(piece)
            else:
                if i == last and not with_last_answer:
                    break
                piece = self.answer_ids(turn["text"]) + [tok.eos_token_id]
                ids += piece
                labels += piece
        return ids, labels

    def answer_ids(self, text: str) -> list[int]:
        return text_ids(self.tokenizer, " " + text)


#: ChatML (Qwen, Yi, many instruction-tuned models), for LLMs whose tokenizer
#: has no template of its own; its turn markers must be in the vocabulary.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

#: Named templates a config can ask for.
NAMED_TEMPLATES = {"chatml": CHATML_TEMPLATE}

#: The turn markers each named template writes: added to a tokenizer that
#: lacks them, so a marker is one token (and the end-of-turn one can stop
#: generation) rather than a few pieces of text.
TEMPLATE_TOKENS = {"chatml": ("<|im_start|>", "<|im_end|>")}


class TemplateFormat(ChatFormat):
    """A Jinja chat template rendered by ``tokenizer.apply_chat_template``.

    Tokenization runs over the whole rendered text (so pieces merge as the
    tokenizer merges them in context) and a token is supervised when it
    starts inside an answer's span.
    """

    def __init__(
        self,
        tokenizer,
        template: str | None = None,
        name: str = "tokenizer",
        image_markup: tuple[str, str] = ("", ""),
    ) -> None:
        super().__init__(tokenizer, image_markup)
        self.template, self.name = template, name
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("chat templates need a fast tokenizer (offsets locate the answers)")
        probe = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
        tokens, starts, spans, text = self._tokens(probe)
        answer_end = text.index("y", spans[0][0]) + 1
        ends = [
            t
            for t, s in zip(tokens, starts, strict=True)
            if self._inside(s, spans) and s >= answer_end
        ]
        if not ends:
            raise ValueError(
                f"chat template {name!r} writes nothing after an answer: the model could "
                "not learn to stop (use a template that ends turns, or chat_template='vicuna')"
            )
        stops = [tokenizer.eos_token_id, ends[0]]
        self.stop_ids = tuple(dict.fromkeys(i for i in stops if i is not None))

    def _render(self, messages: list[dict[str, str]], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages,
            chat_template=self.template,
            tokenize=False,
            add_generation_prompt=generation_prompt,
        )

    def _answer_spans(self, messages: list[dict[str, str]], text: str) -> list[tuple[int, int]]:
        """Character spans of each assistant answer (and its end-of-turn
        tokens, not the whitespace after them) in ``text``."""
        spans = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = self._render(messages[:i], generation_prompt=True)
            upto = self._render(messages[: i + 1], generation_prompt=False)
            if not (upto.startswith(before) and text.startswith(upto)):
                raise ValueError(
                    f"chat template {self.name!r} does not render a conversation as the "
                    "sum of its turns; its answers cannot be located for supervision"
                )
            spans.append((len(before), len(upto.rstrip())))
        return spans

    def _tokens(
        self, messages: list[dict[str, str]], generation_prompt: bool = False
    ) -> tuple[list[int], list[int], list[tuple[int, int]], str]:
        """Ids, the character offset each starts at, the answer spans, the text."""
        text = self._render(messages, generation_prompt)
        spans = [] if generation_prompt else self._answer_spans(messages, text)
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return enc.input_ids, [s for s, _ in enc.offset_mapping], spans, text

    @staticmethod
    def _inside(start: int, spans: list[tuple[int, int]]) -> bool:
        return any(a <= start < b for a, b in spans)

    def encode(self, turns, num_image_tokens, with_last_answer, image_placement="as_written"):
        _check_turns(turns)
        messages = [
            {
                "role": t["role"],
                "content": place_image(t["text"], image_placement)
                if t["role"] == "user"
                else t["text"],
            }
            for t in turns
        ]
        generation = not with_last_answer and messages[-1]["role"] == "assistant"
        if generation:
            messages = messages[:-1]
        tokens, starts, spans, _ = self._tokens(messages, generation_prompt=generation)
        ids, labels = [], []
        for token, start in zip(tokens, starts, strict=True):
            if token == self.image_id:
                block = self.image_block(num_image_tokens)
                ids += block
                labels += [IGNORE] * len(block)
            else:
                ids.append(token)
                labels.append(token if self._inside(start, spans) else IGNORE)
        return ids, labels

    def answer_ids(self, text: str) -> list[int]:
        return list(self._cached_answer(text))

    @functools.lru_cache(maxsize=1 << 12)  # noqa: B019  (one format per model, kept for its life)
    def _cached_answer(self, text: str) -> tuple[int, ...]:
        probe = [{"role": "user", "content": "x"}, {"role": "assistant", "content": text}]
        tokens, starts, spans, _ = self._tokens(probe)
        out = []
        for token, start in zip(tokens, starts, strict=True):
            if self._inside(start, spans):
                if token in self.stop_ids:
                    break
                out.append(token)
        return tuple(out)


def build_chat_format(
    tokenizer, chat_template: str = "auto", image_markup: tuple[str, str] = ("", "")
) -> ChatFormat:
    """``"auto"``: the tokenizer's own template when it has one, else Vicuna;
    ``"vicuna"``; a name in :data:`NAMED_TEMPLATES` (``"chatml"``); or a Jinja
    template string. ``image_markup``: see :class:`ChatFormat`."""
    if chat_template == "auto":
        own = getattr(tokenizer, "chat_template", None)
        if isinstance(own, str) and own:
            return TemplateFormat(tokenizer, None, "tokenizer", image_markup)
        return VicunaFormat(tokenizer, image_markup)
    if chat_template == "vicuna":
        return VicunaFormat(tokenizer, image_markup)
    if chat_template in NAMED_TEMPLATES:
        return TemplateFormat(
            tokenizer, NAMED_TEMPLATES[chat_template], chat_template, image_markup
        )
    if "{%" in chat_template or "{{" in chat_template:
        return TemplateFormat(tokenizer, chat_template, "custom", image_markup)
    raise ValueError(
        f"chat_template must be 'auto', 'vicuna', one of {sorted(NAMED_TEMPLATES)} or a "
        f"Jinja template, got {chat_template!r}"
    )


def truncate(
    ids: list[int], labels: list[int], max_length: int | None, image_id: int, sample_id: str
) -> tuple[list[int], list[int], bool]:
    """Cut a training conversation to ``max_length`` tokens from the end.
    Image placeholders are never cut (the model could not place the image):
    a limit that would cut them is an error naming the sample."""
    if max_length is None or len(ids) <= max_length:
        return ids, labels, False
    if image_id in ids[max_length:]:
        raise ValueError(
            f"sample {sample_id}: max_length={max_length} would cut its image placeholders "
            f"({len(ids)} tokens with the image); raise max_length or shorten the prompt"
        )
    return ids[:max_length], labels[:max_length], True
