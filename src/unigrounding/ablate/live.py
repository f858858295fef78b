"""The ablation's terminal: one live table of its jobs.

Each job trains in a worker process whose own terminal output goes to a file
in its work dir; what the table shows comes from the ``progress.json`` its
:class:`~unigrounding.engine.progress.ProgressHook` keeps current.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..engine.progress import read_progress


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class LiveView:
    """A live table of ``jobs`` (label → the ``progress.json`` files of its
    stages, in order): state, phase, iteration, loss, elapsed, ETA.

    Used as a context manager; ``update(states)`` redraws with each job's
    state (``waiting`` / ``running`` / ``done``). Disabled, it draws nothing."""

    def __init__(self, jobs: dict[str, list[Path]], title: str, enabled: bool = True) -> None:
        self.jobs, self.title, self.enabled = jobs, title, enabled
        self.states = dict.fromkeys(jobs, "waiting")
        self.started = time.perf_counter()
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        if self.enabled:
            self._live = Live(self.render(), console=Console(), refresh_per_second=2)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(*exc)

    def update(self, states: dict[str, str]) -> None:
        self.states.update(states)
        if self._live is not None:
            self._live.update(self.render())

    def _progress(self, label: str) -> tuple[str, dict | None]:
        """The job's current stage (``k/n`` for a chain) and its progress."""
        files = self.jobs[label]
        found = [(k, read_progress(f)) for k, f in enumerate(files)]
        found = [(k, p) for k, p in found if p is not None]
        if not found:
            return "", None
        k, progress = found[-1]
        return (f"{k + 1}/{len(files)}" if len(files) > 1 else ""), progress

    def render(self) -> Group:
        table = Table(expand=False, box=None, pad_edge=False, header_style="bold")
        for column in ("job", "state", "stage", "phase", "iteration", "loss", "elapsed", "ETA"):
            table.add_column(column, justify="right" if column != "job" else "left", no_wrap=True)
        for label in self.jobs:
            state = self.states[label]
            stage, progress = self._progress(label) if state != "waiting" else ("", None)
            row = [label, state, stage, "", "", "", "", ""]
            if progress and state == "running":
                loss = progress.get("loss")
                row[3:] = [
                    progress.get("phase", ""),
                    f"{progress.get('iter', 0)}/{progress.get('total', 0)}",
                    f"{loss:.4f}" if loss is not None else "",
                    _duration(progress.get("elapsed_s")),
                    _duration(progress.get("eta_s")),
                ]
            style = {"done": "green", "running": "bold", "waiting": "dim"}.get(state, "red")
            table.add_row(*row, style=style)
        done = sum(s == "done" for s in self.states.values())
        head = Text(
            f"{self.title} — {done}/{len(self.jobs)} jobs done, "
            f"{_duration(time.perf_counter() - self.started)} elapsed",
            style="bold",
        )
        return Group(head, table)
