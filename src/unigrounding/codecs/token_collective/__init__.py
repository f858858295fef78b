"""``token_collective``: ClawMachine's token collectives — the codec and the
per-sample state its ``prepare`` records, its patch lattice and region
sampler, the visual tokenizer (VQ layer) and that tokenizer's own training
stage, the collectives' metric (eq. 1) and the tokenizer's codebook usage."""

from .codec import ImageCodes, TokenCollectiveCodec, TokenCollectiveProcessor, mount
from .metrics import CodebookUsage, TokenCollectiveMetric, collective_scores
from .mounting import PatchLattice
from .quantizer import VisualQuantizer
from .quantizer_pretrain import QuantizerPretrainer
from .sampler import RegionSampler, SampledRegion, convex_box, fuzzy_cells, hull_mask, retrieve

__all__ = [
    "CodebookUsage",
    "ImageCodes",
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
