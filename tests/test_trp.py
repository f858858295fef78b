"""``trp`` (REF-VLM): syntax, parser, router with fake tensors, decoders, prompts."""

from __future__ import annotations

import pytest
import torch
from conftest import answered_view, make_dataset, tiny_model_cfg, train_steps

from unigrounding.codecs.trp import parse_triplets, serialize_triplet, vd_cot
from unigrounding.codecs.visual_prompts import (
    cosine_position_code,
    mask_guided_aggregation,
    region_mask,
)
from unigrounding.data import collate
from unigrounding.decoders import BoxDecoder, KeypointDecoder
from unigrounding.registry import MODELS
from unigrounding.structures import RefTargets

UNITS = ("box", "mask", "keypoint")


def test_serialization_of_one_to_one_and_one_to_many():
    assert (
        serialize_triplet("a big one", ["box"], 1)
        == "<Phrase>a big one</Phrase>(<Unit>box</Unit>[0]<REF>)"
    )
    assert (
        serialize_triplet("two capybaras", ["box"], 2)
        == "<Phrase>two capybaras</Phrase>(<Unit>box</Unit>[0]<REF>[1]<REF>)"
    )
    assert serialize_triplet("dog", ["box", "keypoint"], 1) == (
        "<Phrase>dog</Phrase>(<Unit>box, keypoint</Unit>[0]<REF>)"
    )


def test_vd_cot_block_states_name_unit_number_or_no_decoding():
    assert vd_cot([]) == "<Task>Unit decode (False).</Task>"
    assert vd_cot([("red circle", ["box"], 1), ("squares", ["mask"], 2)]) == (
        "<Task>Unit decode (True). name: red circle, unit: box, number: 1; "
        "name: squares, unit: mask, number: 2.</Task>"
    )


def test_parse_groups_consecutive_refs_into_triplets():
    text = (
        vd_cot([("capybaras", ["box"], 2)])
        + " There are "
        + serialize_triplet("two capybaras", ["box"], 2)
        + " and "
        + serialize_triplet("a dog", ["box", "keypoint"], 1)
        + "."
    )
    triplets, failures = parse_triplets(text, UNITS)
    assert failures == 0
    assert [(t.phrase, t.units, t.ref_positions) for t in triplets] == [
        ("two capybaras", ["box"], [0, 1]),
        ("a dog", ["box", "keypoint"], [2]),
    ]


def test_nested_phrases_take_the_innermost_closed_phrase():
    text = (
        "<Phrase><Phrase>dog</Phrase> in <Phrase>park</Phrase></Phrase>(<Unit>mask</Unit>[0]<REF>)"
    )
    triplets, failures = parse_triplets(text, UNITS)
    assert failures == 0
    assert [(t.phrase, t.units) for t in triplets] == [("dog in park", ["mask"])]


@pytest.mark.parametrize(
    ("text", "n_triplets", "min_failures"),
    [
        ("<Phrase>a</Phrase>(<Unit>box</Unit>[0]<REF>", 1, 0),  # truncated after the ref
        ("<Phrase>a</Phrase>(<Unit>box", 0, 1),  # truncated inside the unit
        ("<Phrase>a(<Unit>box</Unit>[0]<REF>)", 1, 1),  # phrase never closed
        ("</Phrase>(<Unit>box</Unit>[0]<REF>)", 1, 1),  # end without start
        ("<Phrase>a</Phrase>[0]<REF>", 0, 1),  # ref with no unit
        ("<Phrase>a</Phrase>(<Unit>depth</Unit>[0]<REF>)", 0, 2),  # unknown unit
        ("<Phrase>a</Phrase>(<Unit>box</Unit>" + "[0]<REF>" * 200, 1, 0),  # looping
    ],
)
def test_parser_tolerates_malformed_output(text, n_triplets, min_failures):
    triplets, failures = parse_triplets(text, UNITS)
    assert len(triplets) == n_triplets
    assert failures >= min_failures


def test_refs_inside_the_task_block_are_counted_but_not_decoded():
    text = "<Task>name: a <REF></Task><Phrase>a</Phrase>(<Unit>box</Unit>[0]<REF>)"
    triplets, _ = parse_triplets(text, UNITS)
    assert [t.ref_positions for t in triplets] == [[1]]  # ordinal 1: the second <REF>


@pytest.fixture(scope="module")
def trp_model():
    torch.manual_seed(0)
    cfg = tiny_model_cfg(type="trp")
    cfg["decoders"] = dict(keypoint=dict(type="KeypointDecoder", num_keypoints=2))
    return MODELS.build(cfg)


def test_decoders_are_owned_by_the_model_not_the_codec(trp_model):
    names = [n for n, _ in trp_model.named_parameters()]
    assert any(n.startswith("decoders.box.") for n in names)
    assert not any(n.startswith("codec.decoders") for n in names)
    assert set(trp_model.codec.decoders) == {"box", "mask", "keypoint"}


def test_box_only_batch_gives_every_decoder_a_gradient(trp_model, rec_batch):
    """The paper's fake tensors: inactive decoders (and their query
    projections) stay in the graph with zero gradients."""
    trp_model.train()
    trp_model.zero_grad()
    losses = trp_model(rec_batch["inputs"], rec_batch["data_samples"], mode="loss")
    assert losses["loss_mask"].item() == 0.0 and losses["loss_keypoint"].item() == 0.0
    assert losses["loss_box_l1"].item() > 0
    sum(losses.values()).backward()
    for name, p in [
        *trp_model.decoders.named_parameters(),
        *trp_model.codec.query_proj.named_parameters(),
    ]:
        assert p.grad is not None, name
    assert any(p.grad.abs().sum() > 0 for p in trp_model.decoders["box"].parameters())
    assert all(p.grad.abs().sum() == 0 for p in trp_model.decoders["mask"].parameters())


def test_res_batch_trains_and_decodes_masks(trp_model, shapes_root, monkeypatch):
    ds = make_dataset(shapes_root, task="res")
    batch = collate([ds[i] for i in range(2)])
    trp_model.train()
    losses = trp_model(batch["inputs"], batch["data_samples"], mode="loss")
    assert losses["loss_mask_focal"].item() > 0 and losses["loss_box"].item() == 0.0
    sample = batch["data_samples"][0]
    text = serialize_triplet("it", ["mask"], 1)
    trp_model.eval()
    view = answered_view(trp_model, batch["inputs"][:1], [sample], [text])

    # a mask decoder that marks the left half of its grid
    def left_half(queries, pyramid, images=None):
        logits = torch.full((*queries.shape[:2], 16, 16), -5.0)
        logits[..., :8] = 5.0
        return logits.flatten(2)

    monkeypatch.setattr(trp_model.decoders["mask"], "forward", left_half)
    with torch.no_grad():
        refs = trp_model.codec.decode(view)[0]
    assert len(refs) == 1 and refs.units == ["mask"] and refs.phrases == ["it"]
    assert refs.masks.shape[-2:] == tuple(sample.ori_shape)
    expected = sample.frame.mask_to_original(torch.arange(64).expand(64, 64) < 32)
    assert torch.equal(refs.masks[0], expected)
    ys, xs = torch.nonzero(expected, as_tuple=True)
    assert refs.boxes[0].tolist() == [
        0.0,
        float(ys.min()),
        float(xs.max() + 1),
        float(ys.max() + 1),
    ]


@pytest.mark.parametrize(
    ("counts", "read", "failures", "repairs"),
    [
        ((2, 3), 5, 0, 0),
        ((11,), 8, 0, 1),  # 3 <REF> beyond the box decoder's 8 queries
        ((6, 3), 8, 0, 1),  # the second triplet keeps 2 of its 3
        ((8, 1), 8, 1, 0),  # nothing left for the second: a failure
    ],
)
def test_refs_beyond_the_query_budget_make_their_triplet_a_repair(
    trp_model, rec_batch, monkeypatch, counts, read, failures, repairs
):
    assert trp_model.codec.queries_per_decoder == 8
    sample = rec_batch["data_samples"][0]
    text = " and ".join(serialize_triplet(f"thing {i}", ["box"], n) for i, n in enumerate(counts))
    trp_model.eval()
    view = answered_view(trp_model, rec_batch["inputs"][:1], [sample], [text])

    def centred(queries, pyramid, images=None):  # every query: a box inside the image
        return torch.tensor([0.5, 0.5, 0.2, 0.2]).expand(*queries.shape[:2], 4)

    monkeypatch.setattr(trp_model.decoders["box"], "forward", centred)
    with torch.no_grad():
        refs = trp_model.codec.decode(view)[0]
    meta = refs.metainfo
    assert (len(refs), meta["parse_failures"], meta["parse_repairs"]) == (read, failures, repairs)


def test_a_unit_left_undecoded_makes_its_triplet_a_repair():
    from types import SimpleNamespace

    import numpy as np

    from unigrounding.codecs.trp import Triplet
    from unigrounding.codecs.trp.codec import _assemble

    sample = SimpleNamespace(ori_shape=(32, 32))
    trips = [Triplet("a", ["box", "mask"], [0]), Triplet("b", ["box"], [1])]
    boxes = {"boxes": np.array([[2.0, 2.0, 10.0, 10.0]])}
    refs = _assemble(trips, {0: {"box": boxes}, 1: {"box": boxes}}, 0, sample)
    assert len(refs) == 2 and refs.metainfo["parse_repairs"] == 1  # "a" got no mask query
    refs = _assemble(trips[1:], {0: {"box": boxes}}, 0, sample)
    assert refs.metainfo["parse_repairs"] == 0


def test_keypoint_decoder_starts_from_the_box_decoder():
    box, kp = BoxDecoder(dim=32), KeypointDecoder(num_keypoints=3, dim=32)
    kp.init_from_box_decoder(box)
    for (n, a), (_, b) in zip(
        box.decoder.named_parameters(), kp.decoder.named_parameters(), strict=True
    ):
        assert torch.equal(a, b), n
    assert torch.equal(box.head[0].weight, kp.head[0].weight)
    pyramid = [torch.randn(2, 32, s, s) for s in (8, 4, 2)]
    assert kp(torch.randn(2, 5, 32), pyramid).shape == (2, 5, 6)


def test_region_mask_covers_the_prompt_and_falls_back_to_its_centre(rec_batch):
    sample = rec_batch["data_samples"][0]
    h, w = sample.ori_shape
    quarter = region_mask(RefTargets.build([[0, 0, w / 2, h / 2]]), 0, sample, (8, 8), (64, 64))
    # area fractions of the top-left quarter in the input frame (padding may shift it)
    assert quarter.max().item() == 1.0 and quarter[4:, 4:].sum().item() == 0.0
    tiny = RefTargets.build([[w / 2, h / 2, w / 2 + 0.1, h / 2 + 0.1]])
    assert region_mask(tiny, 0, sample, (8, 8), (64, 64)).sum().item() > 0


def test_mask_guided_aggregation_pools_each_block_and_adds_the_index_code():
    fmap = torch.arange(4.0).repeat_interleave(2).reshape(1, 1, 8).expand(3, 8, 8).clone()
    fmap[:, 4:] += 10  # values: column block 0/1 and row block 0/1 differ
    mask = torch.zeros(8, 8)
    mask[0:2, 0:4] = 1.0  # top-left block only
    mask[6, 6] = 0.5  # a partly covered cell of the bottom-right block
    out = mask_guided_aggregation(fmap, mask, blocks=2, temperature=10000.0)
    code = cosine_position_code(4, 3)
    assert out.shape == (4, 3)
    torch.testing.assert_close(out[0], torch.full((3,), 0.5) + code[0])  # mean of 0,0,1,1
    torch.testing.assert_close(out[1], code[1])  # untouched block: zeros + code
    torch.testing.assert_close(out[3], torch.full((3,), 13.0) + code[3])
    torch.testing.assert_close(code[:, 0], torch.arange(4.0).sin())  # eq. 2, channel 0
    torch.testing.assert_close(code[:, 1], torch.arange(4.0).cos())


def test_vpt_prompts_are_replaced_by_the_projected_aggregation(trp_model, shapes_root):
    ds = make_dataset(shapes_root, task="reg")
    batch = collate([ds[i] for i in range(2)])
    view = trp_model.model_view(batch["inputs"], batch["data_samples"], train=True)
    is_vpt = view.input_ids == trp_model.codec.vpt_id
    assert is_vpt.sum(1).tolist() == [4, 4]  # one prompt, 2 x 2 blocks
    embeds = trp_model._embed(view)
    sample = batch["data_samples"][0]
    group, row = view.rendered[0].side["prompt_rows"][0]
    mask = region_mask(sample.prompt_refs.group(group), row, sample, (8, 8), (64, 64))
    pooled = mask_guided_aggregation(view.vision_tokens[0], mask, blocks=2)
    expected = view.project(pooled, torch.zeros(4, dtype=torch.long))
    torch.testing.assert_close(embeds[0][is_vpt[0]], expected)


def test_unknown_decoder_name_is_a_clear_error():
    cfg = tiny_model_cfg(type="trp", unit_decoders={"box": "nope"})
    with pytest.raises(ValueError, match="needs at least one of the decoders"):
        MODELS.build(cfg)


def test_box_and_mask_decoder_losses_fall_when_overfitting(shapes_root):
    """One batch mixing REC (box unit) and RES (mask unit) conversations."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(type="trp"))
    rec, res = (make_dataset(shapes_root, split="train", task=t) for t in ("rec", "res"))
    batch = collate([rec[0], rec[1], res[2], res[3]])
    history = train_steps(model, batch, 200)
    for key in ("loss_box_l1", "loss_box_giou", "loss_mask_focal", "loss_mask_dice"):
        assert history[-1][key] < 0.6 * history[0][key], (key, history[0][key], history[-1][key])


@pytest.mark.parametrize("fused", [False, True])
def test_pyramid_fuses_the_image_tokens_the_llm_reads(rec_batch, fused):
    """With ``pyramid=dict(image_tokens=True)`` the decoders' memory holds the
    projected image tokens: through the instruction-aware projector it then
    depends on the question asked about the same image; without, it is the
    tower's alone."""
    from unigrounding.registry import MODELS

    torch.manual_seed(0)
    cfg = tiny_model_cfg(type="trp")
    cfg["projector"] = dict(cfg.get("projector", {}), instruction_aware=True)
    cfg["pyramid"] = dict(image_tokens=fused)
    model = MODELS.build(cfg).eval()
    sample = rec_batch["data_samples"][0]
    other = sample.clone()
    other.conversation = [
        {"role": "user", "text": "<image>\nWhere is the big green cross?"},
        sample.conversation[1],
    ]
    images = rec_batch["inputs"][:1].repeat(2, 1, 1, 1)
    with torch.no_grad():
        view = model.model_view(images, [sample, other], train=False)
    for level in view.feature_pyramid:
        assert torch.equal(level[0], level[1]) is not fused


def test_gcg_caption_becomes_one_triplet_per_object(trp_model, shapes_root):
    """GCG-box: every grounded phrase of the caption is its own box triplet,
    listed in the VD-CoT block; the parser reads them back in order."""
    ds = make_dataset(shapes_root, task="gcg")
    sample = next(
        ds[i]["data_samples"]
        for i in range(len(ds))
        if ds[i]["data_samples"].gt_refs.num_groups > 1
    )
    answer = trp_model.codec.processor.format(sample).turns[-1]["text"]
    triplets, failures = parse_triplets(answer, UNITS)
    groups = sample.gt_refs.num_groups
    assert failures == 0 and len(triplets) == groups
    assert [t.phrase for t in triplets] == [
        sample.gt_refs.group(g).phrases[0] for g in range(groups)
    ]
    assert all(t.units == ["box"] and len(t.ref_positions) == 1 for t in triplets)
    assert answer.startswith("<Task>Unit decode (True).")
