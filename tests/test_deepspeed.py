"""DeepSpeed ZeRO: the translation of a run's config into DeepSpeed's, the
strategy's selection, and (where DeepSpeed is installed) training on 2 CPU
processes with gloo — DDP's loss curve, exact resume, an export that loads."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from mmengine.config import Config
from safetensors.torch import load_file
from test_fsdp import losses, torchrun
from test_training import tiny_train_cfg

from unigrounding.engine.deepspeed import deepspeed_config
from unigrounding.engine.runner import _apply_strategy


def run_cfg(**overrides) -> Config:
    cfg = Config(
        dict(
            model=dict(type="GroundingMLLM", precision="bf16"),
            train_dataloader=dict(batch_size=4),
            optim_wrapper=dict(optimizer=dict(type="AdamW", lr=1e-4), clip_grad=dict(max_norm=1.0)),
        )
    )
    cfg.merge_from_dict(overrides)
    return cfg


def test_translation_of_batch_accumulation_clipping_precision_and_stage():
    cfg = run_cfg(**{"optim_wrapper.accumulative_counts": 8, "deepspeed": dict(zero_stage=3)})
    ds = deepspeed_config(cfg)
    assert ds["train_micro_batch_size_per_gpu"] == 4
    assert ds["gradient_accumulation_steps"] == 8
    assert ds["gradient_clipping"] == 1.0
    assert ds["bf16"] == {"enabled": True} and "fp16" not in ds
    assert ds["zero_optimization"] == {"stage": 3}


def test_default_stage_is_two_and_fp32_sets_no_half_precision():
    ds = deepspeed_config(run_cfg(**{"model.precision": "fp32"}))
    assert ds["zero_optimization"]["stage"] == 2
    assert "bf16" not in ds and "fp16" not in ds
    assert ds["gradient_accumulation_steps"] == 1


def test_auto_precision_is_bf16_only_on_cuda():
    ds = deepspeed_config(run_cfg(**{"model.precision": "auto"}))
    assert ("bf16" in ds) == torch.cuda.is_available()


def test_fp16_gets_loss_scaling_dynamic_or_the_wrappers_static_scale():
    ds = deepspeed_config(run_cfg(**{"model.precision": "fp16"}))
    assert ds["fp16"] == {"enabled": True, "loss_scale": 0}  # 0: DeepSpeed's dynamic scaling
    static = run_cfg(**{"model.precision": "fp16", "optim_wrapper.loss_scale": 512})
    assert deepspeed_config(static)["fp16"]["loss_scale"] == 512


def test_raw_deepspeed_keys_merge_last_into_the_derived_ones():
    offload = {"offload_optimizer": {"device": "cpu"}}
    cfg = run_cfg(deepspeed=dict(zero_stage=3, config=dict(zero_optimization=offload, x=1)))
    ds = deepspeed_config(cfg)
    assert ds["zero_optimization"] == {"stage": 3, **offload}
    assert ds["x"] == 1
    # repeating a derived key with the same value is fine
    same = run_cfg(deepspeed=dict(config=dict(train_micro_batch_size_per_gpu=4)))
    assert deepspeed_config(same)["train_micro_batch_size_per_gpu"] == 4


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"deepspeed": dict(zero_stage=4)}, "zero_stage must be one of"),
        ({"deepspeed": dict(stage=3)}, "unknown option"),
        ({"optim_wrapper.clip_grad": dict(max_norm=1.0, norm_type="inf")}, "L2"),
        (
            {"deepspeed": dict(config=dict(gradient_accumulation_steps=2))},
            "accumulative_counts",
        ),
        (
            {"deepspeed": dict(config=dict(train_micro_batch_size_per_gpu=8))},
            "train_dataloader.batch_size",
        ),
    ],
)
def test_contradicting_or_unknown_settings_are_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        deepspeed_config(run_cfg(**overrides))


def test_strategy_selects_deepspeeds_runner_and_wrapper():
    cfg = run_cfg(deepspeed=dict(zero_stage=3))
    _apply_strategy(cfg, "deepspeed", "pytorch")
    assert cfg.runner_type == "DeepSpeedRunner"
    assert cfg.model_wrapper_cfg.type == "DeepSpeedModel"
    assert cfg.model_wrapper_cfg.config == deepspeed_config(cfg)
    with pytest.raises(ValueError, match="torchrun"):
        _apply_strategy(run_cfg(), "deepspeed", "none")


needs_deepspeed = pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None, reason="DeepSpeed not installed"
)


@pytest.fixture(scope="module")
def config(shapes_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deepspeed")
    cfg = tiny_train_cfg(shapes_root, tmp / "unused", 6, 6, 3)
    cfg.optim_wrapper.optimizer.fused = False
    path = tmp / "cfg.py"
    cfg.dump(str(path))
    # the same run, killed during iteration 5 (after the checkpoint of 3)
    cfg.custom_imports = dict(imports=["test_training"], allow_failed_imports=False)
    cfg.custom_hooks = [*cfg.custom_hooks, dict(type="InterruptAfter", n=5)]
    cfg.dump(str(tmp / "killed.py"))
    return path


@pytest.mark.slow
@needs_deepspeed
def test_zero2_follows_ddp_resumes_exactly_and_exports(config, tmp_path):
    import unigrounding as ug

    torchrun(config, tmp_path / "ddp", "--strategy", "ddp")
    torchrun(config, tmp_path / "zero", "--strategy", "deepspeed")
    ddp, zero = losses(tmp_path / "ddp"), losses(tmp_path / "zero")
    assert len(ddp) == len(zero) == 6
    for a, b in zip(ddp, zero, strict=True):
        assert abs(a - b) <= 0.02 * abs(a), (ddp, zero)
    # every rank wrote its optimizer partition
    shards = tmp_path / "zero" / "iter_3.pth.shards" / "state"
    assert len(list(shards.glob("*optim_states.pt"))) == 2
    torchrun(config.parent / "killed.py", tmp_path / "part", "--strategy", "deepspeed", ok=False)
    torchrun(config, tmp_path / "part", "--strategy", "deepspeed", "--resume")
    once = load_file(str(tmp_path / "zero" / "export" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "part" / "export" / "model.safetensors"))
    assert once.keys() == resumed.keys()
    for key in once:
        torch.testing.assert_close(resumed[key], once[key], rtol=0, atol=1e-6, msg=key)
    assert losses(tmp_path / "part")[-3:] == pytest.approx(zero[-3:], rel=1e-6)
    model = ug.load(tmp_path / "zero" / "export")
    assert isinstance(
        model.ground(torch.zeros(64, 64, 3, dtype=torch.uint8).numpy(), "x"), ug.RefTargets
    )


@pytest.mark.slow
@needs_deepspeed
def test_zero3_partitions_parameters_and_follows_ddp(config, tmp_path):
    zero3 = config.parent / "zero3.py"
    cfg = Config.fromfile(str(config))
    cfg.deepspeed = dict(zero_stage=3)
    cfg.dump(str(zero3))
    torchrun(config, tmp_path / "ddp", "--strategy", "ddp")
    torchrun(zero3, tmp_path / "zero3", "--strategy", "deepspeed")
    ddp, zero = losses(tmp_path / "ddp"), losses(tmp_path / "zero3")
    assert len(zero) == 6
    for a, b in zip(ddp, zero, strict=True):
        assert abs(a - b) <= 0.02 * abs(a), (ddp, zero)
    full = load_file(str(tmp_path / "ddp" / "export" / "model.safetensors"))
    gathered = load_file(str(tmp_path / "zero3" / "export" / "model.safetensors"))
    assert {k: v.shape for k, v in gathered.items()} == {k: v.shape for k, v in full.items()}
