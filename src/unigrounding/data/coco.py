"""COCO instances files: their reader, and datasets over a plain one (no
referring expressions).

* :func:`read_instances` — images, annotations and category names by id (the
  RefCOCO loader reads its ``instances.json`` with it too).
* :class:`CocoDetectionDataset` — class-agnostic boxes of every object of an
  image, for a proposer's detection stage (Groma's detection pretraining: "any
  COCO-format detection data").
* :class:`CocoCellLabelDataset` — per-object attribute classes for the tiny
  preset's dense cell pretraining of the vision tower.

Both decode an image once and keep the packed item (``cache=True``): their
pipelines are deterministic and the stages read every image many times.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..registry import DATASETS
from ..structures import validate_box, xywh_to_xyxy
from .annotations import AnnotationError, annotation_errors, require_file
from .base import GroundingDataset


def read_instances(
    path: str | Path,
) -> tuple[dict[int, dict], dict[int, dict], dict[int, str]]:
    """Images, annotations and category names of a COCO instances file, by
    id, validated."""
    path = require_file(Path(path), "instances file")
    with annotation_errors(
        path, "malformed COCO instances file", (json.JSONDecodeError, KeyError, TypeError)
    ):
        coco = json.loads(path.read_text())
        images = {int(img["id"]): img for img in coco["images"]}
        anns = {int(a["id"]): a for a in coco["annotations"]}
        categories = {int(c["id"]): str(c["name"]) for c in coco.get("categories", [])}
    return images, anns, categories


class _CachedPacking:
    """``prepare_data`` that packs each index once when ``self._packed`` is a dict."""

    _packed: dict[int, dict] | None

    def prepare_data(self, idx: int) -> dict:
        if self._packed is None:
            return super().prepare_data(idx)
        if idx not in self._packed:
            self._packed[idx] = super().prepare_data(idx)
        return self._packed[idx]


@DATASETS.register_module()
class CocoDetectionDataset(_CachedPacking, GroundingDataset):
    """One sample per image of ``data_root/instances_file``: every object's box
    as a ground-truth instance (group 0, unit ``box``; categories are dropped),
    packed by :class:`~unigrounding.data.PackGroundingSample`.

    ``split`` keeps images whose file name starts with it (ShapesRef's
    convention), ``None`` keeps all. Crowd annotations are skipped (COCO
    detection's convention); a degenerate box raises an error naming the file
    and annotation.
    """

    def __init__(
        self,
        data_root: str,
        instances_file: str = "instances.json",
        img_dir: str = "images",
        split: str | None = None,
        cache: bool = True,
        max_samples: int | None = None,
        **kwargs,
    ) -> None:
        self.instances_file, self.img_dir, self.split = instances_file, img_dir, split
        self._packed = {} if cache else None
        super().__init__(data_root, max_samples, **kwargs)

    def load_samples(self) -> list[dict]:
        path = Path(self.data_root) / self.instances_file
        images, anns, _ = read_instances(path)
        by_image: dict[int, list] = {}
        for ann in sorted(anns.values(), key=lambda a: a["id"]):
            if ann.get("iscrowd", 0):
                continue
            where = f"{path} ann_id={ann['id']}"
            with annotation_errors(where, "no readable bbox"):
                xyxy = xywh_to_xyxy(ann["bbox"])
            box = validate_box(xyxy, where).tolist()  # GeometryError names file and id
            by_image.setdefault(int(ann["image_id"]), []).append(
                {
                    "ann_id": ann["id"],
                    "box": box,
                    "unit": "box",
                    "group": 0,
                }
            )
        return [
            {
                "sample_id": f"image {image_id}",
                "image_path": str(Path(self.data_root) / self.img_dir / img["file_name"]),
                "ori_shape": (int(img["height"]), int(img["width"])),
                "task": "detection",
                "gt": by_image.get(image_id, []),
                "conversation": [],
                "source": str(path),
            }
            for image_id, img in sorted(images.items())
            if self.split is None or img["file_name"].startswith(self.split)
        ]


@DATASETS.register_module()
class CocoCellLabelDataset(_CachedPacking, GroundingDataset):
    """Images of a COCO instances file with per-object attribute classes, for
    :class:`~unigrounding.models.cell_pretrain.CellAttributePretrainer`.

    ``attributes`` maps a name to its vocabulary: ``"category"`` reads
    ``category_id``; any other name reads ``ann["attributes"][name]``. Class
    ``i + 1`` is ``vocabulary[i]`` (0 is background). ``split`` keeps images
    whose file name starts with it (ShapesRef's convention), ``None`` keeps all.
    ``cache`` keeps every packed item in memory after its first use: the
    pipeline is deterministic and this stage sees each image many times (the
    tiny preset reads 3000 images ~25 times; decoding dominated its step time).
    """

    geometry_fields = ("objects",)

    def __init__(
        self,
        data_root: str,
        attributes: dict[str, list],
        instances_file: str = "instances.json",
        img_dir: str = "images",
        split: str | None = None,
        cache: bool = True,
        **kwargs,
    ) -> None:
        self.attributes, self.instances_file = attributes, instances_file
        self.img_dir, self.split = img_dir, split
        self._packed: dict[int, dict] | None = {} if cache else None
        super().__init__(data_root, **kwargs)

    def load_samples(self) -> list[dict]:
        path = Path(self.data_root) / self.instances_file
        images, anns, _ = read_instances(path)
        by_image: dict[int, list] = {}
        for ann in anns.values():
            labels = {}
            for name, vocab in self.attributes.items():
                value = (
                    ann.get("category_id")
                    if name == "category"
                    else ann.get("attributes", {}).get(name)
                )
                if value not in vocab:
                    raise AnnotationError(
                        f"{path} ann_id={ann['id']}: {name}={value!r} not in {vocab}"
                    )
                labels[name] = vocab.index(value) + 1
            by_image.setdefault(int(ann["image_id"]), []).append(
                {
                    "id": ann["id"],
                    "segmentation": ann["segmentation"],
                    "box": xywh_to_xyxy(ann["bbox"]),
                    "unit": "mask",  # PackCellLabels paints every object's mask
                    "labels": labels,
                }
            )
        return [
            {
                "image_id": image_id,
                "image_path": str(Path(self.data_root) / self.img_dir / img["file_name"]),
                "objects": sorted(by_image.get(image_id, []), key=lambda o: o["id"]),
                "attributes": list(self.attributes),
                "source": str(path),
            }
            for image_id, img in sorted(images.items())
            if self.split is None or img["file_name"].startswith(self.split)
        ]
