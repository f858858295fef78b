"""The codec-neutral pretraining stages of the tiny preset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_model_cfg


def cell_dataset(root, **kwargs):
    from unigrounding.data import CocoCellLabelDataset

    return CocoCellLabelDataset(
        data_root=str(root),
        split="train",
        attributes=dict(
            category=[1, 2, 3, 4, 5],
            colour=["red", "green", "blue", "yellow", "purple", "white"],
        ),
        pipeline=[dict(type="PackCellLabels", image_size=64, cell=8)],
        **kwargs,
    )


def test_cell_labels_are_cached_and_identical_to_fresh_ones(shapes_root):
    cached, fresh = cell_dataset(shapes_root), cell_dataset(shapes_root, cache=False)
    first = cached[3]
    assert cached[3] is first
    again = fresh[3]
    assert torch.equal(first["inputs"], again["inputs"])
    for key, value in again["data_samples"].items():
        assert torch.equal(first["data_samples"][key], value)
    assert first["data_samples"]["foreground"].any()


def test_cell_loss_balances_object_and_background_cells():
    from unigrounding.models import CellAttributePretrainer

    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]], [[0.0, 3.0]]]])  # (1, 3 classes, 1, 2)
    target = torch.tensor([[[1, 0]]])
    fg = target > 0
    ce_fg = -torch.log_softmax(logits[0, :, 0, 0], 0)[1]
    ce_bg = -torch.log_softmax(logits[0, :, 0, 1], 0)[0]
    got = CellAttributePretrainer._balanced_ce(logits, target, fg)
    assert torch.isclose(got, ce_fg + ce_bg)
    only_bg = CellAttributePretrainer._balanced_ce(logits, torch.zeros_like(target), fg & False)
    assert torch.isclose(only_bg, -torch.log_softmax(logits[0, :, 0], 0)[0].mean())


def test_cell_coverage_hand_computed():
    from unigrounding.models.referent_flags import cell_coverage

    # grid 2: the box covers the whole width of cell (0, 0) and half its height
    assert cell_coverage(np.array([[0.0, 0.0, 0.5, 0.25]]), (2, 2)).tolist() == [0.5, 0.0, 0.0, 0.0]
    assert cell_coverage(np.array([[0.0, 0.0, 1.0, 1.0]]), (2, 2)).tolist() == [1.0] * 4
    # two overlapping boxes count once (clipped to 1); no box covers nothing
    twice = np.array([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]])
    assert cell_coverage(twice, (2, 2)).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert cell_coverage(np.zeros((0, 4)), (3, 3)).sum() == 0
    # a 1 x 3 lattice: the left half covers cell 0, half of cell 1
    assert cell_coverage(np.array([[0.0, 0.0, 0.5, 1.0]]), (1, 3)).tolist() == pytest.approx(
        [1, 0.5, 0]
    )


def test_referent_flags_train_the_shared_model(rec_batch):
    from unigrounding.registry import MODELS

    with pytest.raises(ValueError, match="after_text"):
        MODELS.build(dict(tiny_model_cfg(type="text_coords"), referent_flag_weight=1.0))
    model = MODELS.build(
        dict(
            tiny_model_cfg(type="text_coords"),
            image_placement="after_text",
            referent_flag_weight=1.0,
        )
    )
    batch = rec_batch
    losses = model(batch["inputs"], batch["data_samples"], mode="loss")
    assert set(losses) == {"loss_lm", "loss_referent_flag"}
    losses["loss_referent_flag"].backward()
    # the flag is read halfway up: the first layer learns from it, the last does not
    layers = model.llm.model.layers
    assert layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    assert layers[-1].self_attn.q_proj.weight.grad is None
    # a sample whose answer names no referent is skipped, not guessed at
    sample = batch["data_samples"][0].clone()
    sample.conversation = [dict(t) for t in sample.conversation]
    sample.conversation[-1]["text"] = "a caption"
    states = (torch.zeros(1, 70, 64),) * 3
    flags = model.referent_flags(states, torch.arange(70)[None] < 64, [sample], [(8, 8)])
    assert flags.item() == 0


# ---------------------------------------------------------------- detection stage
def detection_dataset(root, **kwargs):
    from unigrounding.data import CocoDetectionDataset

    return CocoDetectionDataset(
        data_root=str(root), pipeline=[dict(type="PackGroundingSample", image_size=64)], **kwargs
    )


def test_detection_dataset_has_every_object_of_an_image(shapes_root):
    import json

    coco = json.loads((shapes_root / "instances.json").read_text())
    ds = detection_dataset(shapes_root, split="val")
    val_images = [i for i in coco["images"] if i["file_name"].startswith("val")]
    assert len(ds) == len(val_images)
    sample = ds[0]["data_samples"]
    anns = [a for a in coco["annotations"] if a["image_id"] == val_images[0]["id"]]
    assert len(sample.gt_refs) == len(anns)
    x, y, w, h = anns[0]["bbox"]
    assert sample.gt_refs.boxes[0].tolist() == pytest.approx([x, y, x + w, y + h])
    assert sample.gt_refs.group_ids.tolist() == [0] * len(anns)


def test_detection_dataset_degenerate_box_names_file_and_annotation(shapes_root, tmp_path):
    import json
    import shutil

    from unigrounding.structures import GeometryError

    root = tmp_path / "data"
    shutil.copytree(shapes_root, root)
    coco = json.loads((root / "instances.json").read_text())
    coco["annotations"][3]["bbox"][3] = 0.0
    (root / "instances.json").write_text(json.dumps(coco))
    bad = coco["annotations"][3]["id"]
    with pytest.raises(GeometryError, match=rf"instances.json ann_id={bad}.*degenerate"):
        detection_dataset(root)


def test_proposer_stage_trains_the_proposer_only_and_loads_into_the_grounding_model(
    shapes_root, tmp_path
):
    from conftest import TINY_MODEL, TINY_PROPOSER

    from unigrounding.data import collate
    from unigrounding.engine.export import export_model, init_from_pretrained
    from unigrounding.registry import MODELS

    torch.manual_seed(0)
    stage_cfg = dict(
        type="ProposerPretrainer",
        vision=TINY_MODEL["vision"],
        proposer=TINY_PROPOSER,
    )
    stage = MODELS.build(stage_cfg)
    batch = collate([detection_dataset(shapes_root, split="train")[i] for i in range(4)])
    losses = stage(batch["inputs"], batch["data_samples"], mode="loss")
    sum(losses.values()).backward()
    assert all(p.grad is None for p in stage.vision.parameters())
    assert all(p.grad is not None for p in stage.proposers.parameters())
    stage.eval()
    out = stage(batch["inputs"], batch["data_samples"], mode="predict")
    assert all("scores" in s.pred_refs for s in out)
    export_model(stage, __import__("mmengine").Config(dict(model=stage_cfg)), tmp_path / "export")
    model = MODELS.build(tiny_model_cfg(type="region_proxy"))
    names = init_from_pretrained(model, tmp_path / "export")
    assert not names["unexpected"]
    assert not [k for k in names["missing"] if k.startswith(("proposers.", "vision."))]
    for key, value in stage.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_cell_labels_on_the_qwen2_5_vl_frame_hand_computed(tmp_path):
    """A 60x72 image resized to 224x252 (3.73x, 3.5x): a lattice of 8x9
    28-pixel cells; an object over x 0-30, y 0-24 covers x 0-105, y 0-89.6
    of the input, so the cell centres (14, 42, 70, 98 ...) of 3 rows and 4
    columns."""
    from PIL import Image

    from unigrounding.data.pipeline import PackCellLabels
    from unigrounding.structures.geometry import rle_encode

    Image.new("RGB", (72, 60)).save(tmp_path / "a.png")
    mask = np.zeros((60, 72), dtype=np.uint8)
    mask[:24, :30] = 1
    record = dict(
        source="instances.json",
        image_id=7,
        image_path=str(tmp_path / "a.png"),
        attributes=["category"],
        objects=[
            dict(
                id=1,
                box=[0.0, 0.0, 30.0, 24.0],
                labels={"category": 3},
                segmentation=rle_encode(mask),
            ),
        ],
    )
    pack = PackCellLabels(cell=28, frame="qwen2_5_vl", pixels=(224 * 224, 252 * 280))
    out = pack(record)
    assert tuple(out["inputs"].shape) == (3, 224, 252)
    labels = out["data_samples"]
    expected = torch.zeros(8, 9, dtype=torch.bool)
    expected[:3, :4] = True
    assert torch.equal(labels["foreground"], expected)
    assert torch.equal(labels["category"], expected.long() * 3)
    want = torch.tensor([14 - 0, 14 - 0, 105 - 14, 89.6 - 14]) / torch.tensor([252, 224, 252, 224])
    assert labels["box_deltas"][0, 0].tolist() == pytest.approx(want.tolist(), abs=1e-5)
    assert labels["box_deltas"][5, 5].abs().sum() == 0  # background
    with pytest.raises(ValueError, match=r"instances.json image 7: a 224x252 input is not"):
        PackCellLabels(cell=32, frame="qwen2_5_vl", pixels=(224 * 224, 252 * 280))(record)


def test_a_stage_takes_a_tower_or_a_vlm_not_both():
    from unigrounding.models.vlm import build_tower

    with pytest.raises(ValueError, match="give `vision`"):
        build_tower()
    with pytest.raises(ValueError, match="give `vision`"):
        build_tower(dict(model_name="test_convnext"), dict(pretrained="x"))
