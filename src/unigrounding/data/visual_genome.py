"""Visual Genome region descriptions as REG samples (a box in, its phrase out).

Reads the official files: ``region_descriptions.json`` (a list of
``{"id": image_id, "regions": [{"region_id", "phrase", "x", "y", "width",
"height"}, ...]}``) and ``image_data.json`` (``image_id``, ``width``,
``height``, ``url``). Images are found under ``img_dirs`` (VG ships
``VG_100K`` and ``VG_100K_2``) by the basename of ``url``, else
``<image_id>.jpg``. Each region is one sample: the user's box is the visual
prompt, the answer its phrase (the reference of
:class:`~unigrounding.evaluation.REGMetric`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..registry import DATASETS
from ..structures import validate_box
from .annotations import annotation_errors, read_json
from .base import GroundingDataset
from .tasks import TASK_TEMPLATES


@DATASETS.register_module()
class VisualGenomeRegionDataset(GroundingDataset):
    """Args:
    data_root: folder of the two JSON files and the image folders.
    image_ids: keep only these images (e.g. a split list); ``None`` keeps all.
    max_samples: keep the first ``max_samples`` regions.
    """

    def __init__(
        self,
        data_root: str,
        regions_file: str = "region_descriptions.json",
        images_file: str = "image_data.json",
        img_dirs: tuple[str, ...] = ("VG_100K", "VG_100K_2"),
        image_ids: list[int] | None = None,
        max_samples: int | None = None,
        **kwargs,
    ) -> None:
        self.regions_file, self.images_file = regions_file, images_file
        self.img_dirs = tuple(img_dirs)
        self.image_ids = None if image_ids is None else {int(i) for i in image_ids}
        super().__init__(data_root, max_samples, **kwargs)

    def _image_path(self, info: dict) -> str:
        name = Path(str(info.get("url") or "")).name or f"{info['image_id']}.jpg"
        for folder in self.img_dirs:
            candidate = Path(self.data_root) / folder / name
            if candidate.exists():
                return str(candidate)
        return str(Path(self.data_root) / self.img_dirs[0] / name)  # validation reports it

    def load_samples(self) -> Iterator[dict]:
        root = Path(self.data_root)
        regions_path = root / self.regions_file
        images = {int(i["image_id"]): i for i in read_json(root / self.images_file)}
        question, answer = TASK_TEMPLATES["reg"]
        for entry in read_json(regions_path):
            for region in entry.get("regions", []):
                where = f"{regions_path} region_id={region.get('region_id', '?')}"
                with annotation_errors(where):
                    image_id = int(region.get("image_id", entry["id"]))
                    x, y = float(region["x"]), float(region["y"])
                    box = [x, y, x + float(region["width"]), y + float(region["height"])]
                    phrase = " ".join(str(region["phrase"]).split())
                    info = images[image_id]
                if self.image_ids is not None and image_id not in self.image_ids:
                    continue
                validate_box(box, where)
                yield {
                    "sample_id": f"vg-{region['region_id']}",
                    "image_path": self._image_path(info),
                    "ori_shape": (int(info["height"]), int(info["width"])),
                    "task": "reg",
                    "expression": phrase,
                    "source": where,
                    "gt": [],
                    "prompts": [{"box": box, "group": 0, "unit": "box", "phrase": ""}],
                    "conversation": [
                        {"role": "user", "text": question},
                        {"role": "assistant", "text": answer.replace("{expression}", phrase)},
                    ],
                }
