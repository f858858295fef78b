"""Predictions made elsewhere (lmms-eval, Qwen-VL / ms-swift, dataset ids):
frames, answer reading and ``unigrounding eval --predictions`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_dataset
from mmengine.config import Config

from unigrounding.evaluation.prediction_files import (
    SampleIndex,
    _refs_image,
    answer_frame,
    answer_refs,
    boxes_in_text,
    read_prediction_file,
)

REPO = Path(__file__).resolve().parents[1]


def test_boxes_in_text_reads_lmms_eval_lists_qwen_json_and_qwen_box_tokens():
    text = (
        "<|object_ref_start|>the cat<|object_ref_end|><|box_start|>(111,716),(319,950)"
        '<|box_end|> then [0.1, 0.2,0.3, 0.4] and ```json\n[{"bbox_2d": [1, 2, 30, 40]}]```'
        " but not [0.1 , 0.2, 0.3, 0.4] nor [1, 2, 3]"
    )
    assert boxes_in_text(text) == [[111, 716, 319, 950], [0.1, 0.2, 0.3, 0.4], [1, 2, 30, 40]]
    assert boxes_in_text("I cannot find it.") == []


@pytest.mark.parametrize(
    "frame, answer, expected",
    [
        # a 640x480 image, hand-computed
        ("pixels", [10, 20, 30, 40], [10, 20, 30, 40]),
        ("normalized", [0.25, 0.5, 0.75, 1.0], [160, 240, 480, 480]),
        # Qwen2-VL: 111 / 1000 * 640 = 71.04, 716 / 1000 * 480 = 343.68, ...
        ("norm1000", [111, 716, 319, 950], [71.04, 343.68, 204.16, 456.0]),
        # padded to a 640 square, 80 rows above: 0.25 * 640 - 80 = 80, 0.75 * 640 - 80 = 400
        ("padded_square", [0.25, 0.25, 0.5, 0.75], [160, 80, 320, 400]),
        # smart_resize(480, 640) = (476, 644): 322 * 640 / 644 = 320, 238 * 480 / 476 = 240
        ("qwen2_5_vl", [322, 238, 644, 476], [320, 240, 640, 480]),
    ],
)
def test_answer_frames_map_back_to_original_pixels(frame, answer, expected):
    refs = answer_refs([answer], (480, 640), answer_frame(frame, (480, 640)))
    np.testing.assert_allclose(refs.boxes[0].numpy(), expected, rtol=1e-6)
    assert refs.metainfo["parse_failures"] == 0 and refs.metainfo["parse_repairs"] == 0


def test_qwen2_5_vl_frame_follows_the_pixel_bounds():
    # at most 128 * 28 * 28 pixels: 476 x 644 is too many, so both sides shrink
    # by sqrt(480 * 640 / 100352) = 1.7496 and round down to multiples of 28:
    # floor(9.80) * 28 = 252, floor(13.06) * 28 = 364
    frame = answer_frame("qwen2_5_vl", (480, 640), pixels=(3136, 128 * 28 * 28))
    assert frame.input_hw == (252, 364)
    with pytest.raises(ValueError, match="unknown frame 'pixel'"):
        answer_frame("pixel", (480, 640))


def test_answer_refs_counts_repairs_and_failures_and_keeps_every_box_inside():
    refs = answer_refs(
        [
            [319, 950, 111, 716],  # corners swapped: repaired
            [float("nan"), 0, 1, 1],  # not finite: failure
            [0, 0, 0, 5],  # no area: failure
            [-5, -5, 2000, 2000],  # clipped to the image: repaired
            [1, 2, 3],  # not a box: failure
        ],
        (480, 640),
        answer_frame("norm1000", (480, 640)),
        phrases=["a", "b", "c", "d", "e"],
    )
    np.testing.assert_allclose(refs.boxes.numpy(), [[71.04, 343.68, 204.16, 456], [0, 0, 640, 480]])
    assert refs.phrases == ["a", "d"]
    assert refs.metainfo["parse_failures"] == 3 and refs.metainfo["parse_repairs"] == 2


def test_refcoco_refs_file_names_name_their_coco_image():
    assert _refs_image("COCO_train2014_000000581857_16.jpg") == "COCO_train2014_000000581857.jpg"
    assert _refs_image("COCO_train2014_000000581857.jpg") == "COCO_train2014_000000581857.jpg"
    assert _refs_image("val_000012.png") == "val_000012.png"


def _rec_config(shapes_root: Path, out: Path) -> Path:
    cfg = Config.fromfile(str(REPO / "configs/text_coords/rec_shapesref.py"))
    cfg.test_dataloader.dataset.update(
        data_root=str(shapes_root), n_train=40, n_val=12, seed=1, max_samples=None
    )
    cfg.dump(str(out))
    return out


def _answers(dataset) -> list[tuple]:
    """Qwen2.5-VL-style integer answers in its input frame, near each target."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(len(dataset)):
        s = dataset[i]["data_samples"]
        frame = answer_frame("qwen2_5_vl", tuple(s.ori_shape))
        box = frame.boxes_to_input(s.gt_refs.boxes[0].numpy())[0]
        answer = np.round(box + rng.integers(-3, 4, size=4)).astype(int)
        out.append((s, frame.input_hw, answer.tolist()))
    return out


def test_lmms_eval_and_qwen_files_of_the_same_answers_score_identically(shapes_root, tmp_path):
    """One set of answers written as lmms-eval log samples (0-1 by W and H,
    matched by image and expression) and as ms-swift Qwen2.5-VL output
    (absolute pixels of the smart-resized input, JSON bbox_2d, matched by
    sent_id) scores the same; an unreadable answer is a parse failure in both,
    a sample with no record unmatched in both."""
    from unigrounding.cli.main import main

    config = _rec_config(shapes_root, tmp_path / "rec.py")
    dataset = make_dataset(shapes_root)
    answers = _answers(dataset)
    assert len({tuple(s.ori_shape) for s, _, _ in answers}) == 1
    assert answers[0][1] != tuple(answers[0][0].ori_shape)  # the Qwen input is resized
    lmms, qwen = [], []
    for k, (s, (h, w), box) in enumerate(answers[1:]):
        unreadable = k == 0
        norm = [box[0] / w, box[1] / h, box[2] / w, box[3] / h]
        oh, ow = s.ori_shape
        gt = (s.gt_refs.boxes[0].double().numpy() / [ow, oh, ow, oh]).tolist()
        lmms_answer = "I cannot tell." if unreadable else f"[{', '.join(map(repr, norm))}]"
        lmms.append(
            {
                "doc_id": k,
                "doc": {
                    "question_id": str(k),
                    "file_name": Path(s.image_path).name,
                    "answer": s.expression,
                    "bbox": gt,
                },
                "target": str(gt),
                "resps": [[lmms_answer]],
                "filtered_resps": [lmms_answer],
            }
        )
        qwen_answer = json.dumps([{"bbox_2d": box, "label": s.expression}])
        qwen.append(
            {
                "sent_id": s.metainfo["sent_id"],
                "response": "no box here" if unreadable else f"```json\n{qwen_answer}\n```",
                "images": [{"path": s.image_path}],
            }
        )
    (tmp_path / "lmms.jsonl").write_text("\n".join(json.dumps(r) for r in lmms))
    (tmp_path / "swift.jsonl").write_text("\n".join(json.dumps(r) for r in qwen))
    results = {}
    for name, fmt in (("lmms", "lmms-eval"), ("swift", "qwen2.5-vl")):
        out = tmp_path / f"{name}.json"
        main(
            [
                "eval", str(config), "--predictions", str(tmp_path / f"{name}.jsonl"),
                "--format", fmt, "--out", str(out), "--work-dir", str(tmp_path / "w"),
            ]
        )  # fmt: skip
        results[name] = json.loads(out.read_text())
    a, b = results["lmms"]["metrics"], results["swift"]["metrics"]
    for key in ("rec/acc@0.5", "rec/acc@0.75", "rec/acc@0.9", "rec/n", "rec/parse_failures"):
        assert a[key] == b[key], key
    # the same boxes through two frames differ only in float rounding
    assert a["rec/miou"] == pytest.approx(b["rec/miou"], rel=1e-12, abs=0)
    assert a["rec/parse_failures"] == 1 and 0 < a["rec/acc@0.5"] < 1
    assert results["lmms"]["unmatched_samples"] == results["swift"]["unmatched_samples"] == 1
    assert results["lmms"]["predictions"]["frames"] == {
        "normalized": "0-1, x divided by the image width W and y by its height H (lmms-eval)"
    }
    assert set(results["swift"]["predictions"]["frames"]) == {"qwen2_5_vl"}
    assert results["swift"]["predictions"]["qwen2_5_vl_pixels"] == [3136, 12845056]


def test_our_records_in_another_frame_and_by_dataset_ids(shapes_root, tmp_path):
    """The ground truth written as text_coords would (0-1 of the padded
    square), named by image and expression, with frame given per record,
    scores 1; the same answers read as original pixels do not."""
    from unigrounding.engine.evaluate import evaluate

    config = _rec_config(shapes_root, tmp_path / "rec.py")
    dataset = make_dataset(shapes_root)
    records = []
    for i in range(len(dataset)):
        s = dataset[i]["data_samples"]
        frame = answer_frame("padded_square", tuple(s.ori_shape))
        box = frame.boxes_to_input(s.gt_refs.boxes.numpy()).tolist()
        records.append(
            {
                "image": s.image_path,
                "expression": s.expression,
                "boxes": box,
                "frame": "padded_square",
            }
        )
    path = tmp_path / "square.json"
    path.write_text(json.dumps(records))
    result = evaluate(str(config), predictions=str(path), work_dir=str(tmp_path / "w"))
    assert result["metrics"]["rec/acc@0.9"] == 1.0 and result["unmatched_samples"] == 0
    # --frame overrides the records' frame: the 0-1 answers read as pixels
    wrong = evaluate(
        str(config), predictions=str(path), frame="pixels", work_dir=str(tmp_path / "w")
    )
    assert wrong["metrics"]["rec/acc@0.5"] == 0.0


def test_prediction_file_errors_name_the_record(shapes_root, tmp_path):
    dataset = make_dataset(shapes_root)
    samples = [dataset[i]["data_samples"] for i in range(len(dataset))]
    index = SampleIndex(samples)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"doc": {"file_name": "x.png"}, "filtered_resps": ["[0, 0, 1, 1]"]}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl record 0: not an lmms-eval RefCOCO"):
        read_prediction_file(bad, "lmms-eval")
    bad.write_text('{"sent_id": 3}\n')
    with pytest.raises(ValueError, match=r"record 0: needs the answer text in 'response'"):
        read_prediction_file(bad, "qwen2.5-vl")
    bad.write_text('{"sent_id": -7, "response": "[1, 2, 3, 4]"}\n')
    (record,) = read_prediction_file(bad, "qwen2.5-vl")
    with pytest.raises(ValueError, match=r"record 0: names no test sample"):
        index.match(record)
    with pytest.raises(ValueError, match="unknown predictions format 'swift'"):
        read_prediction_file(bad, "swift")
