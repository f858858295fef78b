"""An offline word-level tokenizer for the embedded ShapesRef default.

No tokenizer can be downloaded at run time, so the tiny preset builds one from
ShapesRef's closed vocabulary: whole words (with a leading-space ``▁`` form),
and single characters (``##``-continued, WordPiece style) as a fallback so any
ASCII text encodes without ``<unk>``. Coordinates are spelled digit by digit, as
Llama does. Decoding is byte-exact for ASCII text. Real models use their own tokenizer from a local directory.
"""

from __future__ import annotations

import re
import string

from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers
from tokenizers.models import WordPiece
from transformers import PreTrainedTokenizerFast

from ..data.shapesref import vocabulary
from ..data.tasks import NO_TARGET_ANSWER, TASK_TEMPLATES
from ..structures import IMAGE

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPACE = "▁"
CHAT_WORDS = ("USER", "ASSISTANT")


def _template_words() -> set[str]:
    text = " ".join(q + " " + a for q, a in TASK_TEMPLATES.values()) + " " + NO_TARGET_ANSWER
    text = re.sub(r"\{[^}]*\}|<image>", " ", text)
    return set(re.findall(r"[A-Za-z]+", text))


def build_shapesref_tokenizer(extra_words: tuple[str, ...] = ()) -> PreTrainedTokenizerFast:
    """Deterministic word-level tokenizer covering all ShapesRef text.

    ``extra_words`` (a codec's syntax words) come after the base vocabulary, so
    the ids of every base token are the same with or without them.
    """
    words = sorted(set(vocabulary()) | _template_words() | set(CHAT_WORDS))
    chars = list(string.ascii_letters + string.digits + string.punctuation)
    pieces = [PAD, BOS, EOS, UNK, IMAGE, SPACE, "\n"]
    pieces += [SPACE + w for w in words] + words + chars + ["##" + c for c in chars]
    pieces += [p for w in extra_words for p in (SPACE + w, w)]
    vocab = {p: i for i, p in enumerate(dict.fromkeys(pieces))}
    tok = Tokenizer(WordPiece(vocab, unk_token=UNK, continuing_subword_prefix="##"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex("\n"), behavior="isolated"),
            pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="never"),
            pre_tokenizers.Punctuation("isolated"),
            pre_tokenizers.Digits(individual_digits=True),
        ]
    )
    tok.decoder = decoders.Sequence(
        [decoders.Replace("##", ""), decoders.Metaspace(replacement=SPACE, prepend_scheme="never")]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        extra_special_tokens={"image_token": IMAGE},
    )
