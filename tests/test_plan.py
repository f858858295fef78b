"""``unigrounding plan``: parameter counts on the meta device, memory estimates."""

import json
from pathlib import Path

import pytest

import unigrounding as ug
from unigrounding.cli.main import main
from unigrounding.engine.plan import plan
from unigrounding.miniatures import qwen2_folder

CONFIGS = Path(ug.__file__).resolve().parent / "configs"

#: Vicuna-7B v1.5 (Llama-2-7B's architecture) behind CLIP ViT-L/14-336, as in LLaVA-1.5
LLAVA_7B = """
_base_ = [{base!r}]
image_size = 336
model = dict(
    image_size=image_size,
    vision=dict(model_name="vit_large_patch14_clip_336", checkpoint="/models/clip-l-336.safetensors"),
    llm=dict(pretrained="/models/vicuna-7b-v1.5", config=dict(
        model_type="llama", vocab_size=32000, hidden_size=4096, intermediate_size=11008,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
        max_position_embeddings=4096)),
    referent_flag_weight=0.0, image_placement="as_written", projector=dict(merge=1),
    {extra}
)
train_dataloader = dict(batch_size=16)
"""


def recipe(tmp_path, extra: str = "") -> Path:
    path = tmp_path / "llava_7b.py"
    path.write_text(
        LLAVA_7B.format(base=str(CONFIGS / "text_coords/rec_shapesref.py"), extra=extra)
    )
    return path


def test_plan_counts_the_published_sizes_without_any_weights(tmp_path):
    out = plan(recipe(tmp_path), gpus=8)
    assert round(out["params"]["llm"] / 1e9, 2) == 6.74  # Vicuna-7B
    assert round(out["params"]["vision"] / 1e9, 2) == 0.30  # CLIP ViT-L/14
    assert out["params"]["projector"] > 0 and out["params"]["codec"] == 0  # text_coords
    assert out["trainable_total"] == out["params_total"]
    # full fine-tuning under DDP: 16 bytes per parameter before activations (> 80 GB)
    assert out["memory_breakdown_gib"]["weights_gradients_optimizer"] > 80
    ddp_state = out["memory_breakdown_gib"]["weights_gradients_optimizer"]
    sharded = plan(recipe(tmp_path), gpus=8, strategy="fsdp")
    assert sharded["memory_breakdown_gib"]["weights_gradients_optimizer"] < ddp_state / 3
    assert sharded["memory_per_gpu_gib"] < out["memory_per_gpu_gib"]
    # DeepSpeed keeps bf16 weights (fp32 master copies partitioned): ZeRO-3 below
    # FSDP under autocast and below ZeRO-2 (whose weights are replicated)
    zero = {}
    for stage in (2, 3):
        path = recipe(tmp_path, extra="")
        path.write_text(path.read_text() + f"deepspeed = dict(zero_stage={stage})\n")
        zero[stage] = plan(path, gpus=8, strategy="deepspeed")
        assert zero[stage]["zero_stage"] == stage
    state = {k: v["memory_breakdown_gib"]["weights_gradients_optimizer"] for k, v in zero.items()}
    assert state[3] < min(sharded["memory_breakdown_gib"]["weights_gradients_optimizer"], state[2])
    assert state[2] < ddp_state / 3


def test_plan_follows_frozen_modules_and_checkpointing(tmp_path):
    frozen = plan(recipe(tmp_path, 'frozen=("llm.*", "vision.*"), gradient_checkpointing=True,'))
    full = plan(recipe(tmp_path))
    learning = {n for n, count in frozen["trainable"].items() if count}
    assert learning == {"projector"}  # LLaVA-style alignment
    assert frozen["memory_per_gpu_gib"] < full["memory_per_gpu_gib"] / 3
    assert (
        frozen["memory_breakdown_gib"]["activations"] < full["memory_breakdown_gib"]["activations"]
    )


def test_plan_reads_a_local_folder_like_training_does(tmp_path, capsys):
    folder = qwen2_folder(tmp_path / "qwen2")
    cfg = tmp_path / "qwen.py"
    base = str(CONFIGS / "text_coords/rec_shapesref.py")
    cfg.write_text(f"_base_ = [{base!r}]\nmodel = dict(llm=dict(pretrained={str(folder)!r}))\n")
    main(["plan", str(cfg), "--gpus", "2", "--strategy", "fsdp"])
    out = json.loads(capsys.readouterr().out)
    built = ug.build(cfg).model
    assert out["params"]["llm"] == sum(p.numel() for p in built.llm.parameters())
    assert out["params_total"] == sum(p.numel() for p in built.parameters())
    with pytest.raises(ValueError, match="architecture"):
        missing = tmp_path / "missing.py"
        missing.write_text(
            f"_base_ = [{base!r}]\nmodel = dict(llm=dict(_delete_=True, pretrained='/no/such'))\n"
        )
        plan(missing)


@pytest.mark.parametrize(
    "precision, checkpointing", [("fp32", False), ("bf16", False), ("fp32", True)]
)
def test_memory_estimate_is_within_15_percent_of_a_measured_training_step(
    shapes_root, tmp_path, precision, checkpointing
):
    """A model whose memory is the LLM's (4 layers of width 256, the tower
    frozen), one training step on CPU after a first one created the
    optimizer state: the peak of live tensors against ``plan``'s estimate
    for the same batch and sequence length."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    from peak_memory import PeakMemory
    from test_training import tiny_train_cfg

    cfg = tiny_train_cfg(shapes_root, tmp_path / "work", 2, 2, 2)
    cfg.optim_wrapper.optimizer.fused = False
    cfg.train_dataloader.batch_size = 8
    cfg.model.llm.config.update(
        hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4,
    )  # fmt: skip
    cfg.model.update(frozen=("vision.*",), precision=precision)
    cfg.model.gradient_checkpointing = checkpointing
    cfg.dump(str(tmp_path / "cfg.py"))
    runner = Runner.from_cfg(cfg)
    model = runner.model
    with DefaultScope.overwrite_default_scope("unigrounding"):
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
    batch = next(iter(runner.build_dataloader(cfg.train_dataloader)))
    model.train_step(batch, optim)
    state = [v for s in optim.optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    with PeakMemory(*model.parameters(), *model.buffers(), *state) as memory:
        model.train_step(batch, optim)
    data = model.data_preprocessor(batch, True)
    sequence = model.model_view(data["inputs"], data["data_samples"], train=True).input_ids.shape[1]
    estimate = plan(tmp_path / "cfg.py", text_tokens=sequence - model.num_image_tokens)
    measured_gib = memory.peak / 2**30
    print(f"{precision} checkpointing={checkpointing}: estimate "
          f"{estimate['memory_per_gpu_gib']:.4f} GiB, measured {measured_gib:.4f} GiB")  # fmt: skip
    assert estimate["memory_per_gpu_gib"] == pytest.approx(measured_gib, rel=0.15)


def test_plan_counts_llava_1_5_7b_as_published():
    """llava-hf/llava-1.5-7b-hf: 7,063,427,072 parameters = Vicuna-7B with
    32064 embedding rows (6,738,415,616 + 64 x 4096 x 2 = 6,738,939,904),
    the CLIP ViT-L/14-336 vision model (303,507,456) and the projector
    (1024 x 4096 + 4096 + 4096 x 4096 + 4096 = 20,979,712)."""
    from unigrounding.ablate.presets import config_dir

    out = plan(config_dir() / "text_coords" / "llava_1_5_7b_rec.py", gpus=8)
    assert out["params"] == {
        "codec": 0,
        "llm": 6_738_939_904,
        "vision": 303_507_456,
        "projector": 20_979_712,
    }
    assert out["params_total"] == 7_063_427_072
    assert out["trainable_total"] == 6_738_939_904 + 20_979_712  # the tower is frozen
    assert out["assumptions"]["image_tokens"] == 576  # 24 x 24 patches of 14 px at 336


def test_plan_counts_qwen2_5_vl_7b_as_published():
    """GETok's backbone, Qwen/Qwen2.5-VL-7B-Instruct: 8,292,166,656
    parameters = Qwen2.5-7B (7,615,616,512, untied 152064-row embeddings)
    + the vision encoder with its merger (676,550,144); the recipe adds
    LoRA rank 64 and reads an 840 px square as 30 x 30 merged tokens."""
    from unigrounding.ablate.presets import config_dir

    out = plan(config_dir() / "grid_offset" / "getok_7b_sft.py", gpus=8)
    assert out["llm_params_as_published"] == 7_615_616_512
    assert out["params"]["vision"] == 676_550_144 and out["params"]["projector"] == 0
    assert out["llm_params_as_published"] + out["params"]["vision"] == 8_292_166_656
    assert out["assumptions"]["image_tokens"] == 900


def test_plan_reads_a_local_vlm_folder_and_counts_the_built_model(tmp_path):
    from unigrounding.miniatures import llava_folder
    from unigrounding.registry import MODELS

    folder = llava_folder(tmp_path / "llava")
    model_cfg = dict(
        type="GroundingMLLM", codec=dict(type="text_coords"), vlm=dict(pretrained=str(folder))
    )
    path = tmp_path / "llava_tiny.py"
    path.write_text(f"model = {model_cfg!r}\n")
    built = MODELS.build(model_cfg)
    out = plan(path, gpus=1)
    for name in ("llm", "vision", "projector"):
        assert out["params"][name] == sum(p.numel() for p in getattr(built, name).parameters())
