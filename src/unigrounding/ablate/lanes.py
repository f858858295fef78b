"""Running the ablation's jobs: codec fine-tunings and the stage chains they
start from, ``jobs`` at a time, each in its own process with an equal share
of the CPU threads (the order: :mod:`.scheduling`)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch
from mmengine.config import Config

from .codec_job import run_codec, run_codec_in_process
from .configs import estimated_cost
from .scheduling import dispatch_order
from .stages import chain_cost, longest_chains, run_stages


def default_jobs() -> int:
    """Two codecs at a time on a CPU-only machine with at least two cores (the
    tiny model's small matrix products use two threads poorly: two one-thread
    runs finish sooner than the same runs one after the other), else one."""
    if torch.cuda.is_available():
        return 1
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def folder(name: str) -> str:
    """A row name (``"codec [variant]"``) as a directory name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def dumped(cfg: Config, where: Path) -> Path:
    """``where/ablate_config.py``: the exact config a codec row was trained with."""
    where.mkdir(parents=True, exist_ok=True)
    cfg.dump(str(where / "ablate_config.py"))
    return where / "ablate_config.py"


def run_codecs(
    configs: dict[str, Config],
    work: Path,
    jobs: int,
    log: Callable[[str], None],
    stage_args: tuple[Path, dict, Path, Path],
) -> tuple[dict[str, dict[str, dict]], dict[str, dict]]:
    """Report rows per codec (in the order of ``configs``) and the metrics of
    the codecs' own stages (``ablate_stages``). ``stage_args`` are the config
    folder, preset, data root and the shared checkpoint those stages start
    from. Results do not depend on ``jobs``."""
    cdir, settings, data_root, pretrained = stage_args
    chains = {n: tuple(configs[n].pop("ablate_stages", ())) for n in configs}
    stage_metrics: dict[str, dict] = {}
    if jobs == 1:
        results = {}
        for name, cfg in configs.items():
            if chains[name]:
                exports, metrics = run_stages(
                    cdir, chains[name], settings, data_root, pretrained, torch.get_num_threads()
                )
                stage_metrics.update(metrics)
                cfg.model.init_checkpoint = str(exports[-1])
            log(f"[ablate] fine-tuning {name}")
            results[name] = run_codec(cfg, dumped(cfg, work / folder(name)).parent)
        return results, stage_metrics

    threads = max(1, (os.cpu_count() or 1) // jobs)
    pending_chains = sorted(longest_chains({c for c in chains.values() if c}))
    after = {
        name: next(c for c in pending_chains if c[: len(own)] == own)
        for name, own in chains.items()
        if own
    }
    seconds = {name: estimated_cost(cfg) for name, cfg in configs.items()}
    for chain in pending_chains:
        seconds[chain] = chain_cost(chain, *stage_args)
    # A free lane takes the first ready job of this order (not a queue inside
    # the pool, which would hand out jobs before their chains are done).
    order = dispatch_order(seconds, after, jobs)
    done: set = set()
    running: dict = {}
    results: dict[str, dict] = {}
    # spawn: a forked child would inherit torch's thread pools and any open state
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        while order or running:
            ready = [j for j in order if j not in after or after[j] in done]
            for job in ready[: jobs - len(running)]:
                order.remove(job)
                if job in configs:
                    cfg_path = dumped(configs[job], work / folder(job))
                    call = run_codec_in_process, str(cfg_path), str(cfg_path.parent), threads
                else:
                    call = run_stages, cdir, job, settings, data_root, pretrained, threads
                running[pool.submit(*call)] = job
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                done.add(job)
                if job in configs:
                    results[job] = future.result()
                    log(f"[ablate] {job} done")
                    continue
                exports, metrics = future.result()
                stage_metrics.update(metrics)
                log(f"[ablate] stages {', '.join(job)} done")
                for name, own in chains.items():
                    if own and job[: len(own)] == own:
                        configs[name].model.init_checkpoint = str(exports[len(own) - 1])
    return {name: results[name] for name in configs}, stage_metrics
