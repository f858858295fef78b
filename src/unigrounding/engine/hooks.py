"""Training hooks: export of a self-contained model folder."""

from __future__ import annotations

from pathlib import Path

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from .export import export_model


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
