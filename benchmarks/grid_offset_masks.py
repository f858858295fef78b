"""GETok mask encoding on ShapesRef val: tokens per mask and what they decode to.

    python benchmarks/grid_offset_masks.py SHAPESREF_ROOT [--n 300] [--grids 16 32 64]

For each grid size it encodes every val referent's mask as segment-critical
grid points (``codecs/grid_offset/points.py``), decodes the points back with
the dependency-free colour-region decoder, and prints the mean number of
tokens per mask (the paper's Table 3 reports 5.2 / 8.7 / 14.6 at n = 16 / 32 /
64 on RefCOCO), the share of points on the mask, the decoded mask IoU and the
encoding time. Prints figures only.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from unigrounding.codecs.grid_offset import GridLattice, segment_critical_cells
from unigrounding.data import RefCOCODataset
from unigrounding.data.shapesref import REFS_FILE
from unigrounding.decoders import ColourRegionGrowing
from unigrounding.structures import points_in_mask


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--grids", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    ds = RefCOCODataset(
        data_root=args.root,
        refs_file=REFS_FILE,
        split="val",
        task="res",
        max_samples=args.n,
        pipeline=[dict(type="PackGroundingSample", image_size=args.image_size)],
    )
    items = [ds[i] for i in range(len(ds))]
    decoder = ColourRegionGrowing()
    for n in args.grids:
        lattice = GridLattice(n=n)
        tokens, on_mask, ious, seconds = [], [], [], 0.0
        for item in items:
            sample = item["data_samples"]
            for mask in sample.gt_refs.group(0).masks:
                gt = sample.frame.mask_to_input(mask).numpy()
                start = time.perf_counter()
                cells = segment_critical_cells(gt, lattice)
                seconds += time.perf_counter() - start
                xy = lattice.centre(cells, gt.shape)
                tokens.append(len(cells))
                on_mask.append(points_in_mask(xy, gt).mean())
                pred = decoder(item["inputs"], xy).numpy()
                ious.append((pred & gt).sum() / max((pred | gt).sum(), 1))
        print(
            json.dumps(
                {
                    "grid": n,
                    "masks": len(tokens),
                    "tokens_per_mask": round(float(np.mean(tokens)), 2),
                    "points_on_mask": round(float(np.mean(on_mask)), 3),
                    "decoded_mask_iou": round(float(np.mean(ious)), 3),
                    "encode_ms_per_mask": round(1000 * seconds / len(tokens), 3),
                }
            )
        )


if __name__ == "__main__":
    main()
