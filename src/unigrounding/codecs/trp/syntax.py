"""TRP text: serialising phrase-unit-``<REF>`` triplets and reading them back.

REF-VLM section 3.1 writes a referent as ``<Phrase>two capybaras</Phrase>``
followed by a parenthesised unit block ``(<Unit>box</Unit>[0]<REF>[1]<REF>)``:
the concept, the decoding type(s) and one ``<REF>`` per instance, each
preceded by its index. Several units share the instances
(``<Unit>box, keypoint</Unit>``): every ``<REF>`` is decoded by each listed
unit's decoder. Phrases nest (``<Phrase><Phrase>dog</Phrase> in
<Phrase>park</Phrase></Phrase>``); a ``<REF>`` belongs to the innermost phrase
that is open or was closed last.

The VD-CoT block (section 3.2) precedes the answer inside ``<Task>`` tags and
states, per triplet, its name, unit and number of instances. The paper's
Table 2 gives the steps but not the wording; ours is
``<Task>Unit decode (True). name: red circle, unit: box, number: 1.</Task>``
(one ``name ... number`` clause per triplet, ``;``-separated) and
``<Task>Unit decode (False).</Task>`` when nothing is decoded.

:func:`parse_triplets` pairs start/end tokens with a stack and groups each run
of ``<REF>`` into one triplet. It never raises: unbalanced tags, a ``<REF>``
with no unit, truncation and runaway repetition are skipped and counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PHRASE_START, PHRASE_END = "<Phrase>", "</Phrase>"
UNIT_START, UNIT_END = "<Unit>", "</Unit>"
TASK_START, TASK_END = "<Task>", "</Task>"
REF, VPT = "<REF>", "[VPT]"
SPECIAL_TOKENS = (PHRASE_START, PHRASE_END, UNIT_START, UNIT_END, REF, TASK_START, TASK_END, VPT)
#: Plain words of the VD-CoT block (a word-level tokenizer keeps them whole).
WORDS = ("Unit", "decode", "True", "False", "name", "unit", "number", *("box", "mask", "keypoint"))

_TAG = re.compile(
    "|".join(
        re.escape(t)
        for t in (PHRASE_START, PHRASE_END, UNIT_START, UNIT_END, REF, TASK_START, TASK_END)
    )
)


@dataclass
class Triplet:
    """One phrase-unit-``<REF>`` group of an answer.

    ``ref_positions`` are the ordinal numbers (0-based, in order of appearance
    in the answer) of this triplet's ``<REF>`` tokens, so the hidden state of
    each can be found among the generated tokens.
    """

    phrase: str
    units: list[str]
    ref_positions: list[int] = field(default_factory=list)


def unit_block(units: list[str], count: int) -> str:
    """``(<Unit>box</Unit>[0]<REF>[1]<REF>)``."""
    refs = "".join(f"[{i}]{REF}" for i in range(count))
    return f"({UNIT_START}{', '.join(units)}{UNIT_END}{refs})"


def serialize_triplet(phrase: str, units: list[str], count: int) -> str:
    """``<Phrase>phrase</Phrase>(<Unit>...</Unit>[0]<REF>...)``."""
    return f"{PHRASE_START}{phrase}{PHRASE_END}{unit_block(units, count)}"


def vd_cot(triplets: list[tuple[str, list[str], int]]) -> str:
    """The VD-CoT block for ``(name, units, number)`` triplets (empty: no decoding)."""
    if not triplets:
        return f"{TASK_START}Unit decode (False).{TASK_END}"
    clauses = "; ".join(
        f"name: {name}, unit: {', '.join(units)}, number: {n}" for name, units, n in triplets
    )
    return f"{TASK_START}Unit decode (True). {clauses}.{TASK_END}"


def parse_triplets(text: str, known_units: tuple[str, ...]) -> tuple[list[Triplet], int]:
    """Triplets of a generated answer and the number of failures.

    A failure is an unmatched or misplaced tag, a unit block naming no known
    unit, or a ``<REF>`` outside a unit block. Everything inside ``<Task>`` tags
    (the VD-CoT) is skipped. ``<REF>`` ordinals count every ``<REF>`` of
    ``text``, used or not, so they index the generated hidden states directly.
    """
    body = text
    triplets: list[Triplet] = []
    failures = 0
    phrases: list[int] = []  # stack of start offsets of open phrases
    last_phrase = ""
    units: list[str] | None = None  # units of the block being read
    unit_open: int | None = None
    current: Triplet | None = None
    ref_count = 0
    in_task = False
    for tag in _TAG.finditer(body):
        kind = tag.group(0)
        if kind in (TASK_START, TASK_END):
            in_task = kind == TASK_START
        elif in_task:
            ref_count += kind == REF
        elif kind == PHRASE_START:
            phrases.append(tag.end())
            current = None
        elif kind == PHRASE_END:
            if not phrases:
                failures += 1
                continue
            start = phrases.pop()
            last_phrase = _TAG.sub("", body[start : tag.start()]).strip()
            current = None
        elif kind == UNIT_START:
            if unit_open is not None:
                failures += 1  # a unit tag never closed
            unit_open, current = tag.end(), None
        elif kind == UNIT_END:
            if unit_open is None:
                failures += 1
                continue
            names = [u.strip() for u in body[unit_open : tag.start()].split(",")]
            units = [u for u in names if u in known_units]
            if not units:
                failures += 1
                units = None
            unit_open = None
        else:  # REF
            position, ref_count = ref_count, ref_count + 1
            if units is None or unit_open is not None:
                failures += 1
                continue
            if current is None:
                current = Triplet(last_phrase, list(units))
                triplets.append(current)
            current.ref_positions.append(position)
    failures += len(phrases) + (unit_open is not None)
    return triplets, failures
