"""Geometry helpers in the canonical frame: absolute pixel ``xyxy`` boxes (float),
boolean masks and ``(K, 2)`` xy point arrays, all in original-image pixels.

Every function that validates names the offending sample/field in its error, so a
corrupt annotation can be traced back to the file it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torchvision.ops import box_iou, masks_to_boxes


class GeometryError(ValueError):
    """Raised for degenerate or malformed geometry; the message names its source."""


def validate_box(box: Sequence[float], where: str) -> np.ndarray:
    """Return ``box`` as a float ``(4,)`` xyxy array, or raise naming ``where``.

    A box must be finite with ``x2 > x1`` and ``y2 > y1``; a zero-area box cannot be
    scored by IoU and is rejected instead of being silently clipped.
    """
    arr = np.asarray(box, dtype=np.float64).reshape(-1)
    if arr.shape != (4,) or not np.all(np.isfinite(arr)):
        raise GeometryError(f"{where}: box must be 4 finite numbers, got {list(box)!r}")
    if arr[2] <= arr[0] or arr[3] <= arr[1]:
        raise GeometryError(f"{where}: degenerate box {arr.tolist()} (needs x2 > x1 and y2 > y1)")
    return arr


def xywh_to_xyxy(box: Sequence[float]) -> list[float]:
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def paired_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of ``a[i]`` with ``b[i]`` (``(N, 4)`` each), 0 where the union is empty."""
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    union = box_area(a) + box_area(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def scoring_boxes(boxes: torch.Tensor | np.ndarray | Sequence) -> torch.Tensor:
    """``boxes`` as float64 for scoring. A float32 value (as ``RefTargets``
    stores boxes) is read as the shortest decimal that rounds to it, i.e. the
    number an annotation or predictions file held: a plain cast would keep
    float32's rounding, and ``[0.1, 0, 0.65, 1]`` against ``[0.1, 0, 1.2, 1]``
    would score IoU 0.49999996 instead of 0.5 (a miss at ``>= 0.5``). Float64
    and integer inputs are taken as they are."""
    t = torch.as_tensor(boxes if isinstance(boxes, torch.Tensor) else np.asarray(boxes))
    if t.dtype == torch.float64 or not t.is_floating_point():
        return t.double()
    # numpy prints float32 as its shortest round-trip decimal
    return torch.from_numpy(t.detach().cpu().float().numpy().astype(str).astype(np.float64))


def metric_box_iou(
    a: torch.Tensor | np.ndarray | Sequence,
    b: torch.Tensor | np.ndarray | Sequence,
    paired: bool = False,
) -> torch.Tensor:
    """Box IoU as metrics compute it: float64 from :func:`scoring_boxes`.
    ``(N, M)`` over all pairs of ``(N, 4)`` ``a`` and ``(M, 4)`` ``b``, or
    ``(N,)`` of ``a[i]`` with ``b[i]`` when ``paired``."""
    a, b = scoring_boxes(a).reshape(-1, 4), scoring_boxes(b).reshape(-1, 4)
    return paired_box_iou(a, b) if paired else box_iou(a, b)


def points_in_mask(points: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(m,)`` bool: whether each point lands on a set pixel (outside the image: no)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    h, w = mask.shape
    cols, rows = np.floor(pts[:, 0]).astype(int), np.floor(pts[:, 1]).astype(int)
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    hit = np.zeros(len(pts), dtype=bool)
    hit[inside] = mask[rows[inside], cols[inside]]
    return hit


def mask_to_box(mask: np.ndarray | torch.Tensor) -> list[float] | None:
    """Tight xyxy box around a boolean ``(H, W)`` mask along pixel edges (a
    one-pixel mask at ``(x, y)`` gives ``[x, y, x + 1, y + 1]``), or ``None`` if
    the mask is empty."""
    m = torch.as_tensor(mask, dtype=torch.bool)
    if not m.any():
        return None  # masks_to_boxes gives [0, 0, 0, 0], which the +1 below makes a real box
    x1, y1, x2, y2 = masks_to_boxes(m[None])[0].tolist()
    # masks_to_boxes returns the first and last pixel indices; our boxes bound
    # pixel areas, so the far edge lies one past the last pixel (else a one-pixel
    # mask would be a zero-area box that validate_box rejects)
    return [x1, y1, x2 + 1.0, y2 + 1.0]


def box_to_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """Boolean mask of the pixels whose centres lie inside ``box``."""
    x1, y1, x2, y2 = box
    xs = np.arange(width) + 0.5
    ys = np.arange(height) + 0.5
    inside_x = (xs >= x1) & (xs <= x2)
    inside_y = (ys >= y1) & (ys <= y2)
    return inside_y[:, None] & inside_x[None, :]


def rle_encode(mask: np.ndarray) -> dict:
    """COCO RLE (``counts`` as str, JSON-safe) of a boolean ``(H, W)`` mask."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def rle_decode(segmentation: dict | list, height: int, width: int, where: str) -> np.ndarray:
    """Boolean ``(H, W)`` mask from a COCO segmentation (RLE, uncompressed RLE or polygons)."""
    try:
        if isinstance(segmentation, list):
            rles = mask_utils.frPyObjects(segmentation, height, width)
            rle = mask_utils.merge(rles)
        elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = dict(segmentation)
            if isinstance(rle.get("counts"), str):
                rle["counts"] = rle["counts"].encode("ascii")
        mask = mask_utils.decode(rle).astype(bool)
    except Exception as exc:  # pycocotools raises bare TypeErrors/ValueErrors on bad input
        raise GeometryError(f"{where}: unreadable segmentation ({exc})") from exc
    if mask.shape != (height, width):
        raise GeometryError(f"{where}: mask shape {mask.shape} != image shape {(height, width)}")
    return mask


def mask_iou(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Intersection and union pixel counts of two boolean masks."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    return int(np.logical_and(a, b).sum()), int(np.logical_or(a, b).sum())


def mask_iou_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks (:func:`mask_iou`'s counts), 0 for an empty union."""
    inter, union = mask_iou(a, b)
    return inter / union if union else 0.0


# User-facing prompt geometry (``ug.Box(...)`` etc.), all in original-image pixels.


@dataclass(frozen=True)
class Box:
    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        validate_box((self.x1, self.y1, self.x2, self.y2), "Box")

    @property
    def xyxy(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class Scribble:
    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            raise GeometryError("Scribble: needs at least 2 points")


@dataclass(frozen=True)
class Mask:
    array: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        if np.asarray(self.array).ndim != 2 or not np.asarray(self.array).any():
            raise GeometryError("Mask: must be a non-empty 2-D boolean array")
