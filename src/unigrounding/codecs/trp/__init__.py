"""``trp``: REF-VLM's triplet-based referring paradigm (REF-VLM [docs/papers.md])."""

from .codec import TrpCodec, TrpProcessor
from .syntax import SPECIAL_TOKENS, Triplet, parse_triplets, serialize_triplet, vd_cot

__all__ = [
    "SPECIAL_TOKENS",
    "Triplet",
    "TrpCodec",
    "TrpProcessor",
    "parse_triplets",
    "serialize_triplet",
    "vd_cot",
]
