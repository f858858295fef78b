"""The data preprocessor of every model here: batches to the model's device."""

from __future__ import annotations

import torch
from mmengine.model import BaseDataPreprocessor
from mmengine.structures import BaseDataElement

from ..registry import MODELS


def _on(value, device: torch.device) -> bool:
    """Whether everything ``BaseDataElement.to`` would move is on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.device == device
    if isinstance(value, BaseDataElement):
        return all(_on(v, device) for v in value.values())
    return True


@MODELS.register_module()
class GroundingDataPreprocessor(BaseDataPreprocessor):
    """mmengine's preprocessor, except that a data sample already on the
    model's device is passed on as it is: mmengine's copies every sample, its
    metainfo deep-copied, at every step even when nothing moves (on the CPU,
    1.5-2% of a tiny-preset training step by py-spy)."""

    def cast_data(self, data):
        if isinstance(data, BaseDataElement) and _on(data, self.device):
            return data
        return super().cast_data(data)
