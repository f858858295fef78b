"""Codec-neutral datasets and the packing pipeline."""

from .coco import CocoCellLabelDataset, CocoDetectionDataset
from .lvis_ground import LVISGroundDataset
from .pipeline import PackGroundingSample, collate, image_tensor, load_rgb
from .refcoco import (
    AnnotationError,
    RefCOCODataset,
    ShapesRefDataset,
    read_instances,
    read_refs,
)
from .shapesref import write_shapesref

__all__ = [
    "AnnotationError",
    "CocoCellLabelDataset",
    "CocoDetectionDataset",
    "LVISGroundDataset",
    "PackGroundingSample",
    "RefCOCODataset",
    "ShapesRefDataset",
    "collate",
    "image_tensor",
    "load_rgb",
    "read_instances",
    "read_refs",
    "write_shapesref",
]
