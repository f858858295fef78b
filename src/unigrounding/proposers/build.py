"""Building a model's proposers from config."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from ..registry import PROPOSERS

if TYPE_CHECKING:  # the tower is only read here: importing models would close a cycle
    from ..models.vision import VisionTower


def build_proposers(configs: dict[str, dict] | None, vision: VisionTower) -> nn.ModuleDict:
    """Proposers by name, each given the tower's level channels and strides."""
    return nn.ModuleDict(
        {
            name: PROPOSERS.build(
                dict(cfg, in_channels=list(vision.channels), in_strides=list(vision.strides))
            )
            for name, cfg in (configs or {}).items()
        }
    )
