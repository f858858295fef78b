"""Referring codecs. Each module registers one codec in ``CODECS``."""

from .base import NEEDS, Codec, ModelView, Processor, Rendered
from .text_coords import TextCoordsCodec, TextCoordsProcessor

__all__ = [
    "NEEDS",
    "Codec",
    "ModelView",
    "Processor",
    "Rendered",
    "TextCoordsCodec",
    "TextCoordsProcessor",
]
