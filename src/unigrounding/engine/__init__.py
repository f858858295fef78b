"""mmengine integration: safe checkpoint loading, export, hooks."""

from .export import export_model, load_weights
from .hooks import AtomicCheckpointHook, ExportHook
from .progress import ProgressHook
from .safe_load import (
    CheckpointError,
    SafeCheckpointHook,
    allow_mmengine_checkpoint_globals,
    read_checkpoint,
)

allow_mmengine_checkpoint_globals()

__all__ = [
    "AtomicCheckpointHook",
    "CheckpointError",
    "SafeCheckpointHook",
    "ExportHook",
    "ProgressHook",
    "allow_mmengine_checkpoint_globals",
    "export_model",
    "load_weights",
    "read_checkpoint",
]
