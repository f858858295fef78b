"""Make mmengine 0.10.7 checkpoints loadable under torch >= 2.6.

torch 2.6 switched ``torch.load`` to ``weights_only=True``; mmengine's resume
then fails on the non-tensor objects it pickles into every checkpoint (the
message hub's ``HistoryBuffer`` with its numpy arrays, ``ConfigDict`` ...).
Rather than turning the safe loader off, we allow-list exactly those globals.
"""

from __future__ import annotations

import collections

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.logging import HistoryBuffer


def _numpy_globals() -> list:
    reconstruct = getattr(np, "_core", np.core).multiarray._reconstruct
    dtypes = [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool", "uint8")]
    return [reconstruct, np.ndarray, np.dtype, *dtypes, np.float64, np.float32, np.int64, np.int32]


def allow_mmengine_checkpoint_globals() -> None:
    """Register the globals mmengine's checkpoints need with torch's safe loader."""
    torch.serialization.add_safe_globals(
        [
            HistoryBuffer,
            ConfigDict,
            collections.OrderedDict,
            collections.defaultdict,
            *_numpy_globals(),
        ]
    )
