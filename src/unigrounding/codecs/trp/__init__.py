"""``trp``: REF-VLM's triplet-based referring paradigm (``../shared/papers/ref_vlm.txt``)."""

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
