"""``token_collective``: ClawMachine's token collectives — the codec, its
patch lattice and region sampler, the visual tokenizer (VQ layer) and that
tokenizer's own training stage."""

from .codec import TokenCollectiveCodec, TokenCollectiveProcessor, mount
from .mounting import PatchLattice
from .quantizer import VisualQuantizer
from .quantizer_pretrain import QuantizerPretrainer
from .sampler import RegionSampler, SampledRegion, convex_box, fuzzy_cells, hull_mask, retrieve

__all__ = [
    "PatchLattice",
    "QuantizerPretrainer",
    "RegionSampler",
    "SampledRegion",
    "TokenCollectiveCodec",
    "TokenCollectiveProcessor",
    "VisualQuantizer",
    "convex_box",
    "fuzzy_cells",
    "hull_mask",
    "mount",
    "retrieve",
]
