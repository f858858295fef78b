"""ShapesRef: procedurally generated, deterministic referring scenes.

Each scene holds a few coloured shapes (possibly occluding each other) on a noisy
background. Every object gets an exact visible mask and box and at least one
*unambiguous* referring expression (it matches that object and no other). The
data is written in the real datasets' on-disk formats so the real loaders read
it: COCO ``instances.json`` with RLE masks, a RefCOCO-style ``refs(shapesref).json``
and a gRefCOCO-style ``grefs(shapesref).json`` (multi- and no-target expressions).
:class:`ShapesRefDataset` generates it on first use and reads it with the RefCOCO loader.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..registry import DATASETS
from ..structures import mask_to_box, rle_encode
from .refcoco import RefCOCODataset

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 215, 50),
    "purple": (150, 60, 200),
    "white": (235, 235, 235),
}
SIZES = ("small", "big")
POSITIONS = ("left", "right", "top", "bottom")
REFS_FILE = "refs(shapesref).json"
GREFS_FILE = "grefs(shapesref).json"


@dataclass(frozen=True)
class SceneConfig:
    """Scene geometry. Sizes are fractions of the shorter image side.

    The defaults are chosen for the CPU budget: 1-3 objects (a third of the
    scenes need no disambiguation, so localization is learned before binding),
    objects of roughly 1/5 to 1/3 of the padded square, and a non-square canvas
    so the pad-to-square frame is exercised by every run.
    """

    height: int = 60
    width: int = 72
    min_objects: int = 1
    max_objects: int = 3
    small: tuple[float, float] = (0.22, 0.30)
    big: tuple[float, float] = (0.36, 0.46)
    min_visible: float = 0.6


@dataclass(eq=False)  # identity: objects are compared as scene members
class ShapeObject:
    shape: str
    colour: str
    size: str
    mask: np.ndarray  # visible pixels
    box: list[float]  # xyxy of the visible mask

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


def _shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    if shape == "cross":
        t = r / 3
        return [
            (cx - t, cy - r), (cx + t, cy - r), (cx + t, cy - t), (cx + r, cy - t),
            (cx + r, cy + t), (cx + t, cy + t), (cx + t, cy + r), (cx - t, cy + r),
            (cx - t, cy + t), (cx - r, cy + t), (cx - r, cy - t), (cx - t, cy - t),
        ]  # fmt: skip
    return None  # circle: drawn as an ellipse


def _draw_mask(shape: str, cx: float, cy: float, r: float, hw: tuple[int, int]) -> np.ndarray:
    canvas = Image.new("1", (hw[1], hw[0]), 0)
    draw = ImageDraw.Draw(canvas)
    polygon = _shape_polygon(shape, cx, cy, r)
    if polygon is None:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    else:
        draw.polygon(polygon, fill=1)
    return np.array(canvas, dtype=bool)


def generate_scene(
    rng: np.random.Generator, cfg: SceneConfig
) -> tuple[np.ndarray, list[ShapeObject]]:
    """Draw one scene: an ``(H, W, 3)`` uint8 image and its visible objects."""
    hw = (cfg.height, cfg.width)
    short = min(hw)
    while True:
        n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
        full_masks, attrs = [], []
        for _ in range(n):
            size = SIZES[int(rng.integers(len(SIZES)))]
            lo, hi = cfg.small if size == "small" else cfg.big
            r = float(rng.uniform(lo, hi)) * short / 2
            cx = float(rng.uniform(r, cfg.width - r))
            cy = float(rng.uniform(r, cfg.height - r))
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
            full_masks.append(_draw_mask(shape, cx, cy, r, hw))
            attrs.append((shape, colour, size))
        visible = [m.copy() for m in full_masks]
        for i in range(n):  # later objects are drawn on top of earlier ones
            for j in range(i + 1, n):
                visible[i] &= ~full_masks[j]
        if all(
            v.sum() >= cfg.min_visible * max(f.sum(), 1) and v.any()
            for v, f in zip(visible, full_masks, strict=True)
        ):
            break
    image = rng.normal(40, 8, size=(*hw, 3)).clip(0, 255)
    objects = []
    for (shape, colour, size), m, vis in zip(attrs, full_masks, visible, strict=True):
        image[m] = COLOURS[colour]
        objects.append(ShapeObject(shape, colour, size, vis, mask_to_box(vis)))
    return image.astype(np.uint8), objects


def _matches(obj: ShapeObject, shape: str | None, colour: str | None, size: str | None) -> bool:
    return (
        (shape is None or obj.shape == shape)
        and (colour is None or obj.colour == colour)
        and (size is None or obj.size == size)
    )


def _phrase(shape: str | None, colour: str | None, size: str | None) -> str:
    return " ".join(w for w in (size, colour, shape or "shape") if w)


def _extreme(objects: list[ShapeObject], position: str) -> ShapeObject | None:
    """The object clearly furthest towards ``position`` (a gap of >= 8 px), if any."""
    axis, sign = {"left": (0, 1), "right": (0, -1), "top": (1, 1), "bottom": (1, -1)}[position]
    ranked = sorted(objects, key=lambda o: sign * o.centre[axis])
    if len(ranked) >= 2 and abs(ranked[0].centre[axis] - ranked[1].centre[axis]) < 8:
        return None
    return ranked[0]


def referring_expressions(objects: list[ShapeObject], index: int) -> list[str]:
    """All unambiguous expressions for ``objects[index]``, shortest first."""
    target = objects[index]
    found = []
    for keys in ((1, 0, 0), (1, 1, 0), (1, 0, 1), (0, 1, 0), (1, 1, 1)):
        attrs = tuple(
            v if k else None
            for k, v in zip(keys, (target.shape, target.colour, target.size), strict=True)
        )
        hits = [o for o in objects if _matches(o, *attrs)]
        if hits == [target]:
            found.append("the " + _phrase(*attrs))
    if not found:  # identical twins: disambiguate by position
        attrs = (target.shape, target.colour, None)
        twins = [o for o in objects if _matches(o, *attrs)]
        for position in POSITIONS:
            if _extreme(twins, position) is target:
                found.append(f"the {_phrase(*attrs)} on the {position}")
    return found


def group_expressions(
    objects: list[ShapeObject], rng: np.random.Generator
) -> list[tuple[str, list[int]]]:
    """gRES expressions: plural phrases with their (possibly empty) target indices."""
    out = []
    colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    for attrs in ((None, colour, None), (shape, None, None), (shape, colour, None)):
        hits = [i for i, o in enumerate(objects) if _matches(o, *attrs)]
        noun = f"{attrs[0]}s" if attrs[0] else "shapes"
        out.append((f"all {attrs[1] + ' ' if attrs[1] else ''}{noun}", hits))
    return out


def vocabulary() -> list[str]:
    """Every word ShapesRef text uses (tokenizer construction needs no data)."""
    words = set(SHAPES) | {f"{s}s" for s in SHAPES} | set(COLOURS) | set(SIZES) | set(POSITIONS)
    words |= {
        "the",
        "a",
        "an",
        "all",
        "shape",
        "shapes",
        "on",
        "and",
        "of",
        "is",
        "in",
        "at",
        "this",
    }
    return sorted(words)


def write_shapesref(
    out_dir: str | Path,
    seed: int = 0,
    n_train: int = 2000,
    n_val: int = 200,
    scene: SceneConfig = SceneConfig(),
) -> Path:
    """Generate ShapesRef into ``out_dir`` (idempotent for the same arguments)."""
    out = Path(out_dir)
    stamp = json.loads(
        json.dumps({"seed": seed, "n_train": n_train, "n_val": n_val, "scene": scene.__dict__})
    )
    if _stamp(out) == stamp:
        return out
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} holds other data; choose an empty folder for ShapesRef")
    # Build in a private folder and rename it into place, so concurrent writers
    # (e.g. several DDP ranks) never see or produce a half-written dataset.
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    _write(tmp, seed, n_train, n_val, scene)
    (tmp / "shapesref.json").write_text(json.dumps(stamp))
    try:
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if _stamp(out) != stamp:
            raise
    return out


def _stamp(out: Path) -> dict | None:
    stamp_file = out / "shapesref.json"
    return json.loads(stamp_file.read_text()) if stamp_file.exists() else None


def _write(out: Path, seed: int, n_train: int, n_val: int, scene: SceneConfig) -> None:
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, annotations, refs, grefs = [], [], [], []
    categories = [{"id": i + 1, "name": s} for i, s in enumerate(SHAPES)]
    for image_id in range(n_train + n_val):
        split = "train" if image_id < n_train else "val"
        rng = np.random.default_rng([seed, image_id])
        pixels, objects = generate_scene(rng, scene)
        file_name = f"{split}_{image_id:06d}.png"
        Image.fromarray(pixels).save(out / "images" / file_name)
        images.append(
            {"id": image_id, "file_name": file_name, "height": scene.height, "width": scene.width}
        )
        ann_ids = []
        for k, obj in enumerate(objects):
            ann_id = image_id * 100 + k
            ann_ids.append(ann_id)
            x1, y1, x2, y2 = obj.box
            annotations.append({
                "id": ann_id, "image_id": image_id, "category_id": SHAPES.index(obj.shape) + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": int(obj.mask.sum()),
                "segmentation": rle_encode(obj.mask), "iscrowd": 0,
                "attributes": {"colour": obj.colour, "size": obj.size},
            })  # fmt: skip
            sentences = referring_expressions(objects, k)
            if not sentences:
                continue  # no unambiguous expression exists: the object is never a target
            picks = sorted({0, int(rng.integers(len(sentences)))})
            refs.append(
                _ref_entry(
                    len(refs),
                    ann_id,
                    image_id,
                    split,
                    file_name,
                    obj,
                    [sentences[i] for i in picks],
                )
            )
        for sent, hits in group_expressions(objects, rng):
            entry = _ref_entry(
                len(grefs),
                [ann_ids[i] for i in hits] or [-1],
                image_id,
                split,
                file_name,
                None,
                [sent],
            )
            entry["no_target"] = not hits
            grefs.append(entry)
    instances = {"images": images, "annotations": annotations, "categories": categories}
    (out / "instances.json").write_text(json.dumps(instances))
    (out / REFS_FILE).write_text(json.dumps(refs))
    (out / GREFS_FILE).write_text(json.dumps(grefs))


def _ref_entry(ref_id, ann_id, image_id, split, file_name, obj, sentences) -> dict:
    sents = [
        {"sent_id": ref_id * 10 + i, "sent": s, "raw": s, "tokens": s.split()}
        for i, s in enumerate(sentences)
    ]
    return {
        "ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "split": split,
        "file_name": file_name, "category_id": SHAPES.index(obj.shape) + 1 if obj else -1,
        "sentences": sents, "sent_ids": [s["sent_id"] for s in sents],
    }  # fmt: skip


@DATASETS.register_module()
class ShapesRefDataset(RefCOCODataset):
    """:class:`~.refcoco.RefCOCODataset` over ShapesRef, generated into ``data_root`` on first use.

    ``refs_file`` defaults to the RefCOCO-style refs, or the gRefCOCO-style grefs
    for ``task="gres"``. ``scene`` overrides :class:`SceneConfig` fields.
    Generation is deterministic in ``seed`` / ``n_train`` / ``n_val`` /
    ``scene``, and skipped when ``data_root`` already holds the same data.
    """

    def __init__(
        self,
        data_root: str,
        seed: int = 0,
        n_train: int = 2000,
        n_val: int = 200,
        scene: dict | None = None,
        task: str = "rec",
        refs_file: str | None = None,
        **kwargs,
    ) -> None:
        scene_cfg = SceneConfig(**(scene or {}))
        write_shapesref(data_root, seed=seed, n_train=n_train, n_val=n_val, scene=scene_cfg)
        refs_file = refs_file or (GREFS_FILE if task == "gres" else REFS_FILE)
        super().__init__(data_root=data_root, refs_file=refs_file, task=task, **kwargs)
