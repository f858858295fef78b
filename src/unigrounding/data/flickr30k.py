"""Flickr30k Entities as grounded captions (GCG): every boxed phrase of a
caption is a referent group, placed in the caption right after its phrase.

Reads the official layout: ``Annotations/<image_id>.xml`` (Pascal-VOC style:
``<size>``, and ``<object>`` with one or more ``<name>`` entity ids and a
``<bndbox>``, or ``<nobndbox>``), ``Sentences/<image_id>.txt`` (one caption
per line, phrases marked ``[/EN#<entity>/<type> <words>]``) and a split file
(``train.txt`` / ``val.txt`` / ``test.txt`` of image ids). Box corners are
1-based inclusive pixels; ``x1 = xmin - 1``, ``x2 = xmax`` makes them the
library's 0-based half-open pixels. A phrase whose entity has no box stays
plain text; an entity with several boxes is one group with several instances.
Caption ``sentence`` (default 0) of each image is used.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from ..registry import DATASETS
from ..structures import validate_box
from .annotations import AnnotationError, annotation_errors, require_file
from .base import GroundingDataset
from .tasks import TASK_TEMPLATES

_PHRASE = re.compile(r"\[/EN#(\d+)/[^\s\]]*\s+([^\]]*)\]")


def read_entity_boxes(path: Path) -> tuple[dict[str, list[list[float]]], tuple[int, int]]:
    """Entity id → boxes, and the image's ``(height, width)``, of one XML file."""
    with annotation_errors(
        path,
        "malformed Flickr30k Entities annotation",
        (ET.ParseError, AttributeError, TypeError, ValueError),
    ):
        root = ET.parse(path).getroot()
        size = root.find("size")
        hw = (int(size.findtext("height")), int(size.findtext("width")))
        boxes: dict[str, list[list[float]]] = {}
        for obj in root.iter("object"):
            bndbox = obj.find("bndbox")
            if bndbox is None:
                continue
            xmin, ymin, xmax, ymax = (
                float(bndbox.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")
            )
            box = [xmin - 1, ymin - 1, xmax, ymax]
            validate_box(box, f"{path} object {[n.text for n in obj.iter('name')]}")
            for name in obj.iter("name"):
                boxes.setdefault(name.text.strip(), []).append(box)
    return boxes, hw


def grounded_caption(line: str, boxes: dict[str, list[list[float]]]) -> tuple[str, list[dict]]:
    """The caption with ``{target:g}`` after each boxed phrase, and its targets."""
    targets, parts, last, group = [], [], 0, 0
    for match in _PHRASE.finditer(line):
        entity, words = match.group(1), " ".join(match.group(2).split())
        parts.append(line[last : match.start()])
        if entity in boxes:
            parts.append(f"{words} {{target:{group}}}")
            targets += [
                {"box": b, "group": group, "unit": "box", "phrase": words} for b in boxes[entity]
            ]
            group += 1
        else:
            parts.append(words)
        last = match.end()
    parts.append(line[last:])
    return " ".join("".join(parts).split()), targets


@DATASETS.register_module()
class Flickr30kEntitiesDataset(GroundingDataset):
    """Args:
    data_root: folder with ``Annotations/``, ``Sentences/``, the split files
        and ``img_dir``.
    split: ``train`` / ``val`` / ``test`` (reads ``<split>.txt``).
    sentence: which of the (five) captions of an image to use.
    """

    def __init__(
        self,
        data_root: str,
        split: str = "test",
        img_dir: str = "flickr30k-images",
        sentence: int = 0,
        max_samples: int | None = None,
        **kwargs,
    ) -> None:
        self.split, self.img_dir, self.sentence = split, img_dir, sentence
        super().__init__(data_root, max_samples, **kwargs)

    def load_samples(self) -> list[dict]:
        root = Path(self.data_root)
        split_file = require_file(root / f"{self.split}.txt", "Flickr30k Entities split file")
        question = TASK_TEMPLATES["gcg"][0]
        samples = []
        for image_id in split_file.read_text().split():
            boxes, hw = read_entity_boxes(root / "Annotations" / f"{image_id}.xml")
            sentences_path = root / "Sentences" / f"{image_id}.txt"
            lines = sentences_path.read_text().splitlines()
            if self.sentence >= len(lines):
                raise AnnotationError(f"{sentences_path}: no caption #{self.sentence}")
            caption, targets = grounded_caption(lines[self.sentence], boxes)
            if not targets:
                continue  # nothing to ground
            samples.append(
                {
                    "sample_id": f"flickr-{image_id}-{self.sentence}",
                    "image_path": str(root / self.img_dir / f"{image_id}.jpg"),
                    "ori_shape": hw,
                    "task": "gcg",
                    "expression": caption,
                    "source": str(sentences_path),
                    "gt": targets,
                    "prompts": [],
                    "conversation": [
                        {"role": "user", "text": question},
                        {"role": "assistant", "text": caption},
                    ],
                }
            )
        return samples
