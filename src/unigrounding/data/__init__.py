"""Codec-neutral datasets and the packing pipeline."""

from .pipeline import PackGroundingSample, collate, image_tensor, load_rgb
from .refcoco import (
    AnnotationError,
    CocoCellLabelDataset,
    RefCOCODataset,
    ShapesRefDataset,
    read_instances,
    read_refs,
)
from .shapesref import write_shapesref

__all__ = [
    "AnnotationError",
    "CocoCellLabelDataset",
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
