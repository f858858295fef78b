"""Groma's detection pretraining stage: the vision tower and a region proposer
form a class-agnostic detector; only the proposer learns (the tower is frozen,
as in Groma section 3.3). ``region_proxy`` and ``token_collective`` both start
from its export.

Parameter names match :class:`~unigrounding.models.GroundingMLLM`
(``vision.*``, ``proposers.<name>.*``), so the exported checkpoint initialises
a grounding model whose codec uses that proposer (``init_checkpoint``).
"""

from __future__ import annotations

import torch
from mmengine.model import BaseModel

from ..decoders.query_decoders import box_targets
from ..models.preprocessor import GroundingDataPreprocessor
from ..models.vlm import build_tower
from ..registry import MODELS
from ..structures import GroundingDataSample, RefTargets
from .build import build_proposers


@MODELS.register_module()
class ProposerPretrainer(BaseModel):
    """Frozen tower + one trainable proposer (mmengine modes loss / predict).

    Args:
        vision: :class:`VisionTower` arguments (as in the grounding model).
        vlm: instead of ``vision``, a pretrained VLM whose encoder is the
            tower (:func:`~unigrounding.models.vlm.build_tower`).
        proposer: config of a registered proposer.
        name: the proposer's name in ``proposers`` (the codec's lookup name).
        init_checkpoint: exported model whose ``vision.*`` weights to start from
            (e.g. the tiny preset's cell pretraining).
    """

    def __init__(
        self,
        vision: dict | None = None,
        *,
        proposer: dict,
        name: str = "proposer",
        init_checkpoint: str | None = None,
        data_preprocessor: dict | None = None,
        vlm: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor or GroundingDataPreprocessor())
        self.name = name
        self.vision = build_tower(vision, vlm)
        self.proposers = build_proposers({name: proposer}, self.vision)
        if init_checkpoint is not None:
            from ..engine.export import init_from_pretrained

            init_from_pretrained(self, init_checkpoint)
        self.vision.requires_grad_(False)

    def init_weights(self) -> None:
        """No-op: parts are initialised at construction (see GroundingMLLM)."""

    def train(self, mode: bool = True) -> ProposerPretrainer:
        super().train(mode)
        self.vision.eval()  # frozen: no batch-statistics updates either
        return self

    def forward(
        self, inputs: torch.Tensor, data_samples: list[GroundingDataSample], mode: str = "loss"
    ):
        with torch.no_grad():
            feats = self.vision(
                inputs.to(next(self.parameters()).device),
                [tuple(s.frame.input_hw) for s in data_samples],
            )
        proposer, canvas = self.proposers[self.name], tuple(inputs.shape[-2:])
        if mode == "loss":
            targets = [
                box_targets(s.gt_refs, s.frame, canvas).to(feats[0].device) for s in data_samples
            ]
            return proposer.loss(feats, canvas, targets)
        if mode == "predict":
            for sample, found in zip(data_samples, proposer.propose(feats, canvas), strict=True):
                boxes = sample.frame.boxes_to_original(found.bboxes.cpu().numpy())
                sample.pred_refs = RefTargets.build(
                    boxes.tolist(), scores=found.scores.cpu().tolist(), where=sample.sample_id
                )
            return data_samples
        raise ValueError(f"unknown mode {mode!r}")
