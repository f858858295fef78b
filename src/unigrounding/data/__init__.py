"""Codec-neutral datasets and the packing pipeline."""

from .annotations import AnnotationError, RecordProblem, SampleError
from .base import GroundingDataset
from .coco import CocoCellLabelDataset, CocoDetectionDataset, read_instances
from .flickr30k import Flickr30kEntitiesDataset
from .importers import LLaVAShikraDataset, SwiftGroundingDataset
from .lvis_ground import LVISGroundDataset
from .pipeline import PackGroundingSample, collate, image_tensor, load_rgb
from .refcoco import RefCOCODataset, read_refs
from .shapesref import ShapesRefDataset, write_shapesref
from .visual_genome import VisualGenomeRegionDataset

__all__ = [
    "AnnotationError",
    "CocoCellLabelDataset",
    "CocoDetectionDataset",
    "Flickr30kEntitiesDataset",
    "GroundingDataset",
    "LLaVAShikraDataset",
    "LVISGroundDataset",
    "PackGroundingSample",
    "RecordProblem",
    "RefCOCODataset",
    "SampleError",
    "ShapesRefDataset",
    "SwiftGroundingDataset",
    "VisualGenomeRegionDataset",
    "collate",
    "image_tensor",
    "load_rgb",
    "read_instances",
    "read_refs",
    "write_shapesref",
]
