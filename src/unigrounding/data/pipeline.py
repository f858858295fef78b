"""Turn a dataset record into model input: load the image, record its way to
the model input (a padded square, or Qwen2.5-VL's multiples of 28) as a
:class:`Frame`, decode geometry into :class:`RefTargets` and pack a
:class:`GroundingDataSample`. Nothing here depends on the codec."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.registry import FUNCTIONS
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..registry import TRANSFORMS
from ..structures import (
    INPUT_FRAMES,
    QWEN2_5_VL_PIXELS,
    Frame,
    GroundingDataSample,
    RefTargets,
    input_frame,
    rle_decode,
)

MASK_UNITS = ("mask", "scribble", "point")  # point / scribble prompts are placed inside the mask


def load_rgb(image: str | Path | Image.Image | np.ndarray, where: str = "image") -> Image.Image:
    """An RGB PIL image from a path, PIL image or ``(H, W, 3)`` array, turned
    upright by its EXIF orientation (``ImageOps.exif_transpose``): every image
    the library reads comes through here, so geometry is always in the frame a
    viewer shows.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for one
    PIL cannot read, both naming ``where``."""
    if isinstance(image, np.ndarray):
        return Image.fromarray(image.astype(np.uint8)).convert("RGB")
    if isinstance(image, Image.Image):
        return ImageOps.exif_transpose(image).convert("RGB")
    with _reading(image, where) as img:
        return ImageOps.exif_transpose(img).convert("RGB")


def image_hw(path: str | Path, where: str = "image") -> tuple[int, int]:
    """``(height, width)`` of the image :func:`load_rgb` reads from ``path``,
    from the file's header where the format allows (for a PNG, Pillow decodes
    the file to find EXIF stored after the pixels). Errors as :func:`load_rgb`."""
    with _reading(path, where) as img:
        width, height = img.size
        # orientations 5-8 transpose the stored pixels (exif_transpose reads the
        # same tag), so the upright image has width and height swapped
        if img.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):
            width, height = height, width
    return height, width


@contextmanager
def _reading(path: str | Path, where: str) -> Iterator[Image.Image]:
    """``path`` opened with PIL; errors at opening or while the block decodes
    become the ones :func:`load_rgb` documents."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{where}: image file not found: {path}")
    try:
        with Image.open(path) as img:
            yield img
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{where}: unreadable image file {path} ({exc})") from exc


def image_tensor(img: Image.Image) -> torch.Tensor:
    """``(3, H, W)`` uint8 tensor of an RGB PIL image."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def needs_masks(records: list[dict]) -> bool:
    """Whether the records' masks are decoded when packed: when any record's
    unit is one of :data:`MASK_UNITS`."""
    return any(r.get("unit") in MASK_UNITS for r in records)


def build_refs(
    records: list[dict], hw: tuple[int, int], where: str, with_masks: bool
) -> RefTargets:
    """RefTargets from dataset records (``box``, ``group``, ``unit``, ``phrase``,
    optional ``segmentation``). Masks are decoded only when ``with_masks``."""
    if not records:
        return RefTargets.empty()
    masks = None
    if with_masks:
        masks = []
        for r in records:
            m = rle_decode(r["segmentation"], *hw, where=f"{where} ann_id={r.get('ann_id')}")
            if not m.any():
                raise ValueError(f"{where} ann_id={r.get('ann_id')}: empty mask")
            masks.append(m)
        masks = np.stack(masks)
    points = None
    if any(r["unit"] in ("point", "scribble") for r in records):
        points = [
            _prompt_points(r, masks[i] if masks is not None else None)
            for i, r in enumerate(records)
        ]
    return RefTargets.build(
        [r["box"] for r in records],
        phrases=[r.get("phrase", "") for r in records],
        units=[r["unit"] for r in records],
        group_ids=[r["group"] for r in records],
        masks=masks,
        points=points,
        where=f"{where}",
    )


def _prompt_points(record: dict, mask: np.ndarray | None) -> np.ndarray:
    """Deterministic point / scribble prompts inside the object.

    A point is the mask pixel nearest the mask's centroid (the centroid itself
    may fall outside a concave shape); a scribble is the horizontal run of mask
    pixels through that point. Without a mask, the box centre is used.
    """
    if mask is None:
        x1, y1, x2, y2 = record["box"]
        return np.array([[(x1 + x2) / 2, (y1 + y2) / 2]])
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    k = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    py, px = ys[k], xs[k]
    if record["unit"] == "point":
        return np.array([[px + 0.5, py + 0.5]])
    row = xs[ys == py]
    return np.array([[row.min() + 0.5, py + 0.5], [row.max() + 0.5, py + 0.5]])


def _check_frame(frame: str, image_size: int | None) -> None:
    if frame not in INPUT_FRAMES:
        raise ValueError(f"frame must be one of {INPUT_FRAMES}, got {frame!r}")
    if frame != "qwen2_5_vl" and image_size is None:
        raise ValueError(f"frame={frame!r} needs image_size")


@TRANSFORMS.register_module()
class PackGroundingSample:
    """Load the image, bring it to the model's input frame and pack.

    ``frame``: ``"padded_square"`` (pad to a centred square, resize to
    ``image_size``: the assembled backbone's input, LLaVA's ``expand2square``),
    ``"resized_square"`` (a plain resize to ``image_size``, GETok's) or
    ``"qwen2_5_vl"`` (resize to multiples of 28 within ``pixels``, no
    padding: :func:`~unigrounding.structures.smart_resize_frame`). Either way
    the sample's ``frame`` records the steps, so geometry maps back exactly.

    Output: ``{"inputs": (3, H, W) uint8, "data_samples": GroundingDataSample}``.

    ``cache_images`` keeps every image's model input in memory once decoded
    (``3 * S * S`` bytes each: 12 KB at 64 px): worth it for small images seen
    many times, as in the tiny CPU preset, where decoding is most of the data
    time; at real sizes (600 KB at 448 px) it is the user's call.
    """

    def __init__(
        self,
        image_size: int | None = None,
        fill: tuple[int, int, int] = (0, 0, 0),
        cache_images: bool = False,
        frame: str = "padded_square",
        pixels: tuple[int, int] = QWEN2_5_VL_PIXELS,
    ) -> None:
        _check_frame(frame, image_size)
        self.image_size, self.fill, self.frame = image_size, tuple(fill), frame
        self.pixels = tuple(pixels)
        self._inputs: dict[str, tuple[tuple[int, int], torch.Tensor]] | None = (
            {} if cache_images else None
        )

    def input_frame(self, hw: tuple[int, int]) -> Frame:
        """The steps from an ``(H, W)`` image to the model input."""
        return input_frame(self.frame, hw, self.image_size, self.fill, self.pixels)

    def _input(self, path: str, where: str) -> tuple[tuple[int, int], torch.Tensor]:
        """The image's original ``(H, W)`` and its ``(3, H', W')`` model input."""
        if self._inputs is not None and path in self._inputs:
            return self._inputs[path]
        img = load_rgb(path, where)
        hw = (img.height, img.width)
        entry = hw, image_tensor(self.input_frame(hw).image_to_input(img))
        if self._inputs is not None:
            self._inputs[path] = entry
        return entry

    def __call__(self, record: dict) -> dict:
        where = f"{record.get('source', record.get('image_path'))} sample {record.get('sample_id')}"
        hw, inputs = self._input(record["image_path"], where)
        if tuple(record.get("ori_shape", hw)) != hw:
            raise ValueError(
                f"{where}: image is {hw}, annotation says {tuple(record['ori_shape'])}"
            )
        frame = self.input_frame(hw)
        sample = GroundingDataSample(
            metainfo={
                "sample_id": record["sample_id"],
                "image_path": record["image_path"],
                "ori_shape": hw,
                "img_shape": frame.input_hw,
                "frame": frame,
                "task": record["task"],
                "expression": record.get("expression", ""),
                **record.get("metainfo", {}),  # dataset-specific (e.g. LVIS category)
            }
        )
        gt, prompts = record.get("gt", []), record.get("prompts", [])
        sample.gt_refs = build_refs(gt, hw, where, needs_masks(gt))
        sample.prompt_refs = build_refs(prompts, hw, where, needs_masks(prompts))
        sample.conversation = list(record["conversation"])
        return {"inputs": inputs.clone(), "data_samples": sample}


@FUNCTIONS.register_module(name="grounding_collate")
def collate(batch: list[dict]) -> dict:
    """Stack images; keep samples as a list (mmengine ``collate_fn``). Inputs
    of different sizes (frames without padding, e.g. ``qwen2_5_vl``) are
    zero-padded at the bottom and right to the largest; each sample's own
    size stays in its ``frame.input_hw``."""
    images = [b["inputs"] for b in batch]
    height = max(i.shape[1] for i in images)
    width = max(i.shape[2] for i in images)
    return {
        "inputs": torch.stack(
            [F.pad(i, (0, width - i.shape[2], 0, height - i.shape[1])) for i in images]
        ),
        "data_samples": [b["data_samples"] for b in batch],
    }


@TRANSFORMS.register_module()
class PackCellLabels:
    """Image + per-cell targets on the model input's lattice of ``cell``-pixel
    cells (the image-token grid of a tower of that stride).

    For the topmost object whose mask covers a cell centre (objects are painted
    in annotation order, so later, drawn-on-top ones win): its attribute classes
    (0 = background), ``foreground`` and ``box_deltas`` — the distances from the
    cell centre to the object's box sides (left, top, right, bottom), as
    fractions of the input's width and height (FCOS-style; 0 on background).
    ``frame``, ``image_size``, ``fill`` and ``pixels``: the input frame, as for
    :class:`PackGroundingSample`.
    """

    def __init__(
        self,
        cell: int,
        image_size: int | None = None,
        frame: str = "padded_square",
        fill: tuple[int, int, int] = (0, 0, 0),
        pixels: tuple[int, int] = QWEN2_5_VL_PIXELS,
    ) -> None:
        _check_frame(frame, image_size)
        self.cell, self.image_size, self.frame = cell, image_size, frame
        self.fill, self.pixels = tuple(fill), tuple(pixels)

    def __call__(self, record: dict) -> dict:
        where = f"{record['source']} image {record['image_id']}"
        img = load_rgb(record["image_path"], where)
        hw = (img.height, img.width)
        frame = input_frame(self.frame, hw, self.image_size, self.fill, self.pixels)
        (h, w), cell = frame.input_hw, self.cell
        if h % cell or w % cell:
            raise ValueError(f"{where}: a {h}x{w} input is not a lattice of {cell}-pixel cells")
        rows, cols = h // cell, w // cell
        labels = {k: torch.zeros(rows, cols, dtype=torch.long) for k in record["attributes"]}
        labels["foreground"] = torch.zeros(rows, cols, dtype=torch.bool)
        labels["box_deltas"] = torch.zeros(rows, cols, 4)
        cy, cx = torch.meshgrid(
            (torch.arange(rows, dtype=torch.float32) + 0.5) * cell,
            (torch.arange(cols, dtype=torch.float32) + 0.5) * cell,
            indexing="ij",
        )
        sides = torch.tensor([w, h, w, h], dtype=torch.float32)
        centres = (slice(cell // 2, None, cell), slice(cell // 2, None, cell))
        for obj in record["objects"]:
            mask = frame.mask_to_input(
                rle_decode(obj["segmentation"], *hw, where=f"{where} ann_id={obj['id']}")
            )
            covered = mask[centres]
            for k in record["attributes"]:
                labels[k][covered] = obj["labels"][k]
            x1, y1, x2, y2 = frame.boxes_to_input(obj["box"])[0].tolist()
            deltas = torch.stack([cx - x1, cy - y1, x2 - cx, y2 - cy], dim=-1) / sides
            labels["box_deltas"][covered] = deltas[covered]
            labels["foreground"] |= covered
        return {"inputs": image_tensor(frame.image_to_input(img)), "data_samples": labels}
