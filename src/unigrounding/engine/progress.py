"""A run's progress where people and other processes can read it.

:class:`ProgressHook` keeps ``<work_dir>/progress.json`` current — phase
(``train`` / ``val`` / ``test`` / ``done``), iteration, total, last loss,
elapsed and estimated remaining seconds — which ``unigrounding ablate``'s
live view reads from its worker processes. With ``bar=True`` it also draws
a progress bar on the terminal, and with ``quiet_console=True`` the
terminal shows mmengine's warnings only: the full log stays in the work
dir's log file (``<work_dir>/<timestamp>/<timestamp>.log``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def read_progress(path: str | Path) -> dict | None:
    """A ``progress.json`` as written by :class:`ProgressHook`; ``None`` if
    there is none yet (or it is being replaced)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


@HOOKS.register_module()
class ProgressHook(Hook):
    """Args:
    bar: draw a tqdm bar (rank 0).
    quiet_console: the terminal shows warnings only, the log file everything.
    every_s: write ``progress.json`` at most this often (and at each phase's end).
    """

    priority = "VERY_LOW"

    def __init__(self, bar: bool = False, quiet_console: bool = False, every_s: float = 0.5):
        self.bar, self.quiet_console, self.every_s = bar, quiet_console, every_s
        self.state: dict = {}
        self._written = 0.0
        self._bar = None
        self._phase_start = 0.0

    def before_run(self, runner) -> None:
        if self.quiet_console:
            for handler in runner.logger.handlers:
                # FileHandler is a StreamHandler too: only the terminal's is quietened
                if isinstance(handler, logging.StreamHandler) and not isinstance(
                    handler, logging.FileHandler
                ):
                    handler.setLevel(logging.WARNING)

    # ------------------------------------------------------------ phases
    def _start(self, runner, phase: str, total: int, done: int = 0) -> None:
        self._phase_start = time.perf_counter()
        self.state = {"phase": phase, "iter": done, "total": total, "loss": None, "started": done}
        self._write(runner, force=True)
        if self.bar and runner.rank == 0:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=done, desc=phase, unit="it", dynamic_ncols=True)

    def _step(self, runner, loss: float | None = None) -> None:
        self.state["iter"] += 1
        if loss is not None:
            self.state["loss"] = loss
        if self._bar is not None:
            self._bar.update(1)
            if loss is not None:
                self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        self._write(runner)

    def _end(self, runner) -> None:
        self._write(runner, force=True)
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def before_train(self, runner) -> None:
        self._start(runner, "train", runner.max_iters, runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else None
        self._step(runner, float(loss.detach()) if hasattr(loss, "detach") else loss)

    def after_train(self, runner) -> None:
        self._end(runner)

    def before_val_epoch(self, runner) -> None:
        self._start(runner, "val", len(runner.val_dataloader))

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step(runner)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._end(runner)

    def before_test_epoch(self, runner) -> None:
        self._start(runner, "test", len(runner.test_dataloader))

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step(runner)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._end(runner)

    def after_run(self, runner) -> None:
        self.state["phase"] = "done"
        self._write(runner, force=True)

    # ------------------------------------------------------------ file
    def _write(self, runner, force: bool = False) -> None:
        now = time.perf_counter()
        if runner.rank != 0 or (not force and now - self._written < self.every_s):
            return
        self._written = now
        elapsed = now - self._phase_start
        steps = self.state.get("iter", 0) - self.state.get("started", 0)
        left = self.state.get("total", 0) - self.state.get("iter", 0)
        state = dict(self.state, elapsed_s=elapsed, eta_s=elapsed / steps * left if steps else None)
        path = Path(runner.work_dir) / "progress.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)  # a reader never sees half a file
