"""LVIS-Ground (Groma, section 4.2 and appendix): object grounding built from
an LVIS val annotation file (``lvis_v1_val.json``; LVIS v0.5 works the same).

Each LVIS category contributes at most ``images_per_category`` images (Groma:
5) that contain it; each (image, category) pair is one query whose targets
are *all* instances of the category in the image (one-to-many). Groma does not
say which images it kept: here the images with the smallest ids, so the set is
the same on every machine. The category name is LVIS's with ``_`` read as a
space ("baseball_bat" → "baseball bat"); it is also the sample's ``category``
metainfo, which :class:`~unigrounding.evaluation.LVISGroundAR` averages over;
the annotations' ``area`` (``None`` where absent) is the ``target_areas``
metainfo, which it buckets targets by.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..registry import DATASETS
from ..structures import validate_box, xywh_to_xyxy
from .annotations import AnnotationError, annotation_errors, record_name, require_file
from .base import GroundingDataset

QUESTION = "<image>\nLocate every {category} in the image."


@DATASETS.register_module()
class LVISGroundDataset(GroundingDataset):
    """Args:
    data_root: folder with the annotation file and the image folder.
    lvis_file: LVIS annotation JSON.
    img_dir: images (LVIS v1 val uses COCO 2017 images: ``val2017``), found by
        ``file_name`` or else by the basename of ``coco_url``.
    images_per_category: at most this many images per category.
    max_samples: keep the first ``max_samples`` queries.
    """

    def __init__(
        self,
        data_root: str,
        lvis_file: str = "lvis_v1_val.json",
        img_dir: str = "val2017",
        images_per_category: int = 5,
        max_samples: int | None = None,
        **kwargs,
    ) -> None:
        self.lvis_file, self.img_dir = lvis_file, img_dir
        self.images_per_category = images_per_category
        super().__init__(data_root, max_samples, **kwargs)

    def load_samples(self) -> list[dict]:
        path = require_file(Path(self.data_root) / self.lvis_file, "LVIS annotation file")
        with annotation_errors(path, "malformed LVIS annotation file"):
            lvis = json.loads(path.read_text())
            categories = {int(c["id"]): c["name"] for c in lvis["categories"]}
            images = {int(i["id"]): i for i in lvis["images"]}
            annotations = lvis["annotations"]
        groups: dict[tuple[int, int], list[dict]] = {}
        for i, ann in enumerate(annotations):
            where = record_name(path, "annotation", i, ann, "id")
            with annotation_errors(where):
                key = (int(ann["category_id"]), int(ann["image_id"]))
                box = xywh_to_xyxy(ann["bbox"])
                area = None if ann.get("area") is None else float(ann["area"])
            if key[0] not in categories or key[1] not in images:
                raise AnnotationError(f"{where}: unknown category or image id {key}")
            validate_box(box, where)
            groups.setdefault(key, []).append({"ann_id": ann.get("id"), "box": box, "area": area})
        samples = []
        for category in sorted(categories):
            image_ids = sorted(img for cat, img in groups if cat == category)
            for image_id in image_ids[: self.images_per_category]:
                samples.append(
                    self._sample(
                        category,
                        categories[category],
                        images[image_id],
                        groups[(category, image_id)],
                        path,
                    )
                )
        return samples

    def _sample(self, category_id: int, name: str, image: dict, targets: list[dict], path) -> dict:
        name = name.replace("_", " ")
        file_name = image.get("file_name") or Path(str(image.get("coco_url", ""))).name
        if not file_name:
            raise AnnotationError(f"{path} image {image.get('id')}: no file_name or coco_url")
        return {
            "sample_id": f"{image['id']}-{category_id}",
            "image_path": str(Path(self.data_root) / self.img_dir / file_name),
            "ori_shape": (int(image["height"]), int(image["width"])),
            "task": "lvis_ground",
            "expression": name,
            "source": str(path),
            "gt": [dict(t, group=0, unit="box", phrase=name) for t in targets],
            "prompts": [],
            "conversation": [
                {"role": "user", "text": QUESTION.format(category=name)},
                {"role": "assistant", "text": "{target:0}"},
            ],
            # LVISGroundAR buckets targets by the annotation's area (the mask's)
            "metainfo": {"category": name, "target_areas": [t["area"] for t in targets]},
        }
