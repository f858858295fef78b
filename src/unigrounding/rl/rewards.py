"""Rewards of an RL stage that any box-answering codec can use.

A reward is called with one decoded sample (``pred_refs`` in original
pixels, ``gt_refs``, the answer text in ``metainfo["pred_text"]``) and
returns a float. :class:`~.policy.GRPOPolicy` sums a stage's rewards, each
times its ``weight``.
"""

from __future__ import annotations

from ..evaluation.grounding import rec_iou
from ..registry import REWARDS
from ..structures import GroundingDataSample, RefTargets, mask_iou_ratio


def box_iou(refs: RefTargets, sample: GroundingDataSample) -> float:
    """The IoU of the first box of ``refs`` with the sample's target box, as
    RECMetric scores it (0 without a box)."""
    gt, sample_id = sample.gt_refs, sample.metainfo.get("sample_id")
    iou = rec_iou({"boxes": refs.boxes}, {"boxes": gt.boxes}, sample_id)
    return 0.0 if iou is None else iou


@REWARDS.register_module()
class BoxIoUReward:
    """REC accuracy made smooth: the IoU of the first predicted box with the
    target box (:func:`box_iou`)."""

    name = "iou"

    def __call__(self, sample: GroundingDataSample) -> float:
        return box_iou(sample.pred_refs, sample)


@REWARDS.register_module()
class MaskIoUReward:
    """RES made smooth: the IoU of the first predicted mask with the target's
    first mask (0 without a predicted mask or with an empty union): the mask
    reward of GETok-R1's grid stage, which names it without a formula."""

    name = "mask_iou"

    def __call__(self, sample: GroundingDataSample) -> float:
        pred, gt = sample.pred_refs, sample.gt_refs
        if "masks" not in gt or not len(gt):
            raise KeyError(
                f"sample {sample.metainfo.get('sample_id')}: MaskIoUReward needs target "
                "masks (a RES dataset)"
            )
        if "masks" not in pred or not len(pred):
            return 0.0
        return mask_iou_ratio(pred.masks[0].numpy(), gt.masks[0].numpy())


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


@REWARDS.register_module()
class BoxRefinementReward:
    """A follow-up pass scored by what it adds: the IoU of the refined first
    box with the target minus that of the first answer decoded alone
    (negative when the pass hurt). GETok-R1's box refinement reward for its
    offset stage (Appendix C.3 names it without a formula; the gain form
    scores the offsets alone, whatever proposal they were given). Reads the
    first answer from ``metainfo["first_pass_refs"]``, which a
    :class:`~.policy.GRPOPolicy` with ``follow_up=True`` records. Within a
    group the proposal is shared, so the advantages equal those of
    :class:`BoxIoUReward`; the gain is what the curves show."""

    name = "box_gain"

    def __call__(self, sample: GroundingDataSample) -> float:
        if "first_pass_refs" not in sample.metainfo:
            raise KeyError(
                f"sample {sample.metainfo.get('sample_id')}: BoxRefinementReward scores a "
                "refinement and needs the proposal (a GRPOPolicy with follow_up=True)"
            )
        proposal = sample.metainfo["first_pass_refs"]
        return box_iou(sample.pred_refs, sample) - box_iou(proposal, sample)
