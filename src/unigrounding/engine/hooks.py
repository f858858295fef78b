"""Training hooks: export of a self-contained safetensors model directory."""

from __future__ import annotations

from pathlib import Path

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from .export import export_model


@HOOKS.register_module()
class ExportHook(Hook):
    """After training, write ``work_dir/<dirname>/`` (``model.safetensors``, the
    config and the tokenizer) for :func:`unigrounding.load` and ``eval``."""

    priority = "LOWEST"

    def __init__(self, dirname: str = "export") -> None:
        self.dirname = dirname

    def after_train(self, runner) -> None:
        if runner.rank == 0:
            export_model(runner.model, runner.cfg, Path(runner.work_dir) / self.dirname)
