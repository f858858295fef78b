"""``grid_offset``: GETok's grid and offset tokens (GETok [docs/papers.md])."""

from .codec import REFINE_TEMPLATE, GridOffsetCodec, GridOffsetProcessor
from .data import GridOffsetRefineDataset
from .lattice import DELETE, MOVES, GridLattice, offset_token
from .offsets import (
    POOLS,
    RefineExample,
    box_corner_refinement,
    offset_pools,
    one_step_hit,
    refinement_target,
    refinement_targets,
    sample_refinement,
)
from .points import segment_critical_cells
from .rewards import SemanticPointsReward

__all__ = [
    "DELETE",
    "MOVES",
    "POOLS",
    "REFINE_TEMPLATE",
    "GridLattice",
    "GridOffsetCodec",
    "GridOffsetProcessor",
    "GridOffsetRefineDataset",
    "RefineExample",
    "SemanticPointsReward",
    "box_corner_refinement",
    "offset_pools",
    "offset_token",
    "one_step_hit",
    "refinement_target",
    "refinement_targets",
    "sample_refinement",
    "segment_critical_cells",
]
