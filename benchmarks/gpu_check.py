"""The GPU check: bf16 training and decoding of a ~1B-parameter model through
the library, then FSDP and (where DeepSpeed is installed) DeepSpeed ZeRO-2
training, each with a resume, printing throughput and memory.

    python benchmarks/gpu_check.py [--dry-run] [--out DIR]

The model is a miniature *architecture* at real scale, random weights: a
Qwen2 decoder (hidden 2048, 18 layers: 0.9 B parameters) behind a CLIP
ViT-B/16 tower at 224 px (196 image tokens), with the ``text_coords`` codec
on generated ShapesRef data. ``--dry-run`` runs every part at tiny size on the
CPU (gloo), so the script is checked where there is no GPU. Prints one JSON
object per part and a summary; asserts nothing (figures, not tests).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import unigrounding  # noqa: F401  (registration)
from unigrounding.data import collate
from unigrounding.data.shapesref import write_shapesref
from unigrounding.models.llm import select_attn_implementation
from unigrounding.registry import DATASETS, MODELS

REPO = Path(__file__).resolve().parents[1]

#: (LLM config, tower, image size) of the real-scale check and of the dry run
SCALES = {
    "gpu": (
        dict(model_type="qwen2", hidden_size=2048, intermediate_size=5632, num_hidden_layers=18,
             num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=4096),
        dict(model_name="vit_base_patch16_clip_224"),
        224,
    ),
    "dry": (
        dict(model_type="qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024),
        dict(model_name="test_convnext"),
        64,
    ),
}  # fmt: skip


def run_config(scale: str, data_root: Path, batch: int, attn: str) -> Config:
    """A training config of the check's model, from the shipped text_coords recipe."""
    llm, vision, size = SCALES[scale]
    cfg = Config.fromfile(str(REPO / "configs" / "text_coords" / "rec_shapesref.py"))
    pipeline = [dict(type="PackGroundingSample", image_size=size)]
    data = dict(data_root=str(data_root), seed=0, n_train=400, n_val=64, pipeline=pipeline)
    cfg.merge_from_dict(
        {
            "model.llm": dict(config=llm, attn_implementation=attn),
            "model.vision": vision,
            "model.image_size": size,
            "model.precision": "bf16",
            "train_dataloader.batch_size": batch,
            "train_dataloader.dataset": data,
            "val_dataloader.dataset": {**data, "max_samples": batch},
            "test_dataloader.dataset": {**data, "max_samples": batch},
            "train_cfg.val_interval": 10**6,
            "default_hooks.logger.interval": 1,
            "default_hooks.checkpoint.interval": 4,
            "optim_wrapper.optimizer.fused": False,
        }
    )
    # constant rate: a run stopped early and resumed follows the same schedule
    cfg.param_scheduler = [dict(type="ConstantLR", factor=1.0, by_epoch=False)]
    return cfg


def bench_training(cfg: Config, steps: int, device: str) -> dict:
    """Training and decoding throughput of the model alone (one process)."""
    with DefaultScope.overwrite_default_scope("unigrounding"):
        model = MODELS.build(copy.deepcopy(cfg.model)).to(device)
        train = DATASETS.build(copy.deepcopy(cfg.train_dataloader.dataset))
        val = DATASETS.build({**cfg.test_dataloader.dataset, "split": "val"})
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    batch_size = cfg.train_dataloader.batch_size
    batches = [
        collate([train[(i * batch_size + j) % len(train)] for j in range(batch_size)])
        for i in range(steps + 1)
    ]
    tokens = sum(_conversation_tokens(model, b) for b in batches[1:])
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = None
    model.train()
    for i, batch in enumerate(batches):
        if i == 1:  # the first step warms up kernels and allocations
            _sync(device)
            start = time.perf_counter()
        losses = model(batch["inputs"], batch["data_samples"], mode="loss")
        sum(v for k, v in losses.items() if k.startswith("loss")).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    seconds = time.perf_counter() - start
    model.eval()
    samples = collate([val[i] for i in range(batch_size)])
    with torch.no_grad():
        model(samples["inputs"], samples["data_samples"], mode="predict")  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        out = model(samples["inputs"], samples["data_samples"], mode="predict")
        _sync(device)
    decode = time.perf_counter() - t0
    generated = sum(len(model.tokenizer(s.pred_text).input_ids) + 1 for s in out)
    return {
        "part": "train+decode",
        "parameters_b": round(params / 1e9, 3),
        "attn_implementation": model.llm.config._attn_implementation,
        "batch": batch_size,
        "train_samples_per_s": round(steps * batch_size / seconds, 2),
        "train_tokens_per_s": round(tokens / seconds, 1),
        "decode_ms_per_sample": round(decode * 1000 / batch_size, 2),
        "decode_tokens_per_s": round(generated / decode, 1),
        "peak_memory_gib": _peak_gib(device),
    }


def _conversation_tokens(model, batch) -> int:
    """Input tokens of a training batch (image placeholders included)."""
    view = model.prepare_samples(batch["inputs"], batch["data_samples"])
    return int(view.attention_mask.sum())


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _peak_gib(device: str) -> float | None:
    if device != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def bench_sharded(cfg: Config, work: Path, iters: int, strategy: str) -> dict:
    """``train --strategy fsdp|deepspeed`` in one process (torchrun), stopped
    after ``iters`` iterations and resumed for as many more."""
    work = work / strategy
    work.mkdir(parents=True)
    cfg_file = work / "cfg.py"
    cfg.dump(str(cfg_file))
    runs = []
    for max_iters, resume in ((iters, False), (2 * iters, True)):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1",
            f"--master_port={port}", "-m", "unigrounding.cli.main", "train", str(cfg_file),
            "--launcher", "pytorch", "--strategy", strategy, "--work-dir", str(work / "run"),
            "--cfg-options", f"train_cfg.max_iters={max_iters}",
        ] + (["--resume"] if resume else [])  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        runs.append(time.perf_counter() - start)
        if proc.returncode != 0:
            return {"part": strategy, "error": proc.stderr[-3000:]}
    logs = sorted((work / "run").glob("*/vis_data/scalars.json"))
    rows = [json.loads(line) for f in logs for line in f.read_text().splitlines()]
    losses = {r["step"]: round(r["loss"], 4) for r in rows if "loss" in r}
    return {
        "part": strategy,
        "iterations": sorted(losses),
        "loss": [losses[s] for s in sorted(losses)],
        "resumed_from": iters,
        "seconds_first_run": round(runs[0], 1),
        "seconds_resumed_run": round(runs[1], 1),
        "export_written": (work / "run" / "export" / "unigrounding.json").exists(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny model on the CPU")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--out", help="also write the figures here (JSON)")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --dry-run to check the script on the CPU")
    scale, device = ("dry", "cpu") if args.dry_run else ("gpu", "cuda")
    steps = args.steps or (2 if args.dry_run else 20)
    batch = args.batch or (4 if args.dry_run else 16)
    figures = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
    }
    print(json.dumps(figures), flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_shapesref(Path(tmp) / "shapes", seed=0, n_train=400, n_val=64)
        attns = ["sdpa"]
        if select_attn_implementation("auto") == "flash_attention_2":
            attns.append("flash_attention_2")
        for attn in attns:
            cfg = run_config(scale, root, batch, attn)
            results.append(bench_training(cfg, steps, device))
            print(json.dumps(results[-1]), flush=True)
            if device == "cuda":
                torch.cuda.empty_cache()
        strategies = ["fsdp"]
        if importlib.util.find_spec("deepspeed") is not None:
            strategies.append("deepspeed")  # ZeRO-2 through DeepSpeed's engine
        for strategy in strategies:
            sharded_cfg = run_config(scale, root, batch, "sdpa")
            results.append(bench_sharded(sharded_cfg, Path(tmp), iters=4, strategy=strategy))
            print(json.dumps(results[-1]), flush=True)
    summary = {**figures, "results": results}
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
