"""``token_collective``: ClawMachine's token collectives (``../shared/papers/clawmachine.txt``)."""

from .codec import TokenCollectiveCodec, TokenCollectiveProcessor, mount
from .mounting import PatchLattice
from .sampler import RegionSampler, SampledRegion, convex_box, fuzzy_cells, hull_mask, retrieve

__all__ = [
    "PatchLattice",
    "RegionSampler",
    "SampledRegion",
    "TokenCollectiveCodec",
    "TokenCollectiveProcessor",
    "convex_box",
    "fuzzy_cells",
    "hull_mask",
    "mount",
    "retrieve",
]
