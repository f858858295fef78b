"""Decoders shared by codecs (registered in ``DECODERS``)."""

from .colour_region import ColourRegionGrowing
from .grounding_query import GroundingQueryDecoder
from .query_decoders import BoxDecoder, KeypointDecoder, MaskDecoder, QueryDecoder

__all__ = [
    "BoxDecoder",
    "ColourRegionGrowing",
    "GroundingQueryDecoder",
    "KeypointDecoder",
    "MaskDecoder",
    "QueryDecoder",
]
