import copy
import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unigrounding.structures import (
    Crop,
    Frame,
    GeometryError,
    GroundingDataSample,
    RefTargets,
    Resize,
    mask_to_box,
    rle_decode,
    rle_encode,
    smart_resize_frame,
    square_resize_frame,
    validate_box,
)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(8, 300),
    w=st.integers(8, 300),
    size=st.integers(16, 128),
    frac=st.tuples(*[st.floats(0, 1)] * 4),
)
def test_frame_maps_boxes_both_ways_exactly(h, w, size, frac):
    frame = square_resize_frame((h, w), size)
    box = np.array([frac[0] * w, frac[1] * h, frac[2] * w, frac[3] * h])
    back = frame.boxes_to_original(frame.boxes_to_input(box))
    np.testing.assert_allclose(back, box.reshape(1, 4), atol=1e-9)
    assert frame.input_hw == (size, size)


def test_frame_pads_the_short_side_and_centres_content():
    frame = square_resize_frame((60, 80), 40)  # pad to 80x80 (10 px top), then halve
    np.testing.assert_allclose(frame.points_to_input([[0, 0]]), [[0, 5]])
    np.testing.assert_allclose(frame.points_to_input([[80, 60]]), [[40, 35]])


def test_frame_masks_round_trip_through_pad_crop_and_resize():
    mask = np.zeros((30, 50), bool)
    mask[10:20, 5:25] = True
    frame = square_resize_frame((30, 50), 100)
    frame = frame.then(Crop((100, 100), (90, 90), 5, 5))
    back = frame.mask_to_original(frame.mask_to_input(mask))
    assert back.shape == mask.shape
    assert torch.equal(back, torch.from_numpy(mask))


@pytest.mark.parametrize(
    "hw, pixels, input_hw",
    [
        # 480/28 = 17.1 -> 17 * 28, 640/28 = 22.9 -> 23 * 28; 476 * 644 in bounds
        ((480, 640), (3136, 12845056), (476, 644)),
        # ShapesRef: 60 -> 2 * 28, 72 -> 3 * 28 (4704 >= 3136)
        ((60, 72), (3136, 12845056), (56, 84)),
        # rounds to 28 x 28 = 784 < 3136: scaled up by sqrt(3136 / 600) = 2.286,
        # then each side up to a multiple: ceil(45.7 / 28), ceil(68.6 / 28)
        ((20, 30), (3136, 12845056), (56, 84)),
        # 476 * 644 > 128 * 28^2: scaled down by sqrt(480*640 / 100352) = 1.748,
        # then each side down: floor(274.6 / 28) = 9, floor(366.2 / 28) = 13
        ((480, 640), (3136, 128 * 28 * 28), (252, 364)),
    ],
)
def test_smart_resize_frame_is_qwen_input_and_maps_back(hw, pixels, input_hw):
    frame = smart_resize_frame(hw, pixels=pixels)
    assert frame.input_hw == input_hw and all(isinstance(s, Resize) for s in frame.steps)
    box = np.array([[0.25 * hw[1], 0.5 * hw[0], 0.75 * hw[1], hw[0]]])
    expected = box * np.tile([input_hw[1] / hw[1], input_hw[0] / hw[0]], 2)
    assert np.allclose(frame.boxes_to_input(box), expected, atol=1e-9)
    assert np.allclose(frame.boxes_to_original(frame.boxes_to_input(box)), box, atol=1e-9)


def test_frame_rejects_mismatched_step():
    with pytest.raises(ValueError, match="expects"):
        Frame((10, 10)).then(Crop((20, 20), (5, 5), 0, 0))


def test_frame_is_immutable_and_shared_by_sample_copies():
    frame = square_resize_frame((30, 50), 64)
    longer = frame.then(Crop((64, 64), (60, 60), 2, 2))
    assert len(frame.steps) == 2 and len(longer.steps) == 3  # then() leaves frame alone
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.steps = ()
    sample = GroundingDataSample(metainfo={"frame": frame, "sample_id": 1})
    assert copy.deepcopy(sample).frame is frame


def test_rle_round_trip_and_mask_box():
    mask = np.zeros((17, 23), bool)
    mask[3:9, 4:20] = True
    rle = rle_encode(mask)
    assert isinstance(rle["counts"], str)
    assert np.array_equal(rle_decode(rle, 17, 23, "test"), mask)
    assert mask_to_box(mask) == [4.0, 3.0, 20.0, 9.0]
    assert mask_to_box(np.zeros((4, 4), bool)) is None


def test_mask_box_runs_along_pixel_edges():
    """One past the last pixel: a one-pixel mask is a 1 x 1 box, a full mask the image."""
    dot = torch.zeros(5, 7, dtype=torch.bool)
    dot[2, 6] = True
    assert mask_to_box(dot) == [6.0, 2.0, 7.0, 3.0]
    assert mask_to_box(np.ones((5, 7), bool)) == [0.0, 0.0, 7.0, 5.0]
    scattered = np.zeros((9, 9), bool)
    scattered[[1, 7], [6, 2]] = True  # the box spans both, not just one
    assert mask_to_box(scattered) == [2.0, 1.0, 7.0, 8.0]


def test_rle_decode_names_the_source_on_garbage():
    with pytest.raises(GeometryError, match="ann 7"):
        rle_decode({"counts": 12, "size": [3]}, 4, 4, "ann 7")


@pytest.mark.parametrize("box", [[5, 5, 4, 9], [0, 0, 0, 3], [1, 2, float("nan"), 4], [1, 2, 3]])
def test_validate_box_rejects_degenerate(box):
    with pytest.raises(GeometryError, match="sample 3"):
        validate_box(box, "sample 3")


def test_reftargets_one_to_many_groups():
    refs = RefTargets.build(
        [[0, 0, 2, 2], [3, 3, 5, 5], [6, 6, 8, 8]],
        phrases=["two cats", "two cats", "a dog"],
        group_ids=[0, 0, 1],
    )
    assert refs.num_groups == 2
    assert len(refs.group(0)) == 2 and refs.group(0).phrases == ["two cats", "two cats"]
    assert len(refs.group(1)) == 1 and len(refs.group(5)) == 0
    assert len(RefTargets.empty()) == 0 and RefTargets.empty(3).metainfo["parse_failures"] == 3


def test_reftargets_from_masks_rejects_empty_mask():
    with pytest.raises(ValueError, match=r"obj\[1\]: empty mask"):
        RefTargets.from_masks([np.ones((3, 3), bool), np.zeros((3, 3), bool)], where="obj")


def test_group_copies_the_rows_instance_data_indexing_would_give():
    refs = RefTargets.build(
        [[0, 0, 4, 4], [1, 1, 5, 5], [2, 2, 6, 6]],
        phrases=["a", "b", "c"],
        group_ids=[1, 0, 1],
        masks=np.arange(3 * 8 * 8).reshape(3, 8, 8) % 3 == 0,
        points=[np.full((1, 2), i) for i in range(3)],
        scores=[0.1, 0.2, 0.3],
    )
    for gid in (0, 1, 7):
        fast, slow = refs.group(gid), refs[refs.group_ids == gid]
        assert len(fast) == len(slow) and fast.metainfo == slow.metainfo
        for key, value in slow.items():
            got = fast.get(key)
            if isinstance(value, torch.Tensor):
                assert torch.equal(got, value), key
            else:
                assert [
                    torch.equal(a, b) if torch.is_tensor(a) else a == b
                    for a, b in zip(got, value, strict=True)
                ] == [True] * len(value), key
    refs.group(1).boxes[0, 0] = 99.0
    assert refs.boxes[0, 0] == 0.0  # a copy
    refs.extra = np.array([5, 6, 7])  # a field of another kind: InstanceData's own indexing
    assert refs.group(1).extra.tolist() == [5, 7]


def test_preprocessor_passes_samples_on_its_device_through_uncopied():
    from unigrounding.models.preprocessor import GroundingDataPreprocessor, _on

    sample = GroundingDataSample(metainfo={"sample_id": 3})
    sample.gt_refs = RefTargets.build([[0, 0, 4, 4]])
    out = GroundingDataPreprocessor()({"inputs": torch.zeros(1, 3, 4, 4), "data_samples": [sample]})
    assert out["data_samples"][0] is sample
    sample.gt_refs.scores = torch.zeros(1, device="meta")  # a nested tensor elsewhere
    assert not _on(sample, torch.device("cpu"))
    assert _on(sample, torch.device("meta")) is False  # the boxes are on the CPU


def test_metric_box_iou_reads_float32_boxes_as_their_decimals():
    from unigrounding.structures import metric_box_iou, paired_box_iou, scoring_boxes

    gt = torch.tensor([[0.1, 0, 1.2, 1]])
    pred = torch.tensor([[0.1, 0, 0.65, 1]])
    # 0.55 / 1.1: float32 arithmetic, or float64 of the float32 values, falls short
    assert paired_box_iou(pred, gt)[0] < 0.5 and paired_box_iou(pred.double(), gt.double())[0] < 0.5
    assert metric_box_iou(pred, gt, paired=True)[0] >= 0.5
    assert metric_box_iou(pred, gt).dtype == torch.float64 and metric_box_iou(pred, gt).shape == (
        1,
        1,
    )
    assert scoring_boxes(torch.tensor([0.65]))[0].item() == 0.65  # the decimal, not 0.6499999761...
    exact = torch.tensor([1 / 3], dtype=torch.float64)
    assert scoring_boxes(exact)[0].item() == 1 / 3  # float64 input taken as it is
