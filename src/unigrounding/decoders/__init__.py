"""Decoders shared by codecs (registered in ``DECODERS``)."""

from .colour_region import ColourRegionGrowing
from .query_decoders import BoxDecoder, KeypointDecoder, MaskDecoder, QueryDecoder

__all__ = ["BoxDecoder", "ColourRegionGrowing", "KeypointDecoder", "MaskDecoder", "QueryDecoder"]
