"""``gnd_query`` (UGLMM): [GND] runs, grounding decoder losses, prompts."""

from __future__ import annotations

import pytest
import torch
from conftest import answered_view, make_dataset, tiny_model_cfg, train_steps

from unigrounding.codecs.gnd_query import GND, parse_objects
from unigrounding.data import collate
from unigrounding.decoders import GroundingQueryDecoder
from unigrounding.decoders.grounding_query import UGLMM_LOSS_WEIGHTS
from unigrounding.registry import MODELS


def test_parse_objects_groups_runs_and_counts_remainders():
    run = GND * 3
    text = f"Sure, it is the red circle {run}. Also the squares {run}, {run}"
    objects, failures = parse_objects(text, 3)
    assert failures == 0
    assert [(p, g, o) for p, g, o in objects] == [
        ("the red circle", 0, [0, 1, 2]),
        ("Also the squares", 1, [3, 4, 5]),
        ("Also the squares", 1, [6, 7, 8]),
    ]
    objects, failures = parse_objects(f"a {GND * 4}", 3)  # one object + a stray token
    assert len(objects) == 1 and failures == 1
    objects, failures = parse_objects(f"a {GND * 2}", 3)
    assert objects == [] and failures == 1


@pytest.mark.parametrize("k", [1, 3])
def test_target_rendering_has_k_tokens_per_instance(k, rec_batch):
    model = MODELS.build(tiny_model_cfg(type="gnd_query", k=k))
    sample = rec_batch["data_samples"][0]
    rendered = model.codec.processor.format(sample)
    answer = rendered.turns[-1]["text"]
    assert answer.count(GND) == k * len(sample.gt_refs.group(0))
    objects, failures = parse_objects(answer, k)
    assert failures == 0 and len(objects) == len(sample.gt_refs.group(0))


def test_default_loss_weights_are_the_papers():
    assert UGLMM_LOSS_WEIGHTS == {"cls": 0.08, "bce": 0.1, "dice": 0.1, "giou": 0.04, "l1": 0.1}
    decoder = GroundingQueryDecoder()
    assert decoder.queries.num_embeddings == 300


@pytest.fixture(scope="module")
def gnd_model():
    torch.manual_seed(0)
    cfg = tiny_model_cfg(type="gnd_query")
    cfg["decoders"] = dict(grounding=dict(type="GroundingQueryDecoder", num_queries=20))
    return MODELS.build(cfg)


def test_rec_trains_box_terms_and_res_adds_mask_terms(gnd_model, rec_batch, shapes_root):
    gnd_model.train()
    rec = gnd_model(rec_batch["inputs"], rec_batch["data_samples"], mode="loss")
    assert rec["loss_gnd_l1"] > 0 and rec["loss_gnd_giou"] > 0 and rec["loss_gnd_cls"] > 0
    assert rec["loss_gnd_bce"].item() == 0.0 and "loss_gnd_dice" not in rec
    ds = make_dataset(shapes_root, task="res")
    batch = collate([ds[i] for i in range(2)])
    res = gnd_model(batch["inputs"], batch["data_samples"], mode="loss")
    assert res["loss_gnd_bce"] > 0 and res["loss_gnd_dice"] > 0
    gnd_model.zero_grad()
    sum(rec.values()).backward()
    for name, p in gnd_model.decoders.named_parameters():
        assert p.grad is not None, name


def test_box_and_mask_losses_fall_when_overfitting_res(shapes_root):
    torch.manual_seed(0)
    cfg = tiny_model_cfg(type="gnd_query")
    cfg["decoders"] = dict(grounding=dict(type="GroundingQueryDecoder", num_queries=20))
    model = MODELS.build(cfg)
    ds = make_dataset(shapes_root, split="train", task="res")
    batch = collate([ds[i] for i in range(2)])
    history = train_steps(model, batch, 60)
    for key in ("loss_gnd_l1", "loss_gnd_giou", "loss_gnd_bce", "loss_gnd_dice"):
        assert history[-1][key] < 0.6 * history[0][key], key


def test_prompts_are_mask_pooled_through_the_projector(gnd_model, shapes_root):
    from unigrounding.codecs.visual_prompts import mask_guided_aggregation, region_mask

    ds = make_dataset(shapes_root, task="reg")
    batch = collate([ds[i] for i in range(2)])
    view = gnd_model.model_view(batch["inputs"], batch["data_samples"], train=True)
    is_prompt = view.input_ids == gnd_model.codec.prompt_id
    assert is_prompt.sum(1).tolist() == [1, 1]
    embeds = gnd_model._embed(view)
    sample = batch["data_samples"][1]
    group, row = view.rendered[1].side["prompt_rows"][0]
    mask = region_mask(sample.prompt_refs.group(group), row, sample, (8, 8), (64, 64))
    pooled = mask_guided_aggregation(view.vision_tokens[1], mask, 1, None)
    expected = view.project(pooled, torch.ones(1, dtype=torch.long))
    torch.testing.assert_close(embeds[1][is_prompt[1]], expected)


def test_objects_whose_gnd_tokens_were_not_generated_are_failures(gnd_model, rec_batch):
    """A ``[GND]`` of the text that is not among the generated tokens (typed
    out, say) has no hidden state: its object is lost, and counted."""
    sample = rec_batch["data_samples"][0]
    gnd_model.eval()
    view = answered_view(gnd_model, rec_batch["inputs"][:1], [sample], [f"a {GND * 3}, {GND * 3}"])
    ids = view.generated_ids
    gnd = (ids[0] == gnd_model.codec.gnd_id).nonzero().flatten()
    other = int(ids[0, 0])  # the id of "a"
    ids[0, gnd[3:]] = other  # the second object's tokens: text only
    with torch.no_grad():
        refs = gnd_model.codec.decode(view)[0]
    assert len(refs) <= 1 and len(refs) + refs.metainfo["parse_failures"] == 2
    ids[0, gnd] = other  # none generated
    with torch.no_grad():
        refs = gnd_model.codec.decode(view)[0]
    assert len(refs) == 0 and refs.metainfo["parse_failures"] == 2


def test_k_must_be_positive():
    with pytest.raises(ValueError, match="k .* must be >= 1"):
        MODELS.build(tiny_model_cfg(type="gnd_query", k=0))


def test_category_detection_answers_are_scored_instances(gnd_model, shapes_root):
    """UGLMM's category-based detection: ``circle-1 [GND]x3, circle-2 ...``
    trains, and every predicted instance carries its query similarity as the
    score COCO mAP ranks by."""
    from unigrounding.evaluation import CategoryDetectionMetric

    ds = make_dataset(shapes_root, task="det")
    many = next(i for i in range(len(ds)) if len(ds[i]["data_samples"].gt_refs) > 1)
    batch = collate([ds[many], ds[0]])
    answer = gnd_model.codec.processor.format(batch["data_samples"][0]).turns[-1]["text"]
    name = batch["data_samples"][0].expression
    assert answer.startswith(f"{name}-1 {GND * 3}, {name}-2 {GND * 3}")
    gnd_model.train()
    losses = gnd_model(batch["inputs"], batch["data_samples"], mode="loss")
    assert losses["loss_gnd_l1"] > 0
    text = f"{name}-1 {GND * 3}, {name}-2 {GND * 3}"
    gnd_model.eval()
    view = answered_view(gnd_model, batch["inputs"], batch["data_samples"], [text, text])
    with torch.no_grad():
        preds = gnd_model.codec.decode(view)
    assert [list(p.phrases) for p in preds] == [[f"{name}-1", f"{name}-2"]] * 2
    assert all(0 < float(sc) < 1 for p in preds for sc in p.scores)
    for sample, refs in zip(batch["data_samples"], preds, strict=True):
        sample.pred_refs = refs
    metric = CategoryDetectionMetric()
    metric.process({}, [s.to_dict() for s in batch["data_samples"]])
    out = metric.compute_metrics(metric.results)
    assert out["detections"] == sum(len(p) for p in preds) and 0.0 <= out["map"] <= 1.0
