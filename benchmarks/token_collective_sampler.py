"""What bounds ClawMachine's region sampler on ShapesRef val, from the ablation's
cached stages (the visual tokenizer's export carries the proposer too).

    python benchmarks/token_collective_sampler.py STAGE_EXPORT SHAPESREF_ROOT [--n 200]

``STAGE_EXPORT`` is the ``quantizer_shapesref-*/export`` folder in the
ablation cache. For the ground-truth mounting of every val referent it prints:
patches per object (mean, max), the share of mounted codes that occur once in
the image, the share the retrieval map puts back on their own patch, the
proposals per image and their scores, the best proposal's IoU with the object
among those above the score threshold, and the mounting → sampler ceiling
(box IoU, Acc@0.5) at several score thresholds and without proposer. Prints
figures only.
"""

from __future__ import annotations

import argparse
import copy
import json

import numpy as np
import torch
from mmengine.registry import DefaultScope
from torchvision.ops import box_iou

from unigrounding.ablate import PRESETS, config_dir
from unigrounding.ablate.configs import apply_preset, codec_config
from unigrounding.codecs.token_collective.codec import ImageCodes
from unigrounding.codecs.token_collective.sampler import retrieve
from unigrounding.registry import DATASETS, MODELS
from unigrounding.roundtrip import prepared_samples, roundtrip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("export")
    parser.add_argument("root")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.15])
    args = parser.parse_args()
    cfg = codec_config(config_dir(), "token_collective")
    apply_preset(cfg, dict(PRESETS["quick"], eval_samples=args.n), args.root, 1)
    cfg.model.init_checkpoint = args.export
    with DefaultScope.overwrite_default_scope("unigrounding"):
        model = MODELS.build(cfg.model)
        dataset = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    samples = prepared_samples(model, [dataset[i] for i in range(min(args.n, len(dataset)))])
    sampler = model.codec.processor.sampler
    patches, unique, home, best = [], [], [], []
    states = [ImageCodes.of(s) for s in samples]
    scores = np.concatenate([state.proposals()[1] for state in states])
    for s, state in zip(samples, states, strict=True):
        codes, cells = np.asarray(state.codes), state.gt_cells
        patches.append(len(cells))
        unique += [int((codes == codes[c]).sum() == 1) for c in cells]
        placed = retrieve([int(codes[c]) for c in cells], codes, state.lattice)
        home += [int(p == c) for p, c in zip(placed, cells, strict=True)]
        gt = torch.as_tensor(s.frame.boxes_to_input(s.gt_refs.group(0).boxes.numpy())).float()
        proposal_boxes, proposal_scores = state.proposals()
        boxes = torch.as_tensor(proposal_boxes).float()
        kept = boxes[torch.as_tensor(proposal_scores) > sampler.score_threshold]
        best.append(float(box_iou(gt, kept).max()) if len(kept) else 0.0)
    ceilings = {}
    for threshold in args.thresholds:
        sampler.score_threshold = threshold
        ceilings[f"score > {threshold}"] = roundtrip(model.codec, model.tokenizer, samples)
    sampler.use_proposals = False
    ceilings["no proposer"] = roundtrip(model.codec, model.tokenizer, samples)
    keep = ("box_iou_mean", "box_acc@0.5")
    print(
        json.dumps(
            {
                "n": len(samples),
                "patches_per_object": {"mean": float(np.mean(patches)), "max": int(max(patches))},
                "codes_unique_in_image": float(np.mean(unique)),
                "codes_retrieved_to_own_patch": float(np.mean(home)),
                "proposals_per_image": len(scores) / len(samples),
                "proposal_score_quartiles": np.quantile(scores, [0.25, 0.5, 0.75]).tolist(),
                "best_kept_proposal_iou_mean": float(np.mean(best)),
                "ceilings": {k: {m: v[m] for m in keep} for k, v in ceilings.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
