"""Codec-neutral datasets and the packing pipeline."""

from .coco import CocoCellLabelDataset, CocoDetectionDataset
from .flickr30k import Flickr30kEntitiesDataset
from .importers import LLaVAShikraDataset, SwiftGroundingDataset
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
from .visual_genome import VisualGenomeRegionDataset

__all__ = [
    "AnnotationError",
    "CocoCellLabelDataset",
    "CocoDetectionDataset",
    "Flickr30kEntitiesDataset",
    "LLaVAShikraDataset",
    "LLaVAShikraDataset",
    "LVISGroundDataset",
    "PackGroundingSample",
    "RefCOCODataset",
    "ShapesRefDataset",
    "SwiftGroundingDataset",
    "SwiftGroundingDataset",
    "VisualGenomeRegionDataset",
    "collate",
    "image_tensor",
    "load_rgb",
    "read_instances",
    "read_refs",
    "write_shapesref",
]
