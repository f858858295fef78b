"""DeepSpeed ZeRO: the translation of a run's config into DeepSpeed's and
the strategy's selection (no DeepSpeed needed; training under it is in
test_sharded_training.py)."""

from __future__ import annotations

import pytest
import torch
from mmengine.config import Config

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


def test_the_cli_offers_every_strategy_the_runner_knows():
    from unigrounding.cli.main import STRATEGY_CHOICES
    from unigrounding.engine.runner import STRATEGIES

    assert STRATEGY_CHOICES == STRATEGIES
