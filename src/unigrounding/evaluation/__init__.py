"""Metrics (mmengine ``BaseMetric``s) with explicit protocols."""

from .benchmarks import GRESMetric, InteractiveSegMetric, LVISGroundAR, POPEMetric, yes_no
from .captions import REGMetric
from .detection import CategoryDetectionMetric, coco_box_map
from .fovd import FOVDMetric, assign_classes, hashing_embed
from .gcg import GCGMetric, normalise_phrase
from .grounding import RECMetric, RESMetric, rec_iou, union_mask
from .proposals import ProposalRecall, recalled

__all__ = [
    "CategoryDetectionMetric",
    "FOVDMetric",
    "GCGMetric",
    "GRESMetric",
    "InteractiveSegMetric",
    "LVISGroundAR",
    "POPEMetric",
    "ProposalRecall",
    "RECMetric",
    "REGMetric",
    "RESMetric",
    "assign_classes",
    "coco_box_map",
    "hashing_embed",
    "normalise_phrase",
    "rec_iou",
    "recalled",
    "union_mask",
    "yes_no",
]
