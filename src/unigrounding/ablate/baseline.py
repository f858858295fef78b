"""The trivial baseline printed beside the codecs: what "no learning at all"
scores on the same evaluation samples."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from mmengine.config import Config

from ..structures import metric_box_iou
from .configs import apply_preset


def center_box_baseline(cdir: Path, settings: dict, data_root: Path, task: str = "rec") -> dict:
    """A box of the mean training target size (relative to the image) at the
    image centre, scored with the REC protocol — and, for ``task="res"``,
    filled as a mask and scored with the RES protocol."""
    from mmengine.registry import DefaultScope

    from ..evaluation.grounding import union_mask
    from ..registry import DATASETS
    from ..structures import box_to_mask

    cfg = Config.fromfile(str(cdir / "ablate" / "base.py"))
    apply_preset(cfg, settings, data_root, 1)
    with DefaultScope.overwrite_default_scope("unigrounding"):
        train = DATASETS.build(copy.deepcopy(cfg.train_dataloader.dataset))
        val = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    rel = []
    for i in range(len(train)):
        info = train.get_data_info(i)
        h, w = info["ori_shape"]
        for g in info["gt"]:
            x1, y1, x2, y2 = g["box"]
            rel.append(((x2 - x1) / w, (y2 - y1) / h))
    rw, rh = np.mean(rel, axis=0)
    ious, inters, unions = [], [], []
    for i in range(len(val)):
        info = val.get_data_info(i)
        h, w = info["ori_shape"]
        guess = np.array([w * (1 - rw) / 2, h * (1 - rh) / 2, w * (1 + rw) / 2, h * (1 + rh) / 2])
        ious.append(float(metric_box_iou(guess[None], [info["gt"][0]["box"]], paired=True)[0]))
        if task == "res":
            gt = union_mask(val[i]["data_samples"].gt_refs, (h, w), boxes_as_masks=True)
            pred = box_to_mask(guess.tolist(), h, w)
            inters.append(int(np.logical_and(pred, gt).sum()))
            unions.append(int(np.logical_or(pred, gt).sum()))
    ious = np.array(ious)
    row = {
        "rec_acc@0.5": float((ious >= 0.5).mean()),
        "rec_miou": float(ious.mean()),
        "n": len(ious),
    }
    if task == "res":
        row["res_ciou"] = sum(inters) / max(sum(unions), 1)
        row["res_giou"] = float(
            np.mean([a / u if u else 1.0 for a, u in zip(inters, unions, strict=True)])
        )
    return row
