"""Metrics (mmengine ``BaseMetric``s) with explicit protocols."""

from .grounding import RECMetric, RESMetric, rec_iou, union_mask

__all__ = ["RECMetric", "RESMetric", "rec_iou", "union_mask"]
