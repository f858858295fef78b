"""Checkpoints read with torch's weights-only unpickler, and errors that say
which file is wrong and how.

torch 2.6 made ``torch.load`` default to ``weights_only=True``; mmengine 0.10.7
pickles objects into every checkpoint that the safe loader refuses:

* the message hub's ``HistoryBuffer`` objects, whose statistics methods pickle
  as ``getattr(HistoryBuffer, "min")`` — allowing the ``getattr`` global would
  let a crafted checkpoint reach arbitrary code, so it is not an option;
* parameter schedulers' bound methods (``OneCycleLR.anneal_func``), also
  ``getattr`` reductions;
* numpy arrays / scalars / dtypes.

:class:`SafeCheckpointHook` writes the first two as plain data before saving and
rebuilds them after loading (the schedulers' callables are rebuilt from the
config when the scheduler is constructed, so they are simply not saved);
:func:`allow_mmengine_checkpoint_globals` allow-lists the numpy and mmengine
types that remain. Checkpoints saved without the hook are refused: nothing a
checkpoint holds may run code when it is loaded.

:func:`read_checkpoint` is the one reader of ``.pth`` files: mmengine's loader
of local paths (``load_from``, ``--resume``, ``eval --checkpoint``), the
sharded runners and the vision tower's checkpoint all read through it, and a
file that cannot be read is a :class:`CheckpointError` naming it and saying
why (truncated, not a checkpoint, refused content); :func:`read_safetensors`
names the file of a safetensors error.
"""

from __future__ import annotations

import collections
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS
from safetensors import SafetensorError
from safetensors.torch import load_file

_PLAIN_BUFFER = "__history_buffer__"
#: the first bytes of a zip archive, torch's format since 1.6
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names ``path`` and why."""

    def __init__(self, message: str, path: str | Path) -> None:
        super().__init__(message)
        self.path = Path(path)


def checkpoint_problem(path: str | Path) -> str | None:
    """What makes the existing file ``path`` no checkpoint, from its size and
    its zip index alone (cheap: no tensor is read); ``None`` if nothing
    does. Finds truncated and empty files, not refused content."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes): its save or copy was cut short"
    with path.open("rb") as f:
        if f.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
            return None  # torch's legacy format (a bare pickle) has no index to check
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        # torch writes the archive's index last: a cut-short save or copy lacks it
        return f"is truncated ({size} bytes, no zip index): its save or copy was cut short"
    if not any(name.endswith("data.pkl") for name in names):
        return "is not a PyTorch checkpoint (a zip archive without data.pkl)"
    return None


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, or a :class:`CheckpointError`
    naming the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    problem = checkpoint_problem(path)
    if problem is not None:
        raise CheckpointError(f"checkpoint {path} {problem}", path)
    try:
        return torch.load(str(path), map_location=map_location, weights_only=True)
    except EOFError:
        message = f"checkpoint {path} is truncated: its save or copy was cut short"
        raise CheckpointError(message, path) from None
    except pickle.UnpicklingError as err:
        # ``from None``: torch's own message advises weights_only=False, which
        # would let the file run code
        raise CheckpointError(f"checkpoint {path} {_refusal(err)}", path) from None
    except RuntimeError as err:  # a damaged archive, a device the file's tensors name
        raise CheckpointError(f"checkpoint {path} cannot be read: {err}", path) from err


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of safetensors file ``path``, or a :class:`CheckpointError`
    naming it (safetensors' own errors do not)."""
    try:
        return load_file(str(path))
    except SafetensorError as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err})", path) from err


def _refusal(err: pickle.UnpicklingError) -> str:
    """Why the weights-only unpickler refused a file, without torch's advice."""
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    if found is None:
        return "is not a PyTorch checkpoint (its bytes do not unpickle as tensors and plain data)"
    return (
        f"was refused: it pickles `{found[1]}`, which loading would have to import and call. "
        "Checkpoints are read as tensors and plain data only, so that no file runs code when "
        "loaded (training with SafeCheckpointHook, as the shipped schedules do, saves no other)"
    )


def load_from_local_file(filename: str, map_location: Any) -> Any:
    """mmengine's loader of local paths (which calls ``torch.load`` and lets
    its error pass without the file's name), replaced by :func:`read_checkpoint`."""
    return read_checkpoint(os.path.expanduser(filename), map_location)


def use_safe_local_loader() -> None:
    """Route mmengine's loading of local checkpoint paths through
    :func:`load_from_local_file`. Called where mmengine's runner is imported
    anyway, not when this module is: importing ``mmengine.runner`` imports
    DeepSpeed, whose import logs to stdout (``unigrounding codecs`` prints
    JSON there)."""
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes="", force=True)(load_from_local_file)


def _numpy_globals() -> list:
    reconstruct = np._core.multiarray._reconstruct
    scalar = np._core.multiarray.scalar
    dtypes = [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool", "uint8")]
    return [reconstruct, scalar, np.ndarray, np.dtype, *dtypes]


def allow_mmengine_checkpoint_globals() -> None:
    """Register the plain-data globals mmengine checkpoints contain."""
    torch.serialization.add_safe_globals([ConfigDict, collections.OrderedDict, *_numpy_globals()])


def _scheduler_states(checkpoint: dict) -> list[dict]:
    states = checkpoint.get("param_schedulers", [])
    if isinstance(states, dict):  # one list per optimizer
        return [s for group in states.values() for s in group]
    return list(states)


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Keep checkpoints loadable with ``torch.load(weights_only=True)``."""

    priority = "VERY_HIGH"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        scalars = checkpoint.get("message_hub", {}).get("log_scalars", {})
        for key, buf in list(scalars.items()):
            if isinstance(buf, HistoryBuffer):
                log, count = buf.data
                scalars[key] = {
                    _PLAIN_BUFFER: True,
                    "log": [float(v) for v in log],
                    "count": [int(v) for v in count],
                    "max_length": buf.max_length,
                }
        for state in _scheduler_states(checkpoint):
            for key in [k for k, v in state.items() if callable(v)]:
                del state[key]  # rebuilt from the config by the scheduler's constructor

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        scalars = checkpoint.get("message_hub", {}).get("log_scalars", {})
        for key, value in list(scalars.items()):
            if isinstance(value, dict) and value.get(_PLAIN_BUFFER):
                scalars[key] = HistoryBuffer(value["log"], value["count"], value["max_length"])
