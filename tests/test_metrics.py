import numpy as np
import pytest
import torch

from unigrounding.evaluation import RECMetric, RESMetric
from unigrounding.structures import GroundingDataSample, RefTargets


def _sample(gt_boxes, pred_boxes, pred_masks=None, gt_masks=None, failures=0, hw=(10, 10)):
    s = GroundingDataSample(metainfo={"ori_shape": hw, "decode_ms": 1.0})
    s.gt_refs = RefTargets.build(gt_boxes, masks=gt_masks) if len(gt_boxes) else RefTargets.empty()
    if pred_boxes is None:
        s.pred_refs = RefTargets.empty(parse_failures=failures)
    else:
        s.pred_refs = RefTargets.build(pred_boxes, masks=pred_masks)
        s.pred_refs.set_metainfo({"parse_failures": failures})
    return s


def _run(metric, samples):
    metric.process({}, [s.to_dict() for s in samples])  # as mmengine's Evaluator hands them over
    return metric.compute_metrics(metric.results)


def test_rec_hand_computed():
    samples = [
        _sample([[0, 0, 4, 4]], [[0, 0, 4, 4]]),  # IoU 1
        _sample([[0, 0, 4, 4]], [[0, 0, 4, 2]]),  # IoU 8/16 = 0.5 exactly: a hit (>=)
        _sample([[0, 0, 4, 4]], [[2, 2, 6, 6]]),  # IoU 4/28
        _sample([[0, 0, 4, 4]], None, failures=1),  # unreadable: a miss, counted
    ]
    out = _run(RECMetric(thresholds=(0.5, 0.75)), samples)
    assert out["acc@0.5"] == pytest.approx(2 / 4)
    assert out["acc@0.75"] == pytest.approx(1 / 4)
    assert out["miou"] == pytest.approx((1 + 0.5 + 4 / 28 + 0) / 4)
    assert out["missing"] == 1 and out["parse_failures"] == 1 and out["n"] == 4


def test_rec_uses_first_prediction_only():
    out = _run(RECMetric(), [_sample([[0, 0, 4, 4]], [[6, 6, 8, 8], [0, 0, 4, 4]])])
    assert out["acc@0.5"] == 0.0


def test_res_ciou_giou_hand_computed():
    hw = (4, 4)
    gt1 = np.zeros((1, *hw), bool)
    gt1[0, :2, :2] = True  # 4 px
    pred1 = np.zeros((1, *hw), bool)
    pred1[0, :2, :] = True  # 8 px, I = 4, U = 8
    gt2 = np.zeros((1, *hw), bool)
    gt2[0, 3, 3] = True  # 1 px
    pred2 = np.zeros((1, *hw), bool)
    pred2[0, 0, 0] = True  # I = 0, U = 2
    samples = [
        _sample([[0, 0, 2, 2]], [[0, 0, 4, 2]], pred_masks=pred1, gt_masks=gt1, hw=hw),
        _sample([[3, 3, 4, 4]], [[0, 0, 1, 1]], pred_masks=pred2, gt_masks=gt2, hw=hw),
        _sample([], None, hw=hw),  # no target, predicted empty: IoU 1 for gIoU
    ]
    out = _run(RESMetric(), samples)
    assert out["ciou"] == pytest.approx(4 / 10)
    assert out["giou"] == pytest.approx((0.5 + 0 + 1) / 3)


def test_res_box_only_prediction_is_counted_not_silently_rasterised():
    hw = (4, 4)
    gt = np.ones((1, *hw), bool)
    s = _sample([[0, 0, 4, 4]], [[0, 0, 4, 4]], gt_masks=gt, hw=hw)
    strict = _run(RESMetric(), [s])
    assert strict["no_mask_output"] == 1 and strict["ciou"] == 0.0
    loose = _run(RESMetric(boxes_as_masks=True), [s])
    assert loose["ciou"] == 1.0


def test_rec_rejects_multi_target_samples():
    with pytest.raises(ValueError, match="exactly one target"):
        _run(RECMetric(), [_sample([[0, 0, 1, 1], [2, 2, 3, 3]], [[0, 0, 1, 1]])])
    assert torch.is_tensor(_sample([[0, 0, 1, 1]], None).gt_refs.boxes)
