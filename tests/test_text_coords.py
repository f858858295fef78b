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
