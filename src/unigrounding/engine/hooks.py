"""Training hooks: checkpoints saved so that a crash never spoils the latest
one, and export of a self-contained model folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mmengine.dist import barrier, is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS

from .export import export_model

#: the folder under the checkpoint folder a checkpoint is written into before it is complete
STAGING = ".partial"


def shard_dir(checkpoint: str | Path) -> Path:
    """The shard folder beside mmengine's checkpoint file (sharded runners)."""
    return Path(f"{checkpoint}.shards")


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook``, whose saves a crash cannot spoil.

    mmengine removes the outdated checkpoints first and then writes the new
    one in place, so a crash or a full disk during a save leaves a truncated
    ``iter_N.pth`` — with ``max_keep_ckpts=1``, and no good one beside it.
    Here a checkpoint (and a sharded runner's ``.shards`` folder beside it) is
    written into ``<out_dir>/.partial/`` and moved into place once complete,
    the work dir's ``last_checkpoint`` is replaced rather than rewritten, and
    only then are the outdated checkpoints removed (so ``max_keep_ckpts + 1``
    exist for the time of a save). Checkpoints on a remote backend are saved
    as mmengine saves them.
    """

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        if not isinstance(self.file_backend, LocalBackend):
            super()._save_checkpoint_with_step(runner, step, meta)
            return
        outdated = self._keep(runner, step)
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        staging = Path(self.out_dir) / STAGING
        if is_main_process():
            shutil.rmtree(staging, ignore_errors=True)  # what a crashed save left
            staging.mkdir(parents=True)
        barrier()  # under a sharded runner every rank writes into the folder just made
        runner.save_checkpoint(
            str(staging),
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args,
        )
        if not is_main_process():  # the runner's save ends once every rank has written
            return
        _move_checkpoint(staging / filename, Path(self.last_ckpt))
        staging.rmdir()
        record = Path(runner.work_dir) / "last_checkpoint"
        partial = record.with_name(f"{record.name}{STAGING}")
        partial.write_text(self.last_ckpt)
        os.replace(partial, record)
        if outdated is not None:
            _remove_checkpoint(Path(self.out_dir) / self.filename_tmpl.format(outdated))

    def _keep(self, runner, step: int) -> int | None:
        """mmengine's record of the kept checkpoints (saved with each one),
        ``step`` added; the step that drops out, removed once ``step``'s
        checkpoint is in place."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return None
        outdated = None
        if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
            outdated = self.keep_ckpt_ids.popleft()
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))
        return outdated


def _move_checkpoint(source: Path, target: Path) -> None:
    """Move a complete checkpoint into place: the shard folder first, the
    file (what resume reads first, naming the folder) last."""
    shards = shard_dir(source)
    if shards.is_dir():
        # os.replace does not replace a non-empty folder: an earlier save of this step
        shutil.rmtree(shard_dir(target), ignore_errors=True)
        os.replace(shards, shard_dir(target))
    os.replace(source, target)


def _remove_checkpoint(path: Path) -> None:
    """Remove a checkpoint file and its shard folder (mmengine's hook leaves the folder)."""
    path.unlink(missing_ok=True)
    shutil.rmtree(shard_dir(path), ignore_errors=True)


@HOOKS.register_module()
class ExportHook(Hook):
    """After training, write ``work_dir/<dirname>/`` (see
    :mod:`~unigrounding.engine.export`) for :func:`unigrounding.load` and ``eval``.

    Args:
        dirname: folder name under the work dir.
        lora: ``"merge"`` or ``"adapter"`` (:func:`~.export.export_model`).
        llm_dtype: dtype of the saved LLM (e.g. ``"bfloat16"``); ``None``: as trained.
    """

    priority = "LOWEST"

    def __init__(
        self, dirname: str = "export", lora: str = "merge", llm_dtype: str | None = None
    ) -> None:
        self.dirname, self.lora, self.llm_dtype = dirname, lora, llm_dtype

    def after_train(self, runner) -> None:
        state = None
        if hasattr(runner.model, "full_state_dict"):  # a sharded model: every rank gathers
            state = runner.model.full_state_dict()
        if runner.rank == 0:
            export_model(
                runner.model,
                runner.cfg,
                Path(runner.work_dir) / self.dirname,
                lora=self.lora,
                llm_dtype=self.llm_dtype,
                state=state,
            )
