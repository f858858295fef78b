"""Parallel grouped Hungarian matching vs a per-group loop (REF-VLM eqs. 4-8).

    python benchmarks/grouped_matching.py [--batch 16] [--max-groups 10] [--max-targets 20] [--repeats 50]

Each sample of a batch holds 1..max-groups triplet groups of 1..max-targets
boxes (as many predictions as targets, as TRP guarantees). The loop builds one
cost matrix per group (torch) and solves it (scipy); the parallel version builds
every group's costs into one padded tensor with a few tensor operations, copies
it to the host once and solves the valid blocks. Both give the same assignment
(tests/test_matching.py); this prints their times. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_convert, generalized_box_iou

from unigrounding.decoders.matching import PAD_BOX, box_match_cost, grouped_hungarian, pad_groups


def loop(preds, targets):
    out = []
    for p, t in zip(preds, targets, strict=True):
        cost = 5 * torch.cdist(p, t, p=1) - 2 * generalized_box_iou(
            box_convert(p, "cxcywh", "xyxy"), box_convert(t, "cxcywh", "xyxy")
        )
        out.append(linear_sum_assignment(cost.cpu().numpy()))
    return out


def parallel(preds, targets):
    p, n_p = pad_groups(preds, PAD_BOX)
    t, n_t = pad_groups(targets, PAD_BOX)
    return grouped_hungarian(box_match_cost(p, t), n_p, n_t)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-groups", type=int, default=10)
    parser.add_argument("--max-targets", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)

    def boxes(n):
        return torch.cat(
            [torch.rand(n, 2, generator=gen), torch.rand(n, 2, generator=gen) * 0.3 + 0.01], 1
        )

    batches = []
    for _ in range(args.repeats):
        groups = sum(
            int(torch.randint(1, args.max_groups + 1, (1,), generator=gen))
            for _ in range(args.batch)
        )
        sizes = torch.randint(1, args.max_targets + 1, (groups,), generator=gen).tolist()
        batches.append(([boxes(n) for n in sizes], [boxes(n) for n in sizes]))
    groups = sum(len(b[0]) for b in batches) / len(batches)
    pairs = sum(sum(len(p) for p in b[0]) for b in batches) / len(batches)
    print(
        f"batch {args.batch}, 1-{args.max_groups} groups/sample, 1-{args.max_targets} targets/group: "
        f"{groups:.0f} groups, {pairs:.0f} predictions per batch (mean of {args.repeats})"
    )
    for name, fn in (("per-group loop", loop), ("parallel grouped", parallel)):
        fn(*batches[0])  # warm-up
        start = time.perf_counter()
        for preds, targets in batches:
            fn(preds, targets)
        ms = (time.perf_counter() - start) * 1000 / len(batches)
        print(f"{name:>17}: {ms:7.2f} ms per batch")


if __name__ == "__main__":
    main()
