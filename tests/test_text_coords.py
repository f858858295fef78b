import numpy as np
import pytest
import torch

from unigrounding.codecs.text_coords import TextCoordsProcessor
from unigrounding.structures import GroundingDataSample, RefTargets, square_resize_frame


def _sample(hw=(60, 80), size=64):
    frame = square_resize_frame(hw, size)
    return GroundingDataSample(
        metainfo={"frame": frame, "ori_shape": hw, "img_shape": frame.input_hw}
    )


@pytest.mark.parametrize("decimals", [1, 2, 3])
def test_encode_parse_within_half_a_step(decimals):
    s = _sample()
    rng = np.random.default_rng(0)
    proc = TextCoordsProcessor(decimals)
    side = 80  # the padded square in original pixels
    for _ in range(50):
        x1, y1 = rng.uniform(0, 40), rng.uniform(0, 30)
        box = [
            x1,
            y1,
            x1 + rng.uniform(10, 40),
            y1 + rng.uniform(10, 30),
        ]  # >= one step at 1 decimal
        refs = RefTargets.build([box])
        back = proc.parse(proc.encode(refs, s, "target"), s)
        err = np.abs(back.boxes.numpy() - np.array(box)).max()
        assert err <= 0.5 * 10**-decimals * side + 1e-3


def test_multi_instance_joined_with_semicolons_and_grouped():
    s = _sample()
    proc = TextCoordsProcessor(3)
    refs = RefTargets.build([[10, 10, 20, 30], [40, 20, 60, 50]], group_ids=[0, 0])
    text = proc.encode(refs, s, "target")
    assert text.count(";") == 1
    back = proc.parse(
        f"two cats {text} and a dog {proc.encode(RefTargets.build([[1, 11, 9, 19]]), s, 'target')}.",
        s,
    )
    assert back.group_ids.tolist() == [0, 0, 1]
    assert back.phrases == ["two cats", "two cats", "dog"]


def test_point_prompt_written_as_xy():
    s = _sample(hw=(64, 64))
    refs = RefTargets.build(
        [[9.5, 19.5, 10.5, 20.5]], units=["point"], points=[np.array([[10.0, 20.0]])]
    )
    assert TextCoordsProcessor(3).encode(refs, s, "prompt") == "[0.156,0.312]"


@pytest.mark.parametrize(
    "text,n,failures",
    [
        ("[0.1,0.2,0.3,0.4]", 1, 0),
        ("[0.3,0.4,0.1,0.2]", 1, 0),  # corners swapped: reordered, not rejected
        ("[0.1,0.2,0.1,0.4]", 0, 1),  # zero width
        ("[0.1,0.2,0.3", 0, 1),  # truncated
        ("[0 . 1 , 0.2,0.3,0.4]", 1, 0),  # spaced digits from a word-level decode
        ("[abc] [0.1,0.2,0.3,0.4]", 1, 1),
        ("There is none.", 0, 0),
        ("[[[[", 0, 4),
        ("[0.1,0.0,0.3,0.09]", 0, 1),  # entirely inside the top padding band
    ],
)
def test_tolerant_parser_counts_failures(text, n, failures):
    refs = TextCoordsProcessor(3).parse(text, _sample())
    assert len(refs) == n and refs.metainfo["parse_failures"] == failures
    assert torch.isfinite(refs.boxes).all()


@pytest.mark.parametrize(
    ("text", "repairs"),
    [
        ("[0.1,0.2,0.3,0.4]", 0),
        ("[0.3,0.4,0.1,0.2]", 1),  # corners swapped back
        ("[-0.5,-0.2,1.7,2.0]", 1),  # values clipped to [0, 1]
        ("[0.3,0.2,0.1,0.4];[0.1,0.2,1.3,0.4]", 2),
    ],
)
def test_repaired_answers_are_counted_apart_from_clean_ones(text, repairs):
    refs = TextCoordsProcessor(3).parse(text, _sample())
    assert refs.metainfo["parse_repairs"] == repairs and refs.metainfo["parse_failures"] == 0


def _qwen_sample(hw=(480, 640)):
    from unigrounding.structures import smart_resize_frame

    frame = smart_resize_frame(hw)
    return GroundingDataSample(
        metainfo={"frame": frame, "ori_shape": hw, "img_shape": frame.input_hw}
    )


def test_qwen_style_writes_input_pixels_as_qwen2_5_vl_does():
    """480x640 image, Qwen2.5-VL input 476x644 (hand-computed): x scales by
    644/640 and y by 476/480, so (320, 240, 640, 480) is (322, 238, 644, 476)."""
    from unigrounding.codecs.text_coords import QwenTextCoordsProcessor

    s, proc = _qwen_sample(), QwenTextCoordsProcessor()
    refs = RefTargets.build([[320, 240, 640, 480]], phrases=["the dog"])
    answer = proc.encode(refs, s, "target")
    assert answer == '[{"bbox_2d": [322, 238, 644, 476], "label": "the dog"}]'
    assert proc.encode(refs, s, "prompt") == (
        "<|object_ref_start|>the dog<|object_ref_end|><|box_start|>(322,238),(644,476)<|box_end|>"
    )
    back = proc.parse(f"```json\n{answer}\n```", s)
    assert np.allclose(back.boxes.numpy(), [[320, 240, 640, 480]]) and back.phrases == ["the dog"]
    point = RefTargets.build(
        [[9.5, 19.5, 10.5, 20.5]], units=["point"], points=[np.array([[10.0, 20.0]])]
    )
    assert proc.encode(point, s, "prompt") == "<|box_start|>(10,20)<|box_end|>"


def test_qwen_style_round_trip_within_half_an_input_pixel():
    from unigrounding.codecs.text_coords import QwenTextCoordsProcessor

    s, proc = _qwen_sample((60, 72)), QwenTextCoordsProcessor()  # input 56x84
    rng = np.random.default_rng(0)
    for _ in range(50):
        x1, y1 = rng.uniform(0, 40), rng.uniform(0, 30)
        box = [x1, y1, x1 + rng.uniform(5, 30), y1 + rng.uniform(5, 28)]
        back = proc.parse(proc.encode(RefTargets.build([box]), s, "target"), s)
        # half a pixel of the input, in original pixels per axis
        bound = 0.5 * np.array([72 / 84, 60 / 56] * 2) + 1e-9
        assert (np.abs(back.boxes.numpy()[0] - box) <= bound).all()


@pytest.mark.parametrize(
    "text, boxes, groups, failures, repairs",
    [
        # two instances of one label, then another label: two groups
        (
            '[{"bbox_2d": [10, 20, 30, 40], "label": "cats"}, '
            '{"bbox_2d": [50, 20, 70, 40], "label": "cats"}, '
            '{"bbox_2d": [1, 2, 3, 4], "label": "dog"}]',
            3,
            [0, 0, 1],
            0,
            0,
        ),
        # swapped corners and a box past the input are repaired
        ('[{"bbox_2d": [30, 40, 10, 20]}, {"bbox_2d": [600, 400, 700, 500]}]', 2, [0, 0], 0, 2),
        # an object without a readable box, a box without area, a box outside
        (
            '{"bbox_2d": [1, 2, 3]} {"bbox_2d": [5, 5, 5, 9]} {"bbox_2d": [700, 1, 800, 9]}',
            0,
            [],
            3,
            0,
        ),
        # Qwen2-VL-style corner tokens in an answer
        (
            "<|object_ref_start|>dog<|object_ref_end|><|box_start|>(10,20),(30,40)<|box_end|>",
            1,
            [0],
            0,
            0,
        ),
        ("no box here", 0, [], 0, 0),
    ],
)
def test_qwen_style_parse_is_tolerant(text, boxes, groups, failures, repairs):
    from unigrounding.codecs.text_coords import QwenTextCoordsProcessor

    refs = QwenTextCoordsProcessor().parse(text, _qwen_sample())
    assert len(refs) == boxes and refs.group_ids.tolist() == groups
    assert refs.metainfo["parse_failures"] == failures
    assert refs.metainfo["parse_repairs"] == repairs
    if boxes:
        assert (refs.boxes.numpy()[:, 2:] <= np.array([640, 480])).all()
