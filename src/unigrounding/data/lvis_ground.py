"""LVIS-Ground (Groma, section 4.2 and appendix): object grounding built from
an LVIS val annotation file (``lvis_v1_val.json``; LVIS v0.5 works the same).

Each LVIS category contributes at most ``images_per_category`` images (Groma:
5) that contain it; each (image, category) pair is one query whose targets
are *all* instances of the category in the image (one-to-many). Groma does not
say which images it kept: here the images with the smallest ids, so the set is
the same on every machine. The category name is LVIS's with ``_`` read as a
space ("baseball_bat" → "baseball bat"); it is also the sample's ``category``
metainfo, which :class:`~unigrounding.evaluation.LVISGroundAR` averages over.
"""

from __future__ import annotations

import json
from pathlib import Path

from mmengine.dataset import BaseDataset
from mmengine.registry import DefaultScope

from ..registry import DATASETS, SCOPE
from ..structures import validate_box, xywh_to_xyxy
from .refcoco import AnnotationError

QUESTION = "<image>\nLocate every {category} in the image."


@DATASETS.register_module()
class LVISGroundDataset(BaseDataset):
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
        self.images_per_category, self.max_samples = images_per_category, max_samples
        with DefaultScope.overwrite_default_scope(SCOPE):
            super().__init__(data_root=data_root, **kwargs)

    def load_data_list(self) -> list[dict]:
        path = Path(self.data_root) / self.lvis_file
        if not path.exists():
            raise FileNotFoundError(f"LVIS annotation file not found: {path}")
        try:
            lvis = json.loads(path.read_text())
            categories = {int(c["id"]): c["name"] for c in lvis["categories"]}
            images = {int(i["id"]): i for i in lvis["images"]}
            annotations = lvis["annotations"]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise AnnotationError(f"{path}: malformed LVIS annotation file ({exc!r})") from exc
        groups: dict[tuple[int, int], list[dict]] = {}
        for i, ann in enumerate(annotations):
            where = f"{path} annotation #{i} (id={ann.get('id', '?')})"
            try:
                key = (int(ann["category_id"]), int(ann["image_id"]))
                box = xywh_to_xyxy(ann["bbox"])
            except (KeyError, TypeError, ValueError) as exc:
                raise AnnotationError(f"{where}: malformed record ({exc!r})") from exc
            if key[0] not in categories or key[1] not in images:
                raise AnnotationError(f"{where}: unknown category or image id {key}")
            validate_box(box, where)
            groups.setdefault(key, []).append({"ann_id": ann.get("id"), "box": box})
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
        return samples[: self.max_samples] if self.max_samples else samples

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
            "metainfo": {"category": name},
        }
