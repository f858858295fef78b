"""Decoders shared by codecs (registered in ``DECODERS``)."""

from .colour_region import ColourRegionGrowing

__all__ = ["ColourRegionGrowing"]
