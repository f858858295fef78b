"""Resume under torch >= 2.6, without turning the safe loader off.

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
types that remain. Old checkpoints saved without the hook still need
``weights_only=False`` and a trusted file.
"""

from __future__ import annotations

import collections

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS

_PLAIN_BUFFER = "__history_buffer__"


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
