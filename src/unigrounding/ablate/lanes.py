"""Running the ablation's jobs: stage 0, the stage chains some codecs start
from and the codec fine-tunings, ``jobs`` at a time, each in its own worker
process with an equal share of the CPU threads (the order: :mod:`.scheduling`).

A worker's terminal output (mmengine's log lines, library warnings) goes to
``console.log`` in its job's work dir, unless ``verbose``; mmengine's full
log is in the work dir too, and the terminal shows the :class:`~.live.LiveView`.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path

import torch
from mmengine.config import Config

from .codec_job import rl_stage_dir, run_codec
from .configs import estimated_cost
from .live import LiveView
from .scheduling import dispatch_order
from .stages import PRETRAIN_STAGE, chain_cost, chain_work_dirs, longest_chains, run_stages


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


def worker(threads: int, console: str | None, job: Callable, *args):
    """A lane's process (a fresh interpreter): ``threads`` threads, its
    terminal output appended to ``console`` (when given), then ``job(*args)``."""
    torch.set_num_threads(threads)
    if console is not None:
        Path(console).parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        # the file descriptors, not sys.stdout: C++ and subprocess output too
        fd = os.open(console, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    import unigrounding  # noqa: F401  (registration)

    return job(*args)


@contextmanager
def workers_stopped_on_exit() -> Iterator[None]:
    """An ablation that stops early (a failed job, Ctrl-C, ``SIGTERM`` turned
    into ``SystemExit`` by the CLI) terminates its running workers: the pool
    alone would wait for each to finish its training, or (the parent killed)
    leave them training with nobody to collect their results."""
    try:
        yield
    except BaseException:
        for child in multiprocessing.active_children():
            child.terminate()
        raise


def codec_from_file(cfg_path: str, work: str) -> dict[str, dict]:
    """:func:`~.codec_job.run_codec` on a dumped config (a worker's job)."""
    return run_codec(Config.fromfile(cfg_path), Path(work))


def run_codecs(
    configs: dict[str, Config],
    work: Path,
    jobs: int,
    log: Callable[[str], None],
    stage_args: tuple[Path, dict, Path],
    live: bool = False,
    verbose: bool = False,
) -> tuple[Path, dict[str, dict[str, dict]], dict[str, dict]]:
    """Train stage 0, then the codecs of ``configs`` (each starting from its
    own stage chain's export, ``ablate_stages``, else stage 0's): stage 0's
    export, report rows per codec (in the order of ``configs``) and the
    metrics of the codecs' own stages. ``stage_args`` are the config folder,
    preset and data root. Results do not depend on ``jobs``."""
    cdir, settings, data_root = stage_args
    pretrain = (PRETRAIN_STAGE,)
    (pretrain_dir,) = chain_work_dirs(pretrain, cdir, settings, data_root, None)
    pretrained = pretrain_dir / "export"
    chains = {n: tuple(configs[n].pop("ablate_stages", ())) for n in configs}
    pending_chains = sorted(longest_chains({c for c in chains.values() if c}))
    after: dict = {chain: pretrain for chain in pending_chains}
    for name, own in chains.items():
        after[name] = next((c for c in pending_chains if own and c[: len(own)] == own), pretrain)
        configs[name].model.init_checkpoint = str(pretrained)  # or its own chain's export
    seconds = {name: estimated_cost(cfg) for name, cfg in configs.items()}
    seconds[pretrain] = chain_cost(pretrain, cdir, settings, data_root, None)
    for chain in pending_chains:
        seconds[chain] = chain_cost(chain, cdir, settings, data_root, pretrained)
    if seconds[pretrain] == 0:
        log(f"[ablate] reusing cached stage {PRETRAIN_STAGE}: {pretrained}")
    labels = {job: job if isinstance(job, str) else "stages " + ", ".join(job) for job in seconds}
    # a codec job's fine-tuning, then its RL stages (run_codec's rl_<k> dirs)
    progress = {
        job: [
            work / folder(job) / "progress.json",
            *(
                rl_stage_dir(work / folder(job), k) / "progress.json"
                for k in range(len(cfg.get("ablate_rl_stages", [])))
            ),
        ]
        for job, cfg in configs.items()
    }
    for chain in [pretrain, *pending_chains]:
        init = None if chain == pretrain else pretrained
        progress[chain] = [d / "progress.json" for d in chain_work_dirs(chain, *stage_args, init)]
    # A free lane takes the first ready job of this order (not a queue inside
    # the pool, which would hand out jobs before their chains are done).
    order = [pretrain, *(j for j in dispatch_order(seconds, after, jobs) if j != pretrain)]
    threads = max(1, (os.cpu_count() or 1) // jobs)
    done: set = set()
    running: dict = {}
    results: dict[str, dict] = {}
    stage_metrics: dict[str, dict] = {}
    view = LiveView(
        {labels[j]: progress[j] for j in order}, f"ablate: {len(configs)} codec job(s)", live
    )
    # spawn: a forked child would inherit torch's thread pools and any open state
    context = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(jobs, mp_context=context) as pool,
        view,
        workers_stopped_on_exit(),
    ):
        while order or running:
            ready = [j for j in order if j not in after or after[j] in done]
            for job in ready[: jobs - len(running)]:
                order.remove(job)
                where = work / folder(job) if job in configs else progress[job][0].parent
                console = None if verbose else str(where / "console.log")
                if job in configs:
                    cfg_path = dumped(configs[job], where)
                    call = codec_from_file, str(cfg_path), str(where)
                else:
                    init = None if job == pretrain else pretrained
                    call = run_stages, cdir, job, settings, data_root, init
                # stage 0 runs alone (everything starts from it): every thread
                cores = (os.cpu_count() or 1) if job == pretrain else threads
                running[pool.submit(worker, cores, console, *call)] = (job, console)
                view.update({labels[job]: "running"})
            finished, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in finished:
                job, console = running.pop(future)
                try:
                    result = future.result()
                except Exception as exc:
                    view.update({labels[job]: "failed"})
                    where = f"; its output: {console}" if console else ""
                    raise RuntimeError(f"ablation job {labels[job]} failed{where}") from exc
                done.add(job)
                view.update({labels[job]: "done"})
                log(f"[ablate] {labels[job]} done")
                if job in configs:
                    results[job] = result
                    continue
                exports, metrics = result
                if job != pretrain:
                    stage_metrics.update(metrics)
                for name, own in chains.items():
                    if own and job[: len(own)] == own:
                        configs[name].model.init_checkpoint = str(exports[len(own) - 1])
            if not finished:
                view.update({})
    return pretrained, {name: results[name] for name in configs}, stage_metrics
