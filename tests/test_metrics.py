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


# ---------------------------------------------------------------- benchmark metrics
def _mask(hw, *cells):
    m = np.zeros(hw, dtype=bool)
    for y0, y1, x0, x1 in cells:
        m[y0:y1, x0:x1] = True
    return m


def test_gres_hand_computed_with_no_target_samples():
    from unigrounding.evaluation import GRESMetric

    hw = (10, 10)
    target = _mask(hw, (0, 4, 0, 4))  # 16 px
    samples = [
        # target 16 px, prediction 8 px inside it: I 8, U 16
        _sample(
            [[0, 0, 4, 4]], [[0, 0, 4, 2]], pred_masks=[_mask(hw, (0, 4, 0, 2))], gt_masks=[target]
        ),
        # no target, predicted empty: gIoU 1, adds nothing to cIoU
        _sample([], None),
        # no target, predicted 4 px: gIoU 0, U += 4
        _sample([], [[5, 5, 7, 7]], pred_masks=[_mask(hw, (5, 7, 5, 7))]),
        # target, predicted empty: gIoU 0, U += 16
        _sample([[0, 0, 4, 4]], None, gt_masks=[target]),
    ]
    out = _run(GRESMetric(), samples)
    assert out["ciou"] == pytest.approx(8 / (16 + 4 + 16))
    assert out["giou"] == pytest.approx((0.5 + 1 + 0 + 0) / 4)
    assert out["n_acc"] == pytest.approx(1 / 2) and out["t_acc"] == pytest.approx(1 / 2)
    assert out["no_target_samples"] == 2


def test_gres_target_with_an_empty_mask_is_a_target():
    """A referent with a box but an empty mask is a target (ReLA scores its
    mask: I and U as they come), not a no-target sample.

    * box [0, 0, 4, 4], empty mask, predicted 4 px: I 0, U 4, IoU 0; non-empty
      prediction: a T-acc hit;
    * the same, predicted empty: I 0, U 0, IoU 0 (ReLA: 0 when U is 0); T-acc miss;
    * target 16 px, predicted 8 px inside it: I 8, U 16, IoU 0.5; T-acc hit.
    cIoU 8 / (4 + 0 + 16) = 0.4; gIoU (0 + 0 + 0.5) / 3 = 1/6; T-acc 2/3; no
    no-target sample, N-acc None. (Before: the two empty masks were no-target
    samples, gIoU (0 + 1 + 0.5) / 3, N-acc 1/2, T-acc 1.)"""
    from unigrounding.evaluation import GRESMetric

    hw = (10, 10)
    blank, target = np.zeros((1, *hw), dtype=bool), _mask(hw, (0, 4, 0, 4))
    samples = [
        _sample(
            [[0, 0, 4, 4]], [[5, 5, 7, 7]], pred_masks=[_mask(hw, (5, 7, 5, 7))], gt_masks=blank
        ),
        _sample([[0, 0, 4, 4]], None, gt_masks=blank),
        _sample(
            [[0, 0, 4, 4]], [[0, 0, 4, 2]], pred_masks=[_mask(hw, (0, 4, 0, 2))], gt_masks=[target]
        ),
    ]
    out = _run(GRESMetric(), samples)
    assert out["ciou"] == pytest.approx(8 / 20)
    assert out["giou"] == pytest.approx(0.5 / 3)
    assert out["t_acc"] == pytest.approx(2 / 3) and out["n_acc"] is None
    assert out["no_target_samples"] == 0 and out["protocol"] == "gres rela"


def test_gres_no_target_is_a_referent_without_instances():
    """No target is the referent with no instance (gRefCOCO ``ann_id`` [-1]
    loads as an empty ``gt_refs``), independent of any mask: below, the
    first two samples both have an empty target mask and an empty
    prediction, and score differently.

    * no target, predicted empty: gIoU 1, N-acc hit, adds nothing to cIoU;
    * target box with an empty mask, predicted empty: gIoU 0, T-acc miss;
    * no target, predicted 4 px: gIoU 0, N-acc miss, U += 4;
    * target 16 px, predicted 8 px inside it: gIoU 0.5, T-acc hit, I 8, U 16.
    cIoU 8 / (0 + 0 + 4 + 16) = 0.4; gIoU (1 + 0 + 0 + 0.5) / 4 = 0.375;
    N-acc 1/2; T-acc 1/2."""
    from unigrounding.evaluation import GRESMetric

    hw = (10, 10)
    blank, target = np.zeros((1, *hw), dtype=bool), _mask(hw, (0, 4, 0, 4))
    samples = [
        _sample([], None),
        _sample([[0, 0, 4, 4]], None, gt_masks=blank),
        _sample([], [[5, 5, 7, 7]], pred_masks=[_mask(hw, (5, 7, 5, 7))]),
        _sample(
            [[0, 0, 4, 4]], [[0, 0, 4, 2]], pred_masks=[_mask(hw, (0, 4, 0, 2))], gt_masks=[target]
        ),
    ]
    out = _run(GRESMetric(), samples)
    assert out["ciou"] == pytest.approx(8 / 20)
    assert out["giou"] == pytest.approx(1.5 / 4)
    assert out["n_acc"] == pytest.approx(1 / 2) and out["t_acc"] == pytest.approx(1 / 2)
    assert out["no_target_samples"] == 2


def test_lvis_ground_ar_as_many_hand_computed():
    from unigrounding.evaluation import LVISGroundAR

    def sample(gt, pred, scores, category, hw=(200, 200)):
        s = GroundingDataSample(metainfo={"ori_shape": hw, "category": category})
        s.gt_refs = RefTargets.build(gt)
        s.pred_refs = RefTargets.build(pred, scores=scores)
        return s

    samples = [
        # cat A, 2 targets: the best-scored prediction is exact, the second misses;
        # the third prediction (exact on target 2) is cut by AS-MANY (k = 2)
        sample(
            [[0, 0, 10, 10], [50, 50, 150, 150]],
            [[0, 0, 10, 10], [160, 160, 170, 170], [50, 50, 150, 150]],
            [0.9, 0.8, 0.1],
            "A",
        ),
        # cat B, 1 target, IoU 0.6 (10x10 box vs 10x6 inside it)
        sample([[0, 0, 10, 10]], [[0, 0, 10, 6]], [0.5], "B"),
    ]
    out = _run(LVISGroundAR(), samples)
    # A recalls 1 of 2 at every threshold; B at 0.5, 0.55 and 0.6 (IoU exactly
    # 0.6 counts: >=), 3 of 10 thresholds
    assert out["ar"] == pytest.approx((0.5 + 0.3) / 2)
    assert out["ar@0.5"] == pytest.approx((0.5 + 1) / 2)
    assert out["ar@0.75"] == pytest.approx((0.5 + 0) / 2)
    # small: A's 10x10 (hit) and B's 10x10 (3/10); large: A's 100x100 (missed)
    assert out["ar_small"] == pytest.approx((1.0 + 0.3) / 2)
    assert out["ar_large"] == 0.0 and out["ar_medium"] is None
    assert out["categories"] == 2
    # no target_areas metainfo: every target is bucketed by its box area, and counted
    assert out["areas_from_boxes"] == 3 and out["protocol"] == "lvis-ground groma"


def test_lvis_ground_buckets_hand_computed():
    """lvis-api's size buckets: closed ranges on the annotation's area, one
    matching per range in which a prediction prefers targets inside the range.

    Image 200 x 200, one category, targets (box, annotation area):
      g1 [0, 0, 32, 32], 1024 = 32²: on a bound, small and medium;
      g2 [100, 100, 196, 196], 9216 = 96²: on a bound, medium and large;
      g3 [0, 0, 40, 32] (box area 1280, medium), area 1000: small.
    Predictions (score), four for three targets:
      p1 (0.9) [0, 0, 40, 32]: IoU g3 1, g1 1024 / 1280 = 0.8;
      p2 (0.8) [100, 100, 196, 148]: IoU g2 4608 / 9216 = 0.5;
      p3 (0.7) [150, 0, 190, 40]: overlaps nothing;
      p4 (0.1) [0, 0, 32, 32] would be exact on g1, but AS-MANY keeps 3.
    Recall at the 10 thresholds 0.50:0.05:0.95:
      all:    p1 takes g3 (IoU 1 beats 0.8), p2 takes g2 at 0.5 only:
              2/3 at 0.5, 1/3 at the 9 others: AR (2/3 + 9/3) / 10 = 11/30;
      small:  g1, g3 (g2 ignored): p1 takes g3, p2 only reaches ignored g2:
              1/2 everywhere: 0.5;
      medium: g1, g2 (g3 ignored): p1 takes g1 (inside the range first) where
              0.8 >= t (7 thresholds, 0.50..0.80), p2 g2 at 0.5:
              2/2 at 0.5, 1/2 at 0.55..0.80 (6), 0 at 0.85..0.95 (3): 0.4;
      large:  g2: p2 at 0.5 only: 0.1.
    Today's bucketing (box areas, half-open ranges, one global matching) gave
    small None (g1, g3 medium by box area), medium 0.5 (g3 all, g1 never), large 0.1.
    """
    from unigrounding.evaluation import LVISGroundAR

    s = GroundingDataSample(
        metainfo={"ori_shape": (200, 200), "category": "A", "target_areas": [1024, 9216, 1000]}
    )
    s.gt_refs = RefTargets.build([[0, 0, 32, 32], [100, 100, 196, 196], [0, 0, 40, 32]])
    s.pred_refs = RefTargets.build(
        [[0, 0, 40, 32], [100, 100, 196, 148], [150, 0, 190, 40], [0, 0, 32, 32]],
        scores=[0.9, 0.8, 0.7, 0.1],
    )
    out = _run(LVISGroundAR(), [s])
    assert out["ar"] == pytest.approx(11 / 30)
    assert out["ar@0.5"] == pytest.approx(2 / 3) and out["ar@0.75"] == pytest.approx(1 / 3)
    assert out["ar_small"] == pytest.approx(0.5)
    assert out["ar_medium"] == pytest.approx(0.4)
    assert out["ar_large"] == pytest.approx(0.1)
    assert out["areas_from_boxes"] == 0


def test_lvis_ground_matching_is_one_to_one():
    from unigrounding.evaluation.benchmarks import matched_targets

    iou = np.array([[1.0, 0.9], [1.0, 0.9]])  # two predictions, both best on target 0
    inside = np.zeros(2, dtype=bool)
    assert matched_targets(iou, inside, np.array([0.5])).tolist() == [2]  # the second takes 1
    assert matched_targets(iou[:1], inside, np.array([0.5])).tolist() == [1]
    # target 0 outside the range: the first prediction takes target 1 instead
    outside0 = np.array([True, False])
    assert matched_targets(iou[:1], outside0, np.array([0.5, 0.95])).tolist() == [1, 0]


def test_pope_reads_first_yes_or_no_and_reports_prediction_yes_ratio():
    from unigrounding.evaluation import POPEMetric

    def sample(answer, text):
        return GroundingDataSample(
            metainfo={"answer": answer, "pred_text": text, "ori_shape": (1, 1)}
        )

    samples = [
        sample("yes", "Yes, there is."),  # TP
        sample("yes", "No."),  # FN
        sample("no", "yes it is"),  # FP
        sample("no", "There is no dog; yes."),  # TN (first word wins)
        sample("yes", "I cannot tell."),  # unanswered: wrong, FN
    ]
    metric = POPEMetric()
    metric.process({}, [s.to_dict() for s in samples])
    out = metric.compute_metrics(metric.results)
    assert out["accuracy"] == pytest.approx(2 / 5)
    assert out["precision"] == pytest.approx(1 / 2) and out["recall"] == pytest.approx(1 / 3)
    assert out["f1"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert out["yes_ratio"] == pytest.approx(2 / 5) and out["unanswered"] == 1
    with pytest.raises(ValueError, match="sample s7: POPE needs"):
        bad = GroundingDataSample(metainfo={"answer": "maybe", "sample_id": "s7"})
        metric.process({}, [bad.to_dict()])


def test_interactive_seg_reports_each_prompt_type():
    from unigrounding.evaluation import InteractiveSegMetric

    hw = (10, 10)
    target = _mask(hw, (0, 4, 0, 4))
    point = _sample([[0, 0, 4, 4]], [[0, 0, 4, 4]], pred_masks=[target], gt_masks=[target])
    point.prompt_refs = RefTargets.build(
        [[1, 1, 2, 2]], units=["point"], points=[np.array([[1.5, 1.5]])]
    )
    box = _sample(
        [[0, 0, 4, 4]], [[0, 0, 4, 2]], pred_masks=[_mask(hw, (0, 4, 0, 2))], gt_masks=[target]
    )
    box.prompt_refs = RefTargets.build([[0, 0, 4, 4]], units=["box"])
    out = _run(InteractiveSegMetric(), [point, box])
    assert out["point/giou"] == 1.0 and out["box/giou"] == pytest.approx(0.5)
    assert out["giou"] == pytest.approx(0.75) and out["ciou"] == pytest.approx(24 / 32)


def test_reg_meteor_cider_tokenise_like_coco_and_score_empty_as_zero():
    from unigrounding.evaluation import REGMetric

    def sample(text, expression, sid):
        return GroundingDataSample(
            metainfo={"pred_text": text, "expression": expression, "sample_id": sid}
        )

    refs = ["the big red circle", "a small blue square", "the green triangle on the left"]
    exact = [sample(r, r, i) for i, r in enumerate(refs)]
    shouted = [sample(r.upper() + " .", r, i) for i, r in enumerate(refs)]  # case + punctuation
    partial = [sample("the red circle", refs[0], 0), sample("", refs[1], 1), *exact[2:]]
    scores = {}
    for name, samples in (("exact", exact), ("shouted", shouted), ("partial", partial)):
        metric = REGMetric(meteor=name != "shouted")  # METEOR: ~15 s of Java each
        metric.process({}, [s.to_dict() for s in samples])
        scores[name] = metric.compute_metrics(metric.results)
    assert scores["exact"]["meteor"] > 0.95 and scores["exact"]["cider"] > 0
    assert scores["shouted"]["cider"] == scores["exact"]["cider"]  # PTB tokenisation
    assert scores["partial"]["meteor"] < scores["exact"]["meteor"]
    assert scores["partial"]["cider"] < scores["exact"]["cider"]
    with pytest.raises(ValueError, match="sample 9: REG needs a reference"):
        REGMetric().process({}, [sample("x", "", 9).to_dict()])


def test_fovd_similarity_assigns_class_and_serves_as_confidence():
    from unigrounding.evaluation import FOVDMetric, assign_classes

    table = {"hound": [1.0, 0.0], "kitty": [0.28, 0.96], "dog": [0.8, 0.6], "cat": [0.0, 1.0]}

    def embed(texts):
        return torch.tensor([table[t] for t in texts])

    classes, scores = assign_classes(["hound", "kitty"], ["dog", "cat"], embed)
    assert classes.tolist() == [0, 1] and scores.tolist() == pytest.approx([0.8, 0.96])

    def run(tp_phrase, fp_phrase):
        s = GroundingDataSample(metainfo={"ori_shape": (100, 100)})
        s.gt_refs = RefTargets.build([[10, 10, 50, 50]], phrases=["dog"])
        s.pred_refs = RefTargets.build(
            [[10, 10, 50, 50], [60, 60, 90, 90]], phrases=[tp_phrase, fp_phrase]
        )
        metric = FOVDMetric(embedder="hashing")
        metric.process({}, [s.to_dict()])
        return metric.compute_metrics(metric.results)

    # the false positive named exactly "dog" outranks the true box named "a dog": AP 0.5
    assert run("a dog", "dog")["map"] == pytest.approx(0.5)
    # the other way round the true box ranks first: AP 1
    assert run("dog", "a dog")["map"] == pytest.approx(1.0)
    assert run("dog", "a dog")["embedder"] == "hashing"


def test_category_detection_ranks_instances_by_the_codecs_scores():
    """Two circles; the answer holds them and a false box between. Scores
    decide the ranking: TP 0.9, FP 0.8, TP 0.5 gives COCO's 101-point AP
    (51 + 50 * 2/3) / 101; the false box first gives 2/3; without scores the
    answer order ranks them (as the first case)."""
    from unigrounding.evaluation import CategoryDetectionMetric

    def run(scores):
        s = GroundingDataSample(metainfo={"ori_shape": (100, 100), "expression": "circle"})
        s.gt_refs = RefTargets.build([[10, 10, 30, 30], [60, 60, 90, 90]])
        s.pred_refs = RefTargets.build(
            [[10, 10, 30, 30], [40, 0, 55, 20], [60, 60, 90, 90]], scores=scores
        )
        other = GroundingDataSample(metainfo={"ori_shape": (100, 100), "expression": "square"})
        other.gt_refs = RefTargets.build([[40, 0, 55, 20]])  # a square where the false box is
        other.pred_refs = RefTargets.empty()
        metric = CategoryDetectionMetric()
        metric.process({}, [s.to_dict(), other.to_dict()])
        return metric.compute_metrics(metric.results)

    ranked = (51 + 50 * 2 / 3) / 101
    # mAP averages the two classes: the square was never found (AP 0)
    assert run([0.9, 0.8, 0.5])["map"] == pytest.approx(ranked / 2)
    assert run([0.5, 0.9, 0.4])["ap50"] == pytest.approx(2 / 3 / 2)
    assert run(None)["map"] == pytest.approx(ranked / 2)
    assert run(None)["detections"] == 3


def test_gcg_recall_needs_the_box_and_the_phrase():
    """Targets: a red circle, a big square. Predicted: the circle exactly
    ("the red circle": articles ignored), the square's box at IoU 0.6 but
    named "small square", and a stray box. One of two targets is recalled;
    precision 1/3; mIoU (1 + 0.6) / 2; the phrase is right for 1 of 2."""
    from unigrounding.evaluation import GCGMetric

    s = GroundingDataSample(metainfo={"ori_shape": (100, 100)})
    s.gt_refs = RefTargets.build(
        [[0, 0, 20, 20], [50, 50, 80, 80]], phrases=["red circle", "big square"], group_ids=[0, 1]
    )
    # [50, 50, 80, 80] vs [50, 50, 80, 68]: 540 / 900 = 0.6
    s.pred_refs = RefTargets.build(
        [[0, 0, 20, 20], [50, 50, 80, 68], [85, 85, 99, 99]],
        phrases=["the red circle", "small square", "a red circle"],
        group_ids=[0, 1, 2],
    )
    metric = GCGMetric()
    metric.process({}, [s.to_dict()])
    out = metric.compute_metrics(metric.results)
    assert out["recall"] == pytest.approx(0.5) and out["precision"] == pytest.approx(1 / 3)
    assert out["miou"] == pytest.approx(0.8) and out["phrase_acc"] == pytest.approx(0.5)
    strict = GCGMetric(iou=0.7)
    strict.process({}, [s.to_dict()])
    assert strict.compute_metrics(strict.results)["recall"] == pytest.approx(0.5)


def test_rec_decode_time_is_per_decoded_object():
    """Each sample carries its share of its batch's decode time; the metric
    divides their sum by the objects decoded, not by the samples."""
    three = _sample([[0, 0, 4, 4]], [[0, 0, 4, 4], [1, 1, 3, 3], [0, 0, 2, 2]])
    one = _sample([[0, 0, 4, 4]], [[0, 0, 4, 4]])
    none = _sample([[0, 0, 4, 4]], None)
    for s in (three, one, none):
        s.set_metainfo({"decode_ms": 2.0})
    out = _run(RECMetric(), [three, one, none])
    assert out["decode_ms_per_object"] == pytest.approx(6.0 / 4)


def test_rec_iou_tie_at_one_half_is_a_hit():
    """Target [0.1, 0, 1.2, 1], prediction [0.1, 0, 0.65, 1]: I = 0.55 * 1,
    U = 1.1 * 1, IoU = 0.5 exactly, a hit at >= 0.5. In float32 (how boxes
    are stored) the same division gives 0.49999994, a miss."""
    out = _run(RECMetric(thresholds=(0.5,)), [_sample([[0.1, 0, 1.2, 1]], [[0.1, 0, 0.65, 1]])])
    assert out["acc@0.5"] == 1.0 and out["miou"] == pytest.approx(0.5)
    assert out["protocol"] == "rec-acc@iou>=t, float64"


def test_every_metric_names_its_protocol():
    """``unigrounding eval`` writes each metric's ``<prefix>/protocol``: every
    registered metric declares one."""
    import unigrounding  # noqa: F401  (registers every metric, codecs' included)
    from unigrounding.registry import METRICS

    assert len(METRICS.module_dict) >= 13
    for name, cls in METRICS.module_dict.items():
        assert isinstance(cls.protocol, str) and cls.protocol, name
    hw = (4, 4)
    out = _run(
        RESMetric(), [_sample([[0, 0, 2, 2]], None, gt_masks=np.ones((1, *hw), bool), hw=hw)]
    )
    assert out["protocol"] == "res lisa" and out["boxes_as_masks"] is False
