"""Referring codecs. Each module registers one codec in ``CODECS``."""

from .base import NEEDS, Codec, ModelView, Processor, Rendered
from .gnd_query import GndQueryCodec, GndQueryProcessor
from .grid_offset.codec import GridOffsetCodec, GridOffsetProcessor
from .region_proxy import RegionProxyCodec, RegionProxyProcessor
from .text_coords import TextCoordsCodec, TextCoordsProcessor
from .token_collective.codec import TokenCollectiveCodec, TokenCollectiveProcessor
from .trp.codec import TrpCodec, TrpProcessor

__all__ = [
    "NEEDS",
    "Codec",
    "GndQueryCodec",
    "GndQueryProcessor",
    "GridOffsetCodec",
    "GridOffsetProcessor",
    "ModelView",
    "Processor",
    "RegionProxyCodec",
    "RegionProxyProcessor",
    "Rendered",
    "TextCoordsCodec",
    "TextCoordsProcessor",
    "TokenCollectiveCodec",
    "TokenCollectiveProcessor",
    "TrpCodec",
    "TrpProcessor",
]
