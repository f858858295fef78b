"""``token_collective``: ClawMachine's token collectives — the codec, its
patch lattice and region sampler, the visual tokenizer (VQ layer) and that
tokenizer's own training stage, and the collectives' metric (eq. 1)."""

from .codec import TokenCollectiveCodec, TokenCollectiveProcessor, mount
from .metrics import TokenCollectiveMetric, collective_scores
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
    "TokenCollectiveMetric",
    "TokenCollectiveProcessor",
    "VisualQuantizer",
    "collective_scores",
    "convex_box",
    "fuzzy_cells",
    "hull_mask",
    "mount",
    "retrieve",
]
