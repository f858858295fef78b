"""Metrics (mmengine ``BaseMetric``s) with explicit protocols."""

from .benchmarks import GRESMetric, InteractiveSegMetric, LVISGroundAR, POPEMetric, yes_no
from .captions import REGMetric
from .grounding import RECMetric, RESMetric, rec_iou, union_mask
from .proposals import ProposalRecall, recalled

__all__ = [
    "GRESMetric",
    "InteractiveSegMetric",
    "LVISGroundAR",
    "POPEMetric",
    "ProposalRecall",
    "RECMetric",
    "REGMetric",
    "RESMetric",
    "rec_iou",
    "recalled",
    "union_mask",
    "yes_no",
]
