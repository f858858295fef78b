"""Why REC answers miss: wrong object (binding) or right object, loose box.

    python benchmarks/binding_errors.py EXPORT_DIR SHAPESREF_ROOT [--n 200]

For the first sentence of ``n`` ShapesRef val refs it prints how many answers
hit the target (IoU >= 0.5), how many box another object of the scene instead
(IoU >= 0.3 with it), how many do neither (a loose box, or no answer), and how
many a random pick among each scene's objects would get wrong (expected
count). Prints figures only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import unigrounding as ug
from unigrounding.structures import paired_box_iou, xywh_to_xyxy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("export")
    parser.add_argument("root")
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    root = Path(args.root)
    model = ug.load(args.export)
    refs = [
        r for r in json.loads((root / "refs(shapesref).json").read_text()) if r["split"] == "val"
    ]
    coco = json.loads((root / "instances.json").read_text())
    files = {img["id"]: img["file_name"] for img in coco["images"]}
    boxes: dict[int, dict[int, list[float]]] = {}
    for ann in coco["annotations"]:
        boxes.setdefault(ann["image_id"], {})[ann["id"]] = xywh_to_xyxy(ann["bbox"])
    counts = {"target": 0, "other_object": 0, "neither": 0}
    chance_wrong = 0.0
    for ref in refs[: args.n]:
        scene = boxes[ref["image_id"]]
        chance_wrong += 1 - 1 / len(scene)
        pred = model.ground(
            str(root / "images" / files[ref["image_id"]]), ref["sentences"][0]["sent"]
        )
        if len(pred) == 0:
            counts["neither"] += 1
            continue
        ious = {
            k: float(paired_box_iou(pred.boxes[:1].float(), torch.tensor([b]))[0])
            for k, b in scene.items()
        }
        others = [v for k, v in ious.items() if k != ref["ann_id"]]
        if ious[ref["ann_id"]] >= 0.5:
            counts["target"] += 1
        elif others and max(others) >= 0.3:
            counts["other_object"] += 1
        else:
            counts["neither"] += 1
    n = min(args.n, len(refs))
    print(json.dumps({"n": n, **counts, "random_object_wrong": round(chance_wrong, 1)}))


if __name__ == "__main__":
    main()
