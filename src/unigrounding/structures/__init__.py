"""Canonical geometry, recorded transforms and typed samples."""

from .frame import Crop, Frame, Pad, Resize, square_resize_frame
from .geometry import (
    Box,
    GeometryError,
    Mask,
    Point,
    Scribble,
    box_to_mask,
    mask_iou,
    mask_to_box,
    paired_box_iou,
    points_in_mask,
    rle_decode,
    rle_encode,
    validate_box,
    xywh_to_xyxy,
)
from .sample import IMAGE, SLOT_PATTERN, UNITS, GroundingDataSample, RefTargets

__all__ = [
    "IMAGE",
    "SLOT_PATTERN",
    "UNITS",
    "Box",
    "Crop",
    "Frame",
    "GeometryError",
    "GroundingDataSample",
    "Mask",
    "Pad",
    "Point",
    "RefTargets",
    "Resize",
    "Scribble",
    "box_to_mask",
    "mask_iou",
    "mask_to_box",
    "paired_box_iou",
    "points_in_mask",
    "rle_decode",
    "rle_encode",
    "square_resize_frame",
    "validate_box",
    "xywh_to_xyxy",
]
