"""Throughput of the shared model on this machine: training samples/s and
greedy-decoding latency for the tiny preset (or any model config).

    python benchmarks/bench_model.py [--config configs/ablate/text_coords.py] [--batch 32] [--steps 20]

Prints figures only; nothing is asserted (speed goals are read from here, not
from timed unit tests).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import unigrounding  # noqa: F401  (registration)
from unigrounding.data import collate
from unigrounding.registry import DATASETS, MODELS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/ablate/text_coords.py")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    with tempfile.TemporaryDirectory() as tmp, DefaultScope.overwrite_default_scope("unigrounding"):
        ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
        ds_cfg.update(data_root=f"{tmp}/shapes", n_train=200, n_val=50)
        train = DATASETS.build(ds_cfg)
        ds_cfg.update(split="val", turns_per_sample=1)
        val = DATASETS.build(ds_cfg)
        model = MODELS.build(cfg.model)
        params = sum(p.numel() for p in model.parameters())
        optim = build_optim_wrapper(model, cfg.optim_wrapper)  # the config's, clipping included
        batch = collate([train[i % len(train)] for i in range(args.batch)])
        for _ in range(2):  # warm-up
            loss = sum(model(batch["inputs"], batch["data_samples"], mode="loss").values())
            loss.backward()
        start = time.perf_counter()
        for _ in range(args.steps):
            optim.update_params(
                sum(model(batch["inputs"], batch["data_samples"], mode="loss").values())
            )
        step_s = (time.perf_counter() - start) / args.steps
        model.eval()
        vbatch = collate([val[i % len(val)] for i in range(args.batch)])
        start = time.perf_counter()
        out = model(vbatch["inputs"], vbatch["data_samples"], mode="predict")
        gen_s = time.perf_counter() - start
        new_tokens = max(len(s.pred_text) for s in out)
    print(f"config: {args.config}  parameters: {params / 1e6:.2f} M  threads: {args.threads}")
    print(
        f"train: {step_s * 1000:.0f} ms/step at batch {args.batch} -> {args.batch / step_s:.1f} conversations/s"
    )
    print(
        f"predict: {gen_s * 1000 / args.batch:.1f} ms/sample (batch {args.batch}, greedy, KV cache; longest answer {new_tokens} chars)"
    )


if __name__ == "__main__":
    main()
