import numpy as np
import pytest

from unigrounding.codecs.grid_offset import (
    DELETE,
    MOVES,
    POOLS,
    GridLattice,
    box_corner_refinement,
    offset_pools,
    offset_token,
    refinement_target,
    sample_refinement,
    segment_critical_cells,
)
from unigrounding.structures import paired_box_iou, points_in_mask

HW = (64, 64)


def square(y0=20, y1=30, x0=20, x1=30, hw=HW):
    mask = np.zeros(hw, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_lattice_tokens_and_geometry():
    lat = GridLattice(n=32, m=64)
    tokens = lat.tokens()
    assert len(tokens) == 32 * 32 + 9 + 1 and len(set(tokens)) == len(tokens)
    assert lat.read_grid("<grid_12_14>") == (12, 14)
    assert lat.read_grid("<grid_32_0>") is None  # outside the lattice
    assert lat.read_grid("<grid_1_x>") is None
    assert lat.read_offset("<off_-1_1>") == (-1, 1) and lat.read_offset("<off_2_0>") is None
    # x first: the point (25, 3) is in column 12, row 1; its cell centre is (25, 3)
    assert lat.cell_of(np.array([[25.2, 3.9]]), HW).tolist() == [[12, 1]]
    assert lat.centre([[12, 1]], HW).tolist() == [[25.0, 3.0]]
    assert lat.move([[25.0, 3.0]], [[1, -1]], HW).tolist() == [[26.0, 2.0]]
    with pytest.raises(ValueError, match="grid size"):
        GridLattice(n=0)


def test_critical_points_lie_inside_and_cover_thin_limbs():
    lat = GridLattice(n=32)
    assert len(segment_critical_cells(np.zeros(HW, bool), lat)) == 0
    blob = square(10, 30, 10, 30)
    cells = segment_critical_cells(blob, lat)
    centres = lat.centre(cells, HW).astype(int)
    assert blob[centres[:, 1], centres[:, 0]].all()
    # an L: a thick block and a thin arm far from it; the arm earns its own point
    ell = square(10, 30, 10, 30)
    ell[26:30, 30:60] = True
    cells_l = segment_critical_cells(ell, lat)
    xs = lat.centre(cells_l, HW)[:, 0]
    assert (xs > 40).any() and len(cells_l) > len(cells)
    # a finer grid spends more points on the same shape (stopping rule per cell)
    assert len(segment_critical_cells(ell, GridLattice(n=64))) >= len(
        segment_critical_cells(ell, GridLattice(n=16))
    )


def test_mask_smaller_than_a_cell_gets_the_cell_of_its_deepest_pixel():
    lat = GridLattice(n=8)  # 8 px cells, centres at 4, 12, ...
    mask = np.zeros(HW, bool)
    mask[17:19, 17:19] = True
    assert segment_critical_cells(mask, lat).tolist() == [[2, 2]]


def test_pools_follow_eq5_on_a_hand_worked_square():
    # n = m = 32 on 64 px: cells and steps are 2 px; the square spans x, y in 20..29.
    # k_e = 3, k_d = 5, ribbon = gradient (x 19..20) dilated by 5 -> x 17..22.
    lat = GridLattice(n=32, m=32)
    pools = offset_pools(square(), lat)
    name = {(i, j): POOLS[pools[j, i]] for i, j in [(12, 12), (9, 12), (8, 12), (0, 0)]}
    assert name[(12, 12)] == "inside"  # centre (25, 25)
    assert name[(9, 12)] == "ring"  # x = 19: one step right lands on x = 21
    assert name[(8, 12)] == "hard_delete"  # x = 17: in the ribbon, 2 px moves miss
    assert name[(0, 0)] == "far"


def test_refinement_targets():
    lat = GridLattice(n=32, m=64)  # 1 px steps
    mask = square()
    assert refinement_target(mask, [25, 25], lat) == offset_token(0, 0)
    assert refinement_target(mask, [19.5, 25], lat) == offset_token(1, 0)
    assert refinement_target(mask, [30.5, 19.5], lat) == offset_token(-1, 1)
    assert refinement_target(mask, [5, 5], lat) == DELETE


def test_sampled_refinements_are_consistent_and_seeded():
    lat = GridLattice(n=32, m=64)
    mask = square()
    a = sample_refinement(mask, lat, np.random.default_rng(0))
    b = sample_refinement(mask, lat, np.random.default_rng(0))
    assert a.cells.tolist() == b.cells.tolist() and a.targets == b.targets
    assert 3 <= len(a.cells) <= 8 and len(set(map(tuple, a.cells.tolist()))) == len(a.cells)
    for cell, target in zip(a.cells, a.targets, strict=True):
        assert target == refinement_target(mask, lat.centre(cell, HW)[0], lat)
    counts = {p: 0 for p in POOLS}
    rng = np.random.default_rng(1)
    for _ in range(200):
        for p in sample_refinement(mask, lat, rng).pools:
            counts[p] += 1
    assert counts["inside"] > counts["far"] and counts["ring"] > counts["hard_delete"] > 0


def test_box_corner_offsets_reach_tau_or_delete_both():
    import torch

    lat = GridLattice(n=32, m=64)
    box = np.array([20.0, 20.0, 30.0, 30.0])
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(30):
        cells, targets = box_corner_refinement(box, HW, lat, rng)
        if targets == [DELETE, DELETE]:
            seen.add("delete")
            continue
        seen.add("move")
        moves = np.array([lat.read_offset(t) for t in targets])
        refined = lat.move(lat.centre(cells, HW), moves, HW).reshape(4)
        iou = float(paired_box_iou(torch.tensor(refined[None]), torch.tensor(box[None]))[0])
        assert iou >= 0.5
    assert seen == {"move"}  # one-cell jitter on a 10 px box stays above tau = 0.5
    # a 2 px box off the integer lattice: the best corners reach IoU 2.25 / 5.75 < 0.5
    for _ in range(10):
        _, targets = box_corner_refinement(np.array([20.5, 20.5, 22.5, 22.5]), HW, lat, rng)
        assert targets == [DELETE, DELETE]


# ---------------------------------------------------------------- processor / codec
import torch  # noqa: E402
from conftest import make_dataset, tiny_model_cfg  # noqa: E402

from unigrounding.codecs.base import ModelView  # noqa: E402
from unigrounding.codecs.grid_offset.codec import GridOffsetCodec  # noqa: E402
from unigrounding.codecs.grid_offset.data import GridOffsetRefineDataset  # noqa: E402
from unigrounding.decoders import ColourRegionGrowing  # noqa: E402
from unigrounding.roundtrip import roundtrip  # noqa: E402


def _rec_sample(shapes_root, task="rec"):
    return make_dataset(shapes_root, task=task)[0]["data_samples"]


def test_box_is_two_corner_tokens_read_back_as_cell_centres(shapes_root):
    codec = GridOffsetCodec(n=32)
    sample = _rec_sample(shapes_root)
    target = sample.gt_refs.group(0)
    text = codec.processor.encode(target, sample, "target")
    assert text.count("<grid_") == 2 and "<off" not in text
    refs = codec.processor.parse(text, sample)
    assert refs.units == ["box"] and refs.metainfo["parse_failures"] == 0
    # a corner moves to its cell centre: at most half a cell (64 px / 32 / 2 = 1 input px)
    half_cell = sample.frame.boxes_to_original(np.array([0.0, 0.0, 1.0, 1.0]))[0]
    tol = float(half_cell[2] - half_cell[0]) + 1e-4
    assert torch.allclose(refs.boxes[0], target.boxes[0], atol=tol)


def test_malformed_and_off_lattice_tokens_are_parse_failures(shapes_root):
    proc = GridOffsetCodec(n=32).processor
    sample = _rec_sample(shapes_root)
    refs = proc.parse("<grid_40_1><grid_2_3>", sample)  # 40 is off a 32-grid: box incomplete
    assert len(refs) == 0 and refs.metainfo["parse_failures"] == 2
    refs = proc.parse("<grid_1_1><grid_2_3><grid_4_4>;<grid_3_3><grid_9_9>", sample)
    assert len(refs) == 1 and refs.metainfo["parse_failures"] == 1  # 3 tokens is no box
    assert len(proc.parse("<grid_><grid_1_1 <off_9_9> ;;", sample)) == 0


def test_offset_tokens_in_the_grid_answer_are_repairs(shapes_root):
    """The grid pass drops offset tokens and <delete>: an instance that held
    any is repaired (once), a part holding only them is one repair of the
    answer, and a part that fails anyway is a failure only."""
    proc = GridOffsetCodec(n=32).processor
    sample = _rec_sample(shapes_root)
    box = "<grid_10_10><grid_20_20>"

    def counts(text):
        refs = proc.parse(text, sample)
        return len(refs), refs.metainfo["parse_failures"], refs.metainfo["parse_repairs"]

    assert counts(box) == (1, 0, 0)
    assert counts("<grid_10_10><off_1_0><grid_20_20>") == (1, 0, 1)
    assert counts("<grid_10_10><off_1_0><delete><grid_20_20><off_9_9>") == (1, 0, 1)
    assert counts(f"{box};<off_0_0>") == (1, 0, 1)
    assert counts("<grid_2_2><grid_8_8><delete>;<off_0_0><delete>;" + box) == (2, 0, 2)
    assert counts("<off_0_0>") == (0, 0, 1)
    assert counts("<grid_40_1><grid_2_3><off_0_0>") == (0, 2, 0)  # off-lattice: box incomplete
    assert (
        proc.parse(box, sample).boxes.tolist()
        == proc.parse("<grid_10_10><off_1_0><grid_20_20>", sample).boxes.tolist()
    )


def _two_pass(codec, sample, first: str, second: str) -> ModelView:
    def generate(asks, new_conversation=False, rows=None, allowed_tokens=None):
        return ModelView([sample], [], None, None, None, texts=[second])

    return ModelView([sample], [], None, None, None, texts=[first], generate=generate)


@pytest.mark.parametrize(
    ("second", "repairs"),
    [
        ("<off_1_-1><off_-1_1>", 0),
        ("<delete><delete>", 0),  # Algorithm 1's answer for an unfixable box
        ("<delete><off_1_1>", 1),  # one corner deleted: the proposal stands
        ("<off_1_1>", 1),  # a missing move: stay
        ("<off_1_1><off_9_9>", 1),  # an unreadable offset: stay
        ("<off_1_1><off_1_1><off_0_0>", 1),  # a move for no grid token
        ("<off_1_1><off_9_9><off_0_0>", 2),
    ],
)
def test_refinement_answers_read_after_a_repair_are_counted(shapes_root, second, repairs):
    codec = GridOffsetCodec(n=32, m=64)
    sample = _rec_sample(shapes_root)
    refs = codec.decode(_two_pass(codec, sample, "<grid_10_10><grid_20_20>", second))[0]
    assert len(refs) == 1 and refs.metainfo["parse_failures"] == 0
    assert refs.metainfo["parse_repairs"] == repairs


def test_refinement_repairs_are_counted_per_instance(shapes_root):
    codec = GridOffsetCodec(n=32, m=64)
    sample = _rec_sample(shapes_root)
    first = "<grid_10_10><grid_20_20>;<grid_2_2><grid_8_8>"
    step = sample.frame.boxes_to_original(np.array([0.0, 0.0, 1.0, 1.0]))[0][2]  # 1 input px
    proposal = codec.processor.parse(first, sample).boxes
    # the second box gets one move for its two corners: missing, and half deleted
    refs = codec.decode(_two_pass(codec, sample, first, "<off_1_1><off_1_1><delete>"))[0]
    assert refs.metainfo["parse_repairs"] == 1 and refs.metainfo["parse_failures"] == 0
    assert torch.allclose(refs.boxes[0], proposal[0] + step, atol=1e-4)
    assert torch.allclose(refs.boxes[1], proposal[1])
    # a grid answer already repaired stays one repair of its instance
    stray = "<grid_10_10><off_0_0><grid_20_20>;<grid_2_2><grid_8_8>"
    refs = codec.decode(_two_pass(codec, sample, stray, "<off_0_0>"))[0]
    assert refs.metainfo["parse_repairs"] == 2  # first: stray token and missing move; second
    clean = codec.decode(_two_pass(codec, sample, first, "<off_0_0>" * 4))[0]
    assert clean.metainfo["parse_repairs"] == 0


def test_two_pass_decode_applies_offsets_and_keeps_a_deleted_box(shapes_root):
    codec = GridOffsetCodec(n=32, m=64)
    sample = _rec_sample(shapes_root)
    asked = []

    def view(second: str) -> ModelView:
        def generate(asks, new_conversation=False, rows=None, allowed_tokens=None):
            asked.append((asks, new_conversation, rows))
            assert set(allowed_tokens) == {*(offset_token(*m) for m in MOVES), DELETE}
            return ModelView([sample], [], None, None, None, texts=[second])

        return ModelView(
            [sample], [], None, None, None, texts=["<grid_10_10><grid_20_20>"], generate=generate
        )

    proposal = codec.processor.parse("<grid_10_10><grid_20_20>", sample).boxes[0]
    step = sample.frame.boxes_to_original(np.array([0.0, 0.0, 1.0, 1.0]))[0][2]  # 1 input px
    moved = codec.decode(view("<off_1_-1><off_-1_1>"))[0].boxes[0]
    expected = proposal + torch.tensor([step, -step, -step, step], dtype=torch.float32)
    assert torch.allclose(moved, expected, atol=1e-4)
    asks, new_conversation, rows = asked[0]
    assert new_conversation and rows == [0]
    assert asks[0].endswith("Refine: <grid_10_10><grid_20_20>")
    assert asks[0].startswith(sample.conversation[0]["text"])
    kept = codec.decode(view("<delete><off_1_1>"))[0].boxes[0]
    assert torch.allclose(kept, proposal)
    codec.refine = False
    asked.clear()
    assert torch.allclose(codec.decode(view("<off_1_1><off_1_1>"))[0].boxes[0], proposal)
    assert not asked


def test_offsets_raise_the_roundtrip_ceiling(shapes_root):
    samples = [s["data_samples"] for s in make_dataset(shapes_root)]
    codec = GridOffsetCodec(n=32, m=64)
    result = roundtrip(codec, _Tokens(), samples)
    assert result["box_iou_mean"] > result["first_pass_box_iou_mean"]
    assert result["tokens_per_object"] == 2
    codec.refine = False
    assert "first_pass_box_iou_mean" not in roundtrip(codec, _Tokens(), samples)


class _Tokens:
    """Counts ``<...>`` tokens, as a tokenizer holding the codec's tokens would."""

    def __call__(self, text, add_special_tokens=False):
        from types import SimpleNamespace

        return SimpleNamespace(input_ids=[0] * text.count("<"))


def test_mask_answer_is_points_and_decoder_gives_the_mask(shapes_root):
    codec = GridOffsetCodec(n=32)
    ds = make_dataset(shapes_root, task="res")
    item = ds[0]
    sample, image = item["data_samples"], item["inputs"]
    target = sample.gt_refs.group(0)
    text = codec.processor.encode(target, sample, "target")
    refs = codec.processor.parse(text, sample)
    assert refs.units == ["mask"] and len(refs.points[0]) == text.count("<grid_")
    gt = sample.frame.mask_to_input(target.masks[0]).numpy()
    xy = sample.frame.points_to_input(refs.points[0].numpy())
    assert points_in_mask(xy, gt).all()
    decoded = ColourRegionGrowing()(image, xy).numpy()
    inter, union = (decoded & gt).sum(), (decoded | gt).sum()
    assert inter / union > 0.8


def test_colour_region_growing_takes_the_seeded_region_only():
    image = torch.zeros(3, 16, 16, dtype=torch.uint8)
    image[0, 2:6, 2:6] = 200  # red square
    image[2, 9:14, 9:14] = 200  # blue square
    mask = ColourRegionGrowing()(image, np.array([[3.5, 3.5]]))
    assert mask.sum() == 16 and mask[2:6, 2:6].all()
    both = ColourRegionGrowing()(image, np.array([[3.5, 3.5], [10.2, 12.0], [99.0, 1.0]]))
    assert both.sum() == 16 + 25
    assert ColourRegionGrowing()(image, np.zeros((0, 2))).sum() == 0


def test_grid_embeddings_start_with_2d_topology():
    import types

    codec = GridOffsetCodec(n=8)
    tokens = codec.processor.special_tokens
    ids = {t: i for i, t in enumerate(tokens)}
    codec.tokenizer = types.SimpleNamespace(convert_tokens_to_ids=ids.__getitem__)
    emb = torch.nn.Embedding(len(tokens), 32)
    torch.nn.init.normal_(emb.weight, std=0.02)
    codec.init_token_embeddings(emb)
    w = emb.weight.detach()

    def vec(i, j):
        return w[ids[f"<grid_{i}_{j}>"]]

    near = torch.dist(vec(3, 3), vec(4, 3))
    far = torch.dist(vec(3, 3), vec(7, 0))
    assert near < far
    assert torch.allclose(w[ids["<grid_3_3>"]].pow(2).mean().sqrt(), torch.tensor(0.02), rtol=0.3)


def test_refine_dataset_serialises_algorithm_1(shapes_root):
    base = make_dataset(shapes_root, task="res")
    refine = GridOffsetRefineDataset(base, n=32, m=64, seed=3)
    lat = GridLattice(32, 64)
    seen_tasks = set()
    for k in range(len(refine)):
        sample = refine[k]["data_samples"]
        user, answer = (t["text"] for t in sample.conversation)
        grids = user.split("Refine: ")[1]
        targets = answer.replace(">", "> ").split()
        assert grids.count("<grid_") == len(targets) >= 2
        assert all(lat.read_offset(t) is not None or t == DELETE for t in targets)
        seen_tasks.add(sample.task)
        assert sample.conversation == refine[k]["data_samples"].conversation  # seeded
    assert seen_tasks == {"rec", "res"}


def test_refine_pass_is_constrained_to_moves_and_delete(rec_batch):
    """Untrained, the second pass may still only emit offsets, <delete>, EOS and
    the space the chat template writes before an answer (without it, a model
    trained on `` <off..>`` answers could only end at once)."""
    from unigrounding.codecs.grid_offset import DELETE, MOVES, offset_token
    from unigrounding.registry import MODELS

    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(type="grid_offset", n=8, m=16)).eval()
    with torch.no_grad():
        view = model.model_view(rec_batch["inputs"], rec_batch["data_samples"], train=False)
        model._generate(view)
        allowed = [*(offset_token(*m) for m in MOVES), DELETE]
        answer = model._follow_up(
            view, ["<image>\nRefine: <grid_1_1>"] * 4, new_conversation=True, allowed_tokens=allowed
        )
    tok = model.tokenizer
    ids = set(model._answer_ids(allowed).tolist())
    assert set(answer.generated_ids.flatten().tolist()) <= ids
    assert ids - set(tok.convert_tokens_to_ids(allowed)) - {tok.eos_token_id} <= {
        i for i in model.chat.answer_ids("<delete>") if not tok.convert_ids_to_tokens(i).strip("▁ ")
    }  # besides the moves: only the whitespace the template writes before them
    # every token of a refinement answer as it was written in training may be generated
    trained = model.chat.answer_ids("<off_1_0><delete><off_0_0>") + [tok.eos_token_id]
    assert set(trained) <= ids
    with pytest.raises(ValueError, match="not in the vocabulary"):
        model._follow_up(view, ["x"] * 4, allowed_tokens=["<no_such_token>"])
