"""mmengine integration: safe checkpoint loading, export, hooks."""

from .export import export_model, load_weights
from .hooks import ExportHook
from .safe_load import SafeCheckpointHook, allow_mmengine_checkpoint_globals

allow_mmengine_checkpoint_globals()

__all__ = [
    "SafeCheckpointHook",
    "ExportHook",
    "allow_mmengine_checkpoint_globals",
    "export_model",
    "load_weights",
]
