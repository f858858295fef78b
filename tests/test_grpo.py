"""The GRPO stage: its objective against hand-computed values, sampling and
answer log-probabilities on the tiny model, and a tiny run through mmengine
whose reward rises, exports its policy and resumes exactly."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_dataset, tiny_model_cfg
from mmengine.config import Config
from safetensors.torch import load_file
from test_training import Interrupted, tiny_train_cfg

from unigrounding.data import collate
from unigrounding.engine.export import export_model
from unigrounding.engine.runner import train
from unigrounding.models.generation import answer_mask
from unigrounding.registry import MODELS, REWARDS
from unigrounding.rl import group_advantages, grpo_objective, kl_to_reference
from unigrounding.structures import GroundingDataSample, RefTargets


@REWARDS.register_module(force=True)
class DigitShare:
    """A reward an untrained model can learn in a few steps: the share of
    digits in its answer (text_coords' answers are mostly digits)."""

    name = "digits"

    def __call__(self, sample) -> float:
        text = sample.metainfo["pred_text"]
        return sum(c.isdigit() for c in text) / max(len(text), 1)


def test_group_advantages_hand_computed():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0])
    # group 1: mean 0.25, sample std sqrt((0.75^2 + 3 * 0.25^2) / 3) = 0.5
    want = [0.75 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, 0, 0, 0, 0]
    assert group_advantages(rewards, 4).tolist() == pytest.approx(want, abs=1e-6)
    with pytest.raises(ValueError, match="multiple of the group size 3"):
        group_advantages(rewards, 3)


def test_kl_to_reference_hand_computed():
    logp, ref = torch.log(torch.tensor([0.5, 0.3])), torch.log(torch.tensor([0.25, 0.3]))
    # r = 0.25 / 0.5: r - log r - 1
    assert kl_to_reference(logp, ref).tolist() == pytest.approx([0.5 + math.log(2) - 1, 0.0])


def test_grpo_objective_hand_computed():
    logp = torch.log(torch.tensor([[0.6, 0.5], [0.2, 0.5]])).requires_grad_(True)
    old = torch.log(torch.tensor([[0.4, 0.5], [0.4, 0.5]]))  # ratios [1.5, 1], [0.5, 1]
    adv = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[True, True], [True, False]])
    out = grpo_objective(logp, old, logp.detach(), adv, mask, clip=0.2, kl_coef=0.1)
    # answer 1: min(1.5, 1.2) = 1.2 and 1 -> -(1.2 + 1) / 2; answer 2 (one token):
    # min(-0.5, -0.8) = -0.8 -> 0.8; no KL to a reference equal to the policy
    assert out["loss"].item() == pytest.approx((-1.1 + 0.8) / 2)
    assert out["clipped"].item() == pytest.approx(2 / 3) and out["kl"].item() == 0
    out["loss"].backward()
    # clipped tokens pass no gradient; unclipped ones -A / (answers * length)
    assert logp.grad.flatten().tolist() == pytest.approx([0.0, -1.0 / 4, 0.0, 0.0])
    ref = torch.log(torch.tensor([[0.3, 0.5], [0.2, 0.25]]))
    with_kl = grpo_objective(logp, logp.detach(), ref, torch.zeros(2), mask, kl_coef=0.1)
    kl = 0.5 + math.log(2) - 1  # the first token only; the last is masked out
    assert with_kl["loss"].item() == pytest.approx(0.1 * kl / 2 / 2)
    assert with_kl["kl"].item() == pytest.approx(kl / 3)


def test_answer_mask_ends_at_the_first_stop():
    ids = torch.tensor([[5, 9, 3, 9], [5, 5, 5, 5], [7, 7, 8, 0]])
    assert answer_mask(ids, [9, 8]).tolist() == [
        [True, True, False, False],
        [True, True, True, True],
        [True, True, True, False],
    ]


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    torch.manual_seed(0)
    cfg = dict(tiny_model_cfg(type="text_coords"), max_new_tokens=8)
    out = tmp_path_factory.mktemp("sft") / "export"
    return export_model(MODELS.build(cfg), {"model": cfg}, out)


def test_answer_logprobs_of_a_row_do_not_depend_on_its_batch(tiny_export, shapes_root):
    """Left-padded prompts of different lengths: each row's answer scores as
    it does alone, and the sampled tokens are the likely ones."""
    import unigrounding as ug

    model = ug.load(tiny_export).model.eval()
    ds = make_dataset(shapes_root)
    rows = [ds[i] for i in range(3)]
    lengths = {len(r["data_samples"].conversation[0]["text"]) for r in rows}
    assert len(lengths) > 1  # the prompts pad differently
    batch = collate(rows)
    torch.manual_seed(1)
    rollout = model.sample(batch["inputs"], batch["data_samples"], num_samples=2)
    answered, ids = rollout.samples, rollout.answer_ids
    assert len(answered) == 6 and ids.shape[0] == 6 and rollout.allowed is None
    assert answered[0].metainfo["sample_id"] == answered[1].metainfo["sample_id"]
    assert not (ids == model.image_token_id).any()
    images = batch["inputs"].repeat_interleave(2, 0)
    together = model.answer_logprobs(images, answered, ids)
    mask = rollout.mask
    assert torch.equal(mask, answer_mask(ids, model.chat.stop_ids))
    for row in range(6):
        alone = model.answer_logprobs(
            images[row : row + 1], answered[row : row + 1], ids[row : row + 1]
        )
        torch.testing.assert_close(together[row][mask[row]], alone[0][mask[row]], atol=1e-5, rtol=0)
    # at temperature 1 a sampled token is likelier than a uniform guess
    assert together[mask].mean() > -math.log(model.llm.config.vocab_size)
    with pytest.raises(ValueError, match="temperature > 0"):
        model.sample(batch["inputs"], batch["data_samples"], num_samples=2, temperature=0.0)


def grpo_cfg(export, shapes_root, work_dir, iters: int) -> Config:
    cfg = tiny_train_cfg(shapes_root, work_dir, iters, iters, 2)
    cfg.model = dict(
        type="GRPOPolicy",
        policy=str(export),
        rewards=[dict(type="DigitShare"), dict(type="AnswerFormatReward", weight=0.0)],
        num_samples=8,
        kl_coef=0.0,
    )
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.dataset.turns_per_sample = 1
    cfg.optim_wrapper.optimizer.lr = 1e-2
    cfg.param_scheduler = []
    cfg.log_processor = dict(by_epoch=False, window_size=1)  # each iteration's own values
    return cfg


def test_grpo_run_raises_its_reward_and_exports_the_policy(tiny_export, shapes_root, tmp_path):
    import json

    import unigrounding as ug

    work = tmp_path / "grpo"
    runner = train(grpo_cfg(tiny_export, shapes_root, work, 20))
    (scalars,) = work.glob("*/vis_data/scalars.json")
    logged = [json.loads(line) for line in scalars.read_text().splitlines()]
    rewards = [line["reward_digits"] for line in logged if "reward_digits" in line]
    assert len(rewards) == 20
    # this setting outside mmengine, three seeds: 0.03-0.06 over the first four, 0.91-0.97 over the last
    first, last = sum(rewards[:4]) / 4, sum(rewards[-4:]) / 4
    assert last > first + 0.3, rewards
    # the export is the trained policy; the reference stayed the start
    trained, start = ug.load(work / "export").model, ug.load(tiny_export).model
    reference = runner.model.reference
    key = "llm.model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(trained.state_dict()[key], start.state_dict()[key])
    torch.testing.assert_close(reference.state_dict()[key], start.state_dict()[key])
    torch.testing.assert_close(trained.state_dict()[key], runner.model.policy.state_dict()[key])


def test_grpo_resumes_exactly(tiny_export, shapes_root, tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train(grpo_cfg(tiny_export, shapes_root, straight, 4))
    cfg = grpo_cfg(tiny_export, shapes_root, interrupted, 4)
    cfg.custom_hooks = [*cfg.custom_hooks, dict(type="InterruptAfter", n=2)]
    with pytest.raises(Interrupted):
        train(cfg)
    # the checkpoint holds the policy; the reference is rebuilt from the export
    saved = torch.load(
        (interrupted / "last_checkpoint").read_text().strip(),
        map_location="cpu",
        weights_only=True,
    )["state_dict"]
    assert any(k.startswith("policy.") for k in saved)
    assert not any(k.startswith("reference.") for k in saved)
    train(grpo_cfg(tiny_export, shapes_root, interrupted, 4), resume=True)
    a, b = (
        {
            **load_file(str(w / "export" / "model.safetensors")),
            **load_file(str(w / "export" / "llm" / "model.safetensors")),
        }
        for w in (straight, interrupted)
    )
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_grpo_refuses_a_latent_codec_and_a_group_of_one(tmp_path):
    cfg = tiny_model_cfg(type="gnd_query")
    export = export_model(MODELS.build(cfg), {"model": cfg}, tmp_path / "gnd")
    with pytest.raises(ValueError, match="not 'vocab'"):
        MODELS.build(
            dict(type="GRPOPolicy", policy=str(export), rewards=[dict(type="BoxIoUReward")])
        )
    with pytest.raises(ValueError, match="num_samples >= 2"):
        MODELS.build(dict(type="GRPOPolicy", policy=str(export), rewards=[{}], num_samples=1))


def test_box_refinement_reward_is_the_iou_gain_over_the_first_answer():
    from unigrounding.rl.rewards import BoxRefinementReward

    sample = GroundingDataSample(metainfo={"sample_id": "s1"})
    sample.gt_refs = RefTargets.build([[0, 0, 10, 20]])
    sample.pred_refs = RefTargets.build([[0, 0, 10, 20]])  # IoU 1
    with pytest.raises(KeyError, match="sample s1: BoxRefinementReward .* follow_up=True"):
        BoxRefinementReward()(sample)
    sample.set_metainfo({"first_pass_refs": RefTargets.build([[0, 0, 10, 10]])})  # IoU 0.5
    assert BoxRefinementReward()(sample) == pytest.approx(0.5)
    sample.pred_refs = RefTargets.build([[0, 0, 10, 5]])  # IoU 0.25: the pass hurt
    assert BoxRefinementReward()(sample) == pytest.approx(-0.25)


PROPOSAL = ("<grid_2_3>", "<grid_5_6>")


def propose_always(model) -> None:
    """Make an untrained grid_offset model's next greedy answer the box
    ``PROPOSAL`` (with max_new_tokens 2): the LM head's first two calls (the
    prompt's, then the next step's) put +100 on its tokens in turn; later
    ones are left alone, so the refinement pass samples from the model."""
    head = model.llm.get_output_embeddings()
    steps = list(model.tokenizer.convert_tokens_to_ids(list(PROPOSAL)))

    def steer(module, args, out):
        if not steps:
            return out
        bias = torch.zeros(out.shape[-1])
        bias[steps.pop(0)] = 100.0
        return out + bias

    head.register_forward_hook(steer)


@pytest.fixture(scope="module")
def grid_export(tmp_path_factory):
    torch.manual_seed(0)
    cfg = dict(tiny_model_cfg(type="grid_offset", n=8, m=16), max_new_tokens=2)
    out = tmp_path_factory.mktemp("sft_grid") / "export"
    return export_model(MODELS.build(cfg), {"model": cfg}, out)


def test_follow_up_rollout_samples_refinements_of_one_shared_proposal(grid_export, rec_batch):
    import unigrounding as ug
    from unigrounding.codecs.grid_offset.codec import REFINE_TEMPLATE

    model = ug.load(grid_export).model.eval()
    propose_always(model)
    torch.manual_seed(0)
    rollout = model.sample(rec_batch["inputs"], rec_batch["data_samples"], 3, follow_up=True)
    assert len(rollout.samples) == 12 and rollout.mask.any(dim=1).all()
    for k, sample in enumerate(rollout.samples):
        question = rec_batch["data_samples"][k // 3].conversation[0]["text"]
        want = REFINE_TEMPLATE.format(question=question, proposal="".join(PROPOSAL))
        assert sample.conversation[0] == {"role": "user", "text": want}
        first = sample.metainfo["first_pass_refs"].boxes
        torch.testing.assert_close(
            first, rollout.samples[k // 3 * 3].metainfo["first_pass_refs"].boxes
        )
    chosen = rollout.answer_ids[rollout.mask]
    assert set(chosen.tolist()) <= set(rollout.allowed.tolist())
    # the copies of a question refine it differently (sampled), so their boxes differ
    boxes = torch.stack([s.pred_refs.boxes[0] for s in rollout.samples]).view(4, 3, 4)
    assert (boxes != boxes[:, :1]).any()
    images = rec_batch["inputs"].repeat_interleave(3, 0)
    args = (images, rollout.samples, rollout.answer_ids, 1.0)
    constrained = model.answer_logprobs(*args, rollout.allowed)[rollout.mask]
    free = model.answer_logprobs(*args)[rollout.mask]
    # renormalised over the moves, each chosen token is likelier than over the vocabulary
    assert torch.isfinite(constrained).all() and (constrained > free).all()
    assert (constrained <= 0).all()


def test_offset_stage_update_moves_the_policy_on_refinements_only(grid_export, rec_batch):
    from mmengine.optim import OptimWrapper

    torch.manual_seed(0)
    stage = MODELS.build(
        dict(
            type="GRPOPolicy",
            policy=str(grid_export),
            rewards=[dict(type="BoxRefinementReward"), dict(type="AnswerFormatReward", weight=0.5)],
            num_samples=4,
            follow_up=True,
        )
    )
    propose_always(stage.policy)
    before = {k: v.clone() for k, v in stage.policy.state_dict().items()}
    params = [p for p in stage.parameters() if p.requires_grad]
    wrapper = OptimWrapper(torch.optim.SGD(params, lr=1.0))
    log = stage.train_step(dict(rec_batch), wrapper)
    assert torch.isfinite(log["loss"]) and "reward_box_gain" in log
    # refinement answers of 1-2 tokens: the moves (and the end) were scored
    assert 1 <= log["answer_tokens"] <= 3
    key = "llm.model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(stage.policy.state_dict()[key], before[key])
    torch.testing.assert_close(stage.reference.state_dict()[key], before[key])
