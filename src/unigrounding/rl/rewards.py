"""Rewards of an RL stage that any box-answering codec can use.

A reward is called with one decoded sample (``pred_refs`` in original
pixels, ``gt_refs``, the answer text in ``metainfo["pred_text"]``) and
returns a float. :class:`~.policy.GRPOPolicy` sums a stage's rewards, each
times its ``weight``.
"""

from __future__ import annotations

from ..evaluation.grounding import rec_iou
from ..registry import REWARDS
from ..structures import GroundingDataSample


@REWARDS.register_module()
class BoxIoUReward:
    """REC accuracy made smooth: the IoU of the first predicted box with the
    target box, as RECMetric scores it (0 without a box)."""

    name = "iou"

    def __call__(self, sample: GroundingDataSample) -> float:
        pred, gt = sample.pred_refs, sample.gt_refs
        iou = rec_iou({"boxes": pred.boxes}, {"boxes": gt.boxes}, sample.metainfo.get("sample_id"))
        return 0.0 if iou is None else iou


@REWARDS.register_module()
class AnswerFormatReward:
    """1 for an answer the codec reads whole (at least one referent, no part
    it could not parse or had to repair), else 0: the format reward of
    R1-style grounding RL, which keeps sampled answers well-formed."""

    name = "format"

    def __call__(self, sample: GroundingDataSample) -> float:
        refs = sample.pred_refs
        broken = refs.metainfo.get("parse_failures", 0) + refs.metainfo.get("parse_repairs", 0)
        return float(len(refs) > 0 and broken == 0)
