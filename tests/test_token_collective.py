"""token_collective (ClawMachine): mounting, the region sampler, the prompt
layout of the three perception modes, eq. (1), the state prepare records."""

import copy
import pickle
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import make_dataset, tiny_model_cfg

from unigrounding.codecs.token_collective import (
    ImageCodes,
    PatchLattice,
    RegionSampler,
    TokenCollectiveMetric,
    collective_scores,
    convex_box,
    fuzzy_cells,
    hull_mask,
    retrieve,
)
from unigrounding.codecs.token_collective.codec import (
    BOI,
    EOI,
    PROMPT,
    REF,
    TARGET,
    code_token,
    mount,
)
from unigrounding.data import collate
from unigrounding.registry import MODELS
from unigrounding.structures.sample import CodecState

LATTICE = PatchLattice(4, 4, 16.0)  # 64 px, centres at 8, 24, 40, 56


# ---------------------------------------------------------------- mounting
def test_box_mounts_the_patches_whose_centres_it_holds_in_raster_order():
    # x 20..44 holds centre columns 24, 40 (cols 1, 2); y 0..30 rows 0, 1
    assert LATTICE.cells_in_box(np.array([20, 0, 44, 30])).tolist() == [1, 2, 5, 6]


def test_tiny_box_falls_back_to_the_nearest_patch():
    # holds no centre; its centre (30, 50) lies in col 1, row 3
    assert LATTICE.cells_in_box(np.array([28, 48, 32, 52])).tolist() == [13]


def test_mask_mounts_by_centre_pixel_and_points_by_the_patch_under_them():
    mask = np.zeros((64, 64), dtype=bool)
    mask[8, 40] = mask[56, 8] = True  # centre pixels of patches 2 and 12
    assert LATTICE.cells_in_mask(mask).tolist() == [2, 12]
    assert LATTICE.cells_at_points(np.array([[63, 0], [1, 1], [2, 2]])).tolist() == [0, 3]


# ---------------------------------------------------------------- retrieval
def test_unique_codes_are_placed_first_and_repeated_ones_next_to_them():
    image = np.full(16, 9)
    image[11] = 1  # unique
    image[[0, 10]] = 2  # repeated: 10 is next to 11, 0 is far
    # code 2 comes first in the answer, but the unique code 1 is placed first
    assert retrieve([2, 1], image, LATTICE) == [10, 11]


def test_repeated_code_without_anchor_goes_where_the_other_codes_are():
    image = np.zeros(16, dtype=int)
    image[[0, 15]] = 3  # code 3 twice; code 4 twice, both next to patch 15
    image[[14, 11]] = 4
    assert retrieve([3, 4], image, LATTICE)[0] == 15


def test_rare_repeated_codes_anchor_before_background_codes():
    """No unique code: codes 5 and 6 (twice each) are placed before the
    background code 0 (twelve times); 5 goes where code 6 is a neighbour
    (patch 10, beside 11), 6 next to it, and the background code next to them."""
    image = np.zeros(16, dtype=int)
    image[[0, 10]] = 5
    image[[3, 11]] = 6
    assert retrieve([0, 5, 6], image, LATTICE) == [6, 10, 11]


def test_a_code_generated_twice_takes_two_occurrences_and_unknown_codes_none():
    image = np.zeros(16, dtype=int)
    image[[5, 6]] = 7
    cells = retrieve([7, 7, 99], image, LATTICE)
    assert sorted(cells[:2]) == [5, 6] and cells[2] is None


def test_patches_of_an_earlier_collective_are_avoided_when_there_is_a_choice():
    image = np.zeros(16, dtype=int)
    image[[5, 10]] = 7
    assert retrieve([7], image, LATTICE, avoid={5}) == [10]
    assert retrieve([7], image, LATTICE, avoid={5, 10}) in ([5], [10])


# ---------------------------------------------------------------- nomination
def test_the_gaussian_mixture_gives_nested_points_to_the_small_box():
    """Points on patches 5 and 6 lie in a small box (16..48, 16..32) and a
    large one (0..64, 0..64). Same count inside both; the small box's
    Gaussian is denser there, so it gets both points and wins."""
    sampler = RegionSampler()
    points = LATTICE.centres()[[5, 6]]
    proposals = np.array([[0, 0, 64, 64], [16, 16, 48, 32]], dtype=float)
    box, k = sampler.nominate(points, [5, 6], LATTICE, proposals, np.array([True, True]))
    assert k == 1 and box.tolist() == [16, 16, 48, 32]


def test_no_overlapping_proposal_gives_the_convex_box_of_the_patches():
    sampler = RegionSampler()
    proposals = np.array([[48, 48, 64, 64]], dtype=float)
    box, k = sampler.nominate(
        LATTICE.centres()[[0, 5]], [0, 5], LATTICE, proposals, np.array([True])
    )
    assert k is None and box.tolist() == [0, 0, 32, 32]
    assert convex_box([0, 5], LATTICE).tolist() == [0, 0, 32, 32]


def test_score_threshold_and_sequential_decoding_without_reuse():
    image = np.arange(16)
    proposals = np.array([[0, 0, 32, 32], [0, 0, 30, 30]], dtype=float)
    sampler = RegionSampler(score_threshold=0.3)
    first, second = sampler.sample([[0], [5]], image, LATTICE, proposals, np.array([0.9, 0.8]))
    # the smaller (denser) box wins the first; the second may not reuse it
    assert first.proposal == 1 and second.proposal == 0
    low = sampler.sample([[0]], image, LATTICE, proposals, np.array([0.2, 0.25]))[0]
    assert low.proposal is None and low.box.tolist() == [0, 0, 16, 16]
    free = RegionSampler(use_proposals=False).sample([[0]], image, LATTICE, proposals, [0.9, 0.9])
    assert free[0].proposal is None


def test_fuzzy_search_places_an_alternative_inside_a_proposal_holding_points():
    image = np.arange(16)  # every code once: code k at patch k
    proposals = np.array([[0, 0, 32, 32]], dtype=float)  # patches 0, 1, 4, 5
    # alternatives of the unknown code: 15 (outside the proposal), then 4 (inside)
    assert fuzzy_cells([[15, 4]], image, LATTICE, proposals, placed=[0]) == [4]
    assert fuzzy_cells([[15, 14]], image, LATTICE, proposals, placed=[0]) == []
    sampler = RegionSampler()
    region = sampler.sample(
        [[0, 99]], image, LATTICE, proposals, np.array([0.9]), alternatives=[[[], [15, 4]]]
    )[0]
    assert region.cells == [0] and region.unplaced == 1 and len(region.points) == 2


def test_hull_mask_of_one_patch_is_the_patch_and_of_an_l_is_convex():
    one = hull_mask([5], LATTICE, (64, 64))
    assert one.sum() == 16 * 16 and one[16:32, 16:32].all()
    ell = hull_mask([0, 4, 5], LATTICE, (64, 64))
    assert ell[20, 20] and ell[4, 20] and not ell[4, 30]  # the diagonal cut
    assert hull_mask([0, 5], LATTICE, (64, 64), box=np.array([0, 0, 16, 16])).sum() == 16 * 16


# ---------------------------------------------------------------- eq. (1)
def test_eq1_precision_recall_iou_hand_computed():
    # pred patches {1, 2, 3} + 1 code not in the image; gt {2, 3, 4, 5}
    p, r, iou = collective_scores({1, 2, 3}, 1, {2, 3, 4, 5})
    assert (p, r, iou) == pytest.approx((2 / 4, 2 / 4, 2 / (3 + 4 - 2)))
    assert collective_scores(set(), 0, {1}) == (0.0, 0.0, 0.0)


def _codes(gt_cells: tuple[int, ...]) -> ImageCodes:
    return ImageCodes((0,) * 16, LATTICE, gt_cells)


def test_collective_metric_averages_samples_and_skips_no_target():
    metric = TokenCollectiveMetric()
    metric.process(
        None,
        [
            {
                "codec_state": _codes((1, 2)),
                "pred_refs": {"collective_cells": [[1], [2]], "collective_unplaced": [0, 0]},
            },
            {"codec_state": _codes((1, 2)), "pred_refs": {}},
            {"codec_state": _codes(()), "pred_refs": {}},
        ],
    )
    out = metric.compute_metrics(metric.results)
    assert out.pop("protocol") == TokenCollectiveMetric.protocol
    assert out == pytest.approx({"precision": 0.5, "recall": 0.5, "iou": 0.5})
    with pytest.raises(ValueError, match="sample 7"):
        metric.process(None, [{"sample_id": 7, "pred_refs": {}}])


def test_blocks_never_closed_are_repairs(shapes_root):
    from unigrounding.codecs.token_collective import TokenCollectiveProcessor

    proc = TokenCollectiveProcessor(codebook_size=64)
    sample = make_dataset(shapes_root)[0]["data_samples"]
    sample.codec_state = ImageCodes(tuple(range(16)), LATTICE, ())  # one code per patch

    def counts(text):
        refs = proc.parse(f"{REF} the square {text}", sample)
        return len(refs), refs.metainfo["parse_failures"], refs.metainfo["parse_repairs"]

    v = code_token
    assert counts(f"{BOI}{v(5)}{v(6)}{EOI} {BOI}{v(10)}{EOI}") == (2, 0, 0)
    assert counts(f"{BOI}{v(5)}{v(6)}{BOI}{v(10)}{EOI}") == (2, 0, 1)  # ended by the next block
    assert counts(f"{BOI}{v(5)}{v(6)} {REF} a circle {BOI}{v(10)}{EOI}") == (2, 0, 1)
    assert counts(f"{BOI}{v(5)}{v(6)}{EOI} {BOI}{v(10)}") == (2, 0, 1)  # answer cut short
    assert counts(f"{BOI}{v(5)}{EOI} {BOI}{v(40)}") == (1, 1, 0)  # not in the image: a failure


# ---------------------------------------------------------------- the codec
@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {
        mode: MODELS.build(
            tiny_model_cfg(type="token_collective", codebook_size=64, perception=mode)
        )
        for mode in ("hybrid", "continuous", "discrete")
    }


@pytest.mark.parametrize("mode", ["hybrid", "continuous", "discrete"])
def test_image_blocks_of_each_perception_mode(models, shapes_root, mode):
    model = models[mode]
    batch = collate([make_dataset(shapes_root)[i] for i in range(2)])
    view = model.model_view(batch["inputs"], batch["data_samples"], train=True)
    codec, n = model.codec, model.num_image_tokens
    ids = view.input_ids[0][view.attention_mask[0].bool()].tolist()
    codes = codec.code_ids[list(ImageCodes.of(batch["data_samples"][0]).codes)].tolist()
    continuous = [codec.boi_id, *[model.image_token_id] * n, codec.eoi_id]
    discrete = [codec.boi_id, *codes, codec.eoi_id]
    expected = {
        "hybrid": continuous + discrete,
        "continuous": continuous,
        "discrete": discrete,
    }[mode]
    start = ids.index(codec.boi_id)
    assert ids[start : start + len(expected)] == expected
    assert ids.count(model.image_token_id) == (0 if mode == "discrete" else n)
    if mode == "discrete":  # the code tokens stand in for the image tokens
        marked = view.image_positions[0].nonzero().flatten().tolist()
        assert marked == list(range(start + 1, start + 1 + n))


def test_target_collective_is_the_supervised_mounting_of_the_box(models, shapes_root):
    model = models["hybrid"]
    batch = collate([make_dataset(shapes_root)[0]])
    sample = batch["data_samples"][0]
    assert TARGET in model.codec.processor.format(sample).turns[1]["text"]
    view = model.model_view(batch["inputs"], batch["data_samples"], train=True)
    supervised = view.labels[0][view.labels[0] != -100].tolist()
    answer = model.tokenizer.decode(supervised)
    # the answer's collective equals what encode writes once the codes are known
    expected = model.codec.processor.encode(sample.gt_refs.group(0), sample, "target")
    assert expected.startswith(REF) and expected in answer.replace("  ", " ")
    parsed = model.codec.processor.parse(expected, sample)
    assert len(parsed) == 1 and parsed.metainfo["parse_failures"] == 0
    box = sample.frame.boxes_to_input(sample.gt_refs.group(0).boxes.numpy())[0]
    state = ImageCodes.of(sample)
    assert list(state.gt_cells) == state.lattice.cells_in_box(box).tolist()
    codes = [state.codes[c] for c in state.lattice.cells_in_box(box)]
    block = [model.codec.boi_id, *model.codec.code_ids[codes].tolist(), model.codec.eoi_id]
    assert _holds(supervised, block)


def test_proposer_runs_to_decode_only(models, shapes_root, monkeypatch):
    """The sampler reads proposals; a training step never runs the proposer."""
    model = models["hybrid"]
    proposer = model.proposers["proposer"]
    calls = []
    real = proposer.propose
    monkeypatch.setattr(proposer, "propose", lambda *a: calls.append(1) or real(*a))
    batch = collate([make_dataset(shapes_root)[i] for i in range(2)])
    model.model_view(batch["inputs"], batch["data_samples"], train=True)
    assert calls == []
    assert ImageCodes.of(batch["data_samples"][0]).proposals() == (None, None)
    model.model_view(batch["inputs"], batch["data_samples"], train=False)
    assert calls == [1]
    assert ImageCodes.of(batch["data_samples"][0]).proposal_boxes is not None


@dataclass(frozen=True)
class _OtherCodecState(CodecState):
    pass


def test_unprepared_sample_has_no_codes_and_prepared_ones_keep_them(models, shapes_root):
    """Before prepare (or after another codec's) parse counts every block a
    failure, encode writes markers and the typed accessor names the sample;
    the state prepare sets survives clones, pickling and ``to_dict`` (what
    metrics receive)."""
    model = models["hybrid"]
    proc = model.codec.processor
    item = make_dataset(shapes_root)[0]
    sample = item["data_samples"]
    assert sample.codec_state is None and "codec_state" not in sample.to_dict()
    text = f"{REF} x {BOI}{code_token(1)}{EOI} {BOI}{code_token(2)}{EOI}"
    for found in ("none", f"a {_OtherCodecState.__name__}"):
        with pytest.raises(ValueError, match=f"sample {sample.sample_id}: needs the Imag.*{found}"):
            ImageCodes.of(sample)
        assert proc.parse(text, sample).metainfo["parse_failures"] == 2
        assert TARGET in proc.encode(sample.gt_refs.group(0), sample, "target")
        sample.codec_state = _OtherCodecState()
    model.prepare_samples(item["inputs"][None], [sample])
    state = ImageCodes.of(sample)
    assert len(state.codes) == state.lattice.rows * state.lattice.cols
    for copied in (sample.clone(), copy.deepcopy(sample), pickle.loads(pickle.dumps(sample))):
        assert copied.codec_state == state
    assert sample.to_dict()["codec_state"] is state


def _holds(ids: list[int], block: list[int]) -> bool:
    return any(ids[t : t + len(block)] == block for t in range(len(ids) - len(block) + 1))


def test_referring_prompt_is_the_mounting_of_the_users_region(models, shapes_root):
    model = models["hybrid"]
    item = make_dataset(shapes_root, task="reg")[0]
    sample = item["data_samples"]
    assert PROMPT in model.codec.processor.format(sample).turns[0]["text"]
    view = model.prepare_samples(item["inputs"][None], [sample])
    ids = view.input_ids[0][view.attention_mask[0].bool()].tolist()
    state = ImageCodes.of(sample)
    cells = mount(sample.prompt_refs.group(0), 0, sample, state.lattice)
    codes = [state.codes[c] for c in cells]
    block = [model.codec.boi_id, *model.codec.code_ids[codes].tolist(), model.codec.eoi_id]
    assert _holds(ids, block) and model.codec.prompt_id not in ids
    # encoding the prepared sample writes the same collective directly
    text = model.codec.processor.encode(sample.prompt_refs.group(0), sample, "prompt")
    assert text == f"{REF} region {BOI}{''.join(code_token(c) for c in codes)}{EOI}"


def test_fuzzy_alternatives_are_the_top_codes_at_each_generated_code(models):
    """decode's alternatives: per generated ``<vis_k>`` (in order, up to the
    end of the answer) the codes of the top-k logits over code tokens."""
    from unigrounding.codecs.base import ModelView

    codec, tok = models["hybrid"].codec, models["hybrid"].tokenizer
    ids = [codec.boi_id, int(codec.code_ids[3]), int(codec.code_ids[9]), codec.eoi_id]
    ids += [tok.eos_token_id, int(codec.code_ids[1])]  # after the end: ignored
    logits = torch.zeros(1, len(ids), len(tok))
    logits[0, 1, codec.code_ids[[3, 7, 5]]] = torch.tensor([3.0, 2.0, 1.0])
    logits[0, 2, codec.code_ids[[9, 2, 8]]] = torch.tensor([3.0, 2.0, 1.0])
    view = ModelView([], [], None, None, None, generated_ids=torch.tensor([ids]))
    view.generated_logits = logits
    text = f"{BOI}{code_token(3)}{code_token(9)}{EOI}"
    assert codec._alternatives(view, 0, text) == [[3, 7, 5], [9, 2, 8]]
    assert codec._alternatives(view, 0, text + code_token(4)) is None  # text disagrees


def test_masks_from_a_point_decoder_prompted_with_the_cluster_centre(shapes_root):
    """With a point-to-mask decoder in the model, each collective's mask is
    the decoder's answer to its cluster centre; without one, the hull."""
    torch.manual_seed(0)
    cfg = tiny_model_cfg(type="token_collective", codebook_size=64)
    cfg["decoders"] = {"point_to_mask": {"type": "ColourRegionGrowing"}}
    model = MODELS.build(cfg)
    item = make_dataset(shapes_root)[0]
    sample = item["data_samples"]
    view = model.prepare_samples(item["inputs"][None], [sample])
    text = model.codec.processor.encode(sample.gt_refs.group(0), sample, "target")
    view.texts = [text]
    refs = model.codec.decode(view)[0]
    assert len(refs) == 1 and refs.masks.shape[0] == 1
    found, *_ = model.codec.processor.read(text, sample)
    centre = found[0][2].centre
    expected = model.decoders["point_to_mask"](view.images[0], centre[None])
    assert torch.equal(refs.masks[0], sample.frame.mask_to_original(expected))
    hull = model.codec.processor.parse(text, sample).masks[0]
    assert hull.any() and not torch.equal(hull, refs.masks[0])
