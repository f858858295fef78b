"""Building blocks shared by models, codecs, decoders and proposers. A leaf:
it imports nothing of this library but ``structures``."""

from .position import sincos_2d
from .pyramid import FeaturePyramid
from .sequences import IGNORE, pad_batch

__all__ = ["IGNORE", "FeaturePyramid", "pad_batch", "sincos_2d"]
