"""Metrics (mmengine ``BaseMetric``s) with explicit protocols."""

from .benchmarks import GRESMetric, InteractiveSegMetric, LVISGroundAR, POPEMetric, yes_no
from .captions import REGMetric
from .collectives import TokenCollectiveMetric, collective_scores
from .fovd import FOVDMetric, assign_classes, hashing_embed
from .grounding import RECMetric, RESMetric, rec_iou, union_mask
from .proposals import CodebookUsage, ProposalRecall, recalled

__all__ = [
    "CodebookUsage",
    "FOVDMetric",
    "GRESMetric",
    "InteractiveSegMetric",
    "LVISGroundAR",
    "POPEMetric",
    "ProposalRecall",
    "RECMetric",
    "REGMetric",
    "RESMetric",
    "TokenCollectiveMetric",
    "assign_classes",
    "collective_scores",
    "hashing_embed",
    "rec_iou",
    "recalled",
    "union_mask",
    "yes_no",
]
