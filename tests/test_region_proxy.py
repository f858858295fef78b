"""region_proxy (Groma): RoIAlign box format, syntax, deferred proxies, proposer."""

import numpy as np
import pytest
import torch
from conftest import TINY_PROPOSER, make_dataset, tiny_model_cfg
from mmengine.structures import InstanceData

from unigrounding.codecs.base import ModelView, rewrite_tokens
from unigrounding.codecs.region_proxy import (
    PROMPT_PROXY,
    REGION,
    REGIONS,
    TARGET_PROXY,
    TRIGGER,
    RegionHeader,
    RegionProxyProcessor,
    region_features,
)
from unigrounding.data import collate
from unigrounding.evaluation import ProposalRecall
from unigrounding.proposers import DeformableDetrProposer
from unigrounding.proposers.deformable_detr import quality_focal_loss
from unigrounding.registry import MODELS
from unigrounding.structures import RefTargets


# ---------------------------------------------------------------- region encoder
def _ramps(size: int) -> torch.Tensor:
    """``(1, 2, size, size)``: channel 0 is the column index, channel 1 the row."""
    cols = torch.arange(size, dtype=torch.float32).expand(size, size)
    return torch.stack([cols, cols.T])[None]


def test_roi_align_gets_x1y1x2y2_pixels_hand_computed_crop():
    """A 4x4 map at stride 16 (64 px input) holding the cell's column / row
    index: the pixel-aligned mean over a box is the value at the box centre in
    cell units minus half a cell. Box (8, 24, 40, 56) -> centre (24, 40) px ->
    (1.5 - 0.5, 2.5 - 0.5) = (1.0, 2.0). Read as cx, cy, w, h the same numbers
    would be the box (-12, -4, 28, 52) (clipped), centre (8, 24): (0.0, 1.0)."""
    feats = region_features([_ramps(4)], [torch.tensor([[8.0, 24.0, 40.0, 56.0]])], (64, 64))
    assert torch.allclose(feats, torch.tensor([[1.0, 2.0]]), atol=1e-5)


def test_roi_align_crop_of_an_indicator_map():
    """A map that is 1 on cells (row 1, cols 1-2) of an 8x8 grid (stride 8): a
    box covering exactly those cells' centres, pooled at 2x2 with two samples
    per bin, reads only ones; the same box one cell lower reads only zeros."""
    fmap = torch.zeros(1, 1, 8, 8)
    fmap[0, 0, 1, 1:3] = 1.0
    # cell centres (in pixels) of cells x in {1, 2}, y = 1: x 12..20, y 12
    on = region_features([fmap], [torch.tensor([[12.0, 11.0, 20.0, 13.0]])], (64, 64), pool=2)
    off = region_features([fmap], [torch.tensor([[12.0, 27.0, 20.0, 29.0]])], (64, 64), pool=2)
    assert on.item() == pytest.approx(1.0, abs=0.15) and off.item() == pytest.approx(0.0)


def test_region_features_concatenate_levels_and_batch_boxes_per_image():
    levels = [torch.cat([x, x + 100]) for x in (_ramps(8), _ramps(4))]  # two images
    boxes = [torch.tensor([[0.0, 0.0, 64.0, 64.0]]), torch.tensor([[8.0, 8.0, 40.0, 40.0]] * 2)]
    feats = region_features(levels, boxes, (64, 64))
    assert feats.shape == (3, 4)  # 3 boxes; 2 channels from each of 2 levels
    # whole image, stride 8: centre 32 px = 4 cells - 0.5; stride 16: 2 - 0.5
    assert torch.allclose(feats[0], torch.tensor([3.5, 3.5, 1.5, 1.5]), atol=1e-5)
    # second image (+100), centre 24 px: stride 8 -> 2.5, stride 16 -> 1.0
    expected = torch.tensor([[102.5, 102.5, 101.0, 101.0]] * 2)
    assert torch.allclose(feats[1:], expected, atol=1e-5)


# ---------------------------------------------------------------- syntax
def _sample_with_regions(shapes_root, regions):
    sample = make_dataset(shapes_root)[0]["data_samples"]
    sample.codec_state = RegionHeader(tuple(map(tuple, regions)))
    return sample


def test_format_puts_header_after_image_and_trigger_on_grounding_turns(shapes_root):
    proc = RegionProxyProcessor(num_proxies=8)
    sample = make_dataset(shapes_root)[0]["data_samples"]
    rendered = proc.format(sample)
    user, answer = rendered.turns[0]["text"], rendered.turns[1]["text"]
    assert f"<image> Regions: {REGIONS}." in user and user.endswith(TRIGGER)
    assert answer.startswith("<p> ") and f"<roi> {TARGET_PROXY} </roi>" in answer
    reg = make_dataset(shapes_root, task="reg")[0]["data_samples"]
    turns = proc.format(reg).turns
    assert PROMPT_PROXY + REGION in turns[0]["text"] and TRIGGER not in turns[0]["text"]
    late = RegionProxyProcessor(num_proxies=8, header="after_question").format(sample)
    assert late.turns[0]["text"].endswith(f"{TRIGGER} Regions: {REGIONS}.")
    with pytest.raises(ValueError, match="header must be one of"):
        RegionProxyProcessor(header="before")


def test_parse_reads_proxies_per_roi_block_and_counts_failures(shapes_root):
    regions = [[1.0, 2.0, 10.0, 12.0], [5.0, 5.0, 20.0, 30.0], [0.0, 0.0, 3.0, 3.0]]
    sample = _sample_with_regions(shapes_root, regions)
    proc = RegionProxyProcessor(num_proxies=8)
    text = "<p> two dogs </p> <roi> <r2><r0> </roi> and <p> a cat </p> <roi> <r1> </roi>"
    refs = proc.parse(text, sample)
    assert refs.boxes.tolist() == [regions[2], regions[0], regions[1]]
    assert refs.phrases == ["two dogs", "two dogs", "a cat"]
    assert refs.group_ids.tolist() == [0, 0, 1]
    assert refs.metainfo["parse_failures"] == 0 and refs.metainfo["parse_repairs"] == 0
    bad = proc.parse("<p> x </p> <roi> <r7><r1> </roi> <r0> <roi> <r2>", sample)
    # <r7> beyond the 3 regions; <r0> outside any block; the truncated block still reads <r2>
    assert bad.boxes.tolist() == [regions[1], regions[2]]
    assert bad.metainfo["parse_failures"] == 2 and bad.metainfo["parse_repairs"] == 1


def test_roi_blocks_never_closed_are_repairs(shapes_root):
    regions = [[1.0, 2.0, 10.0, 12.0], [5.0, 5.0, 20.0, 30.0], [0.0, 0.0, 3.0, 3.0]]
    sample = _sample_with_regions(shapes_root, regions)
    proc = RegionProxyProcessor(num_proxies=8)

    def counts(text):
        refs = proc.parse(text, sample)
        return len(refs), refs.metainfo["parse_failures"], refs.metainfo["parse_repairs"]

    assert counts("<roi> <r0> </roi> <roi> <r1> </roi>") == (2, 0, 0)
    assert counts("<roi> <r0> <roi> <r1> </roi>") == (2, 0, 1)  # runs into the next block
    assert counts("<roi> <r0> </roi> <roi> <r1><r2>") == (3, 0, 1)  # answer cut short
    assert counts("<roi> <r0> </roi> <roi> <r7>") == (1, 1, 0)  # nothing read: a failure only
    unprepared = proc.parse("<roi> <r0> </roi>", make_dataset(shapes_root)[0]["data_samples"])
    assert len(unprepared) == 0 and unprepared.metainfo["parse_failures"] == 1  # no regions yet


# ---------------------------------------------------------------- deferred proxies
@pytest.fixture(scope="module")
def proxy_model():
    torch.manual_seed(0)
    return MODELS.build(tiny_model_cfg(type="region_proxy", num_proxies=16))


def _fixed_proposals(model, boxes_per_image):
    """Make the model's proposer return exactly these (model-input) boxes."""
    proposer = model.proposers["proposer"]

    def propose(feats, canvas_hw):
        return [
            InstanceData(bboxes=torch.tensor(b, dtype=torch.float32), scores=torch.ones(len(b)))
            for b in boxes_per_image
        ]

    proposer.propose = propose
    model._proposal_cache.clear()  # proposals of the previous stand-in are cached


def test_prepare_resolves_target_proxy_to_best_iou_region_and_supervises_it(
    proxy_model, shapes_root, monkeypatch
):
    ds = make_dataset(shapes_root)
    batch = collate([ds[i] for i in range(2)])
    gts = [s.frame.boxes_to_input(s.gt_refs.boxes.numpy())[0] for s in batch["data_samples"]]
    # image 0: the GT is region 1 (slightly shifted); image 1: only far-away boxes
    shifted = (gts[0] + 1.0).tolist()
    far = [[0.0, 0.0, 2.0, 2.0], [60.0, 60.0, 62.0, 62.0]]
    _fixed_proposals(proxy_model, [[far[0], shifted, far[1]], far])
    monkeypatch.setattr(proxy_model.codec, "inject_gt", "never")
    view = proxy_model.model_view(batch["inputs"], batch["data_samples"], train=True)
    tok = proxy_model.tokenizer
    r = tok.convert_tokens_to_ids
    for b, expect in ((0, "<r1>"), (1, None)):
        ids = view.input_ids[b][view.attention_mask[b].bool()].tolist()
        assert r(REGIONS) not in ids and r(TARGET_PROXY) not in ids
        n_regions = 3 if b == 0 else 2
        assert ids.count(r(REGION)) == n_regions
        supervised = [t for t in view.labels[b].tolist() if t != -100]
        proxies = [
            tok.convert_ids_to_tokens(t) for t in supervised if t in proxy_model.codec.proxy_ids
        ]
        if expect:
            assert proxies == [expect]
    # header tokens are never supervised
    header = view.input_ids[0] == r(REGION)
    assert (view.labels[0][header] == -100).all()


def test_missed_ground_truth_is_injected_at_a_drawn_position(proxy_model, shapes_root, monkeypatch):
    ds = make_dataset(shapes_root)
    batch = collate([ds[i] for i in range(2)])
    far = [[0.0, 0.0, 2.0, 2.0], [60.0, 60.0, 62.0, 62.0]]
    _fixed_proposals(proxy_model, [far, far])
    monkeypatch.setattr(proxy_model.codec, "inject_gt", "missed")
    proxy_model.model_view(batch["inputs"], batch["data_samples"], train=True)
    for s in batch["data_samples"]:
        regions = np.array(RegionHeader.of(s).boxes)
        assert len(regions) == 3
        gt = s.gt_refs.boxes.numpy()[0]
        assert np.abs(regions - gt).max(axis=1).min() < 1e-3  # the GT itself is a region
    # inference never injects
    samples = [s.clone() for s in batch["data_samples"]]
    proxy_model.prepare_samples(batch["inputs"], samples)
    assert all(len(RegionHeader.of(s).boxes) == 2 for s in samples)


def test_user_box_becomes_an_extra_region_after_the_header(proxy_model, shapes_root):
    ds = make_dataset(shapes_root, task="reg")
    batch = collate([ds[i] for i in range(2)])
    _fixed_proposals(proxy_model, [[[0.0, 0.0, 10.0, 10.0]]] * 2)
    view = proxy_model.prepare_samples(batch["inputs"], batch["data_samples"])
    text = proxy_model.tokenizer.decode(view.input_ids[0])
    assert "<r0><region>." in text.replace(" ", "") and "<r1><region>" in text
    prompt = batch["data_samples"][0]
    regions = RegionHeader.of(prompt).boxes
    assert np.allclose(regions[1], prompt.prompt_refs.boxes[0].numpy(), atol=1e-3)


def test_proposals_are_cached_per_image_while_the_tower_is_frozen(proxy_model, shapes_root):
    ds = make_dataset(shapes_root)
    batch = collate([ds[i] for i in range(3)])
    calls = []
    _fixed_proposals(proxy_model, [[[0.0, 0.0, 10.0, 10.0]]] * 3)
    fixed = proxy_model.proposers["proposer"].propose

    def counting(feats, canvas_hw):
        calls.append(len(feats[0]))
        return fixed(feats, canvas_hw)[: len(feats[0])]

    proxy_model.proposers["proposer"].propose = counting
    proxy_model.prepare_samples(batch["inputs"], [s.clone() for s in batch["data_samples"]])
    proxy_model.prepare_samples(batch["inputs"][:2], [s.clone() for s in batch["data_samples"][:2]])
    assert calls == [3]  # the second batch's images were all seen
    proxy_model.load_state_dict(proxy_model.state_dict())  # new weights: cache dropped
    proxy_model.prepare_samples(batch["inputs"][:2], [s.clone() for s in batch["data_samples"][:2]])
    assert calls == [3, 2]
    proxy_model.vision.requires_grad_(True)  # a learning tower: never cached
    try:
        proxy_model.prepare_samples(batch["inputs"][:1], [batch["data_samples"][0].clone()])
        proxy_model.prepare_samples(batch["inputs"][:1], [batch["data_samples"][0].clone()])
    finally:
        proxy_model.vision.requires_grad_(False)
    assert calls == [3, 2, 1, 1]


def test_rewrite_tokens_repads_and_carries_supervision():
    ids = torch.tensor([[1, 7, 2, 0], [1, 2, 8, 9]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    labels = torch.tensor([[-100, -100, 2, -100], [-100, -100, 8, 9]])
    view = ModelView([], [], None, ids, mask, labels)
    rewrite_tokens(view, [{1: [5, 5, 5]}, {2: [4]}], pad_id=0)
    assert view.input_ids.tolist() == [[1, 5, 5, 5, 2], [1, 2, 4, 9, 0]]
    assert view.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert view.labels.tolist() == [[-100, -100, -100, -100, 2], [-100, -100, 4, 9, -100]]
    left = ModelView([], [], None, torch.tensor([[0, 1, 7]]), torch.tensor([[0, 1, 1]]))
    rewrite_tokens(left, [{1: [3, 3]}], pad_id=0)
    assert left.input_ids.tolist() == [[1, 3, 3]] and left.labels is None


# ---------------------------------------------------------------- proposer
def _proposer(**kw):
    cfg = {k: v for k, v in TINY_PROPOSER.items() if k != "type"}
    return DeformableDetrProposer(in_channels=[8, 16, 32], in_strides=[8, 16, 32], **{**cfg, **kw})


def test_proposer_outputs_every_stage_and_caps_queries_at_positions():
    torch.manual_seed(0)
    proposer = _proposer(num_queries=300)
    feats = [torch.randn(2, c, 64 // s, 64 // s) for c, s in ((8, 8), (16, 16), (32, 32))]
    outs = proposer(feats, (64, 64))
    assert len(outs) == 1 + 1  # anchors + one decoder layer
    assert outs[0]["boxes"].shape == (2, 64 + 16 + 4 + 1, 4)
    assert outs[1]["boxes"].shape == (2, 85, 4) and outs[1]["logits"].shape == (2, 85)
    assert ((outs[1]["boxes"] > 0) & (outs[1]["boxes"] < 1)).all()


def test_look_forward_twice_trains_the_previous_layers_box_head():
    """Layer i's box is refined from layer i - 1's *undetached* box (DINO)."""
    torch.manual_seed(0)
    proposer = _proposer(decoder_layers=2)
    for head in proposer.box_heads:  # non-zero last layers so gradients can pass
        torch.nn.init.normal_(head[-1].weight, std=0.1)
    feats = [torch.randn(1, c, 64 // s, 64 // s) for c, s in ((8, 8), (16, 16), (32, 32))]
    last = proposer(feats, (64, 64))[-1]
    last["boxes"].sum().backward()
    assert proposer.box_heads[0][-1].weight.grad.abs().sum() > 0
    assert proposer.box_heads[1][-1].weight.grad.abs().sum() > 0


def test_quality_focal_loss_hand_computed():
    logits = torch.tensor([0.0, 2.0])
    quality = torch.tensor([0.5, 0.0])
    p = torch.sigmoid(torch.tensor(2.0)).item()
    expected = 0.0 + (p**2) * -np.log(1 - p)  # first term: p = target = 0.5 -> weight 0
    assert quality_focal_loss(logits, quality).item() == pytest.approx(expected, rel=1e-5)


def test_filter_thresholds_then_nms_then_top_k():
    proposer = _proposer(max_proposals=2)
    # cx, cy, w, h normalised: two near-duplicates, one distinct, one low-score
    boxes = torch.tensor(
        [[0.5, 0.5, 0.2, 0.2], [0.51, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1], [0.8, 0.8, 0.1, 0.1]]
    )
    logits = torch.logit(torch.tensor([0.9, 0.8, 0.5, 0.1]))
    out = proposer.filter(boxes, logits, (100, 100))
    assert out.scores.tolist() == pytest.approx([0.9, 0.5])
    assert out.bboxes[0].tolist() == pytest.approx([40.0, 40.0, 60.0, 60.0])
    # on a 100 x 200 (h x w) canvas, x is in fractions of 200
    wide = proposer.filter(boxes, logits, (100, 200))
    assert wide.bboxes[0].tolist() == pytest.approx([80.0, 40.0, 120.0, 60.0])


def test_proposal_recall_hand_computed():
    metric = ProposalRecall(ks=(1, 2), iou=0.5)
    gt = RefTargets.build([[0, 0, 10, 10], [20, 20, 30, 30]])
    pred = RefTargets.build([[20, 20, 30, 31], [0, 0, 10, 10.5]], scores=[0.9, 0.8])
    empty_pred = RefTargets.build([[0, 0, 1, 1]], scores=[0.5])[:0]
    metric.process(None, [{"pred_refs": pred, "gt_refs": gt}])
    metric.process(None, [{"pred_refs": empty_pred, "gt_refs": gt}])
    out = metric.compute_metrics(metric.results)
    assert out["recall@1"] == pytest.approx(1 / 4) and out["recall@2"] == pytest.approx(2 / 4)
    assert out["per_image"] == pytest.approx(1.0)


def test_roundtrip_with_ground_truth_proposals_is_exact(shapes_root):
    """The codec's own ceiling: given a proposer that returns the ground-truth
    boxes, every target's proxy names its own box (``min_roundtrip_iou`` is 0
    because with a real proposer the ceiling is the proposer's recall)."""
    from unigrounding.roundtrip import prepared_samples, roundtrip

    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(type="region_proxy", num_proxies=16))
    items = [make_dataset(shapes_root)[i] for i in range(12)]
    gt_boxes = [
        x["data_samples"].frame.boxes_to_input(x["data_samples"].gt_refs.boxes.numpy()).tolist()
        for x in items
    ]
    _fixed_proposals(model, gt_boxes)
    samples = prepared_samples(model, items, batch_size=len(items))
    result = roundtrip(model.codec, model.tokenizer, samples)
    assert result["n"] == len(items)
    assert result["box_iou_mean"] >= 0.99
