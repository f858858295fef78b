"""Precision and memory settings: autocast dtype, gradient checkpointing."""

import pytest
import torch
from conftest import tiny_model_cfg

from unigrounding.models import VisionTower
from unigrounding.registry import MODELS


def _loss(model, batch) -> torch.Tensor:
    losses = model(batch["inputs"], batch["data_samples"], mode="loss")
    return sum(v for k, v in losses.items() if k.startswith("loss"))


def test_bf16_autocast_on_cpu_keeps_fp32_master_weights(rec_batch):
    torch.manual_seed(0)
    model = MODELS.build({**tiny_model_cfg(), "precision": "bf16"})
    seen = []
    layer = model.llm.model.layers[0].mlp.down_proj
    layer.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    loss = _loss(model, rec_batch)
    loss.backward()
    assert seen == [torch.bfloat16] and torch.isfinite(loss)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert layer.weight.grad.dtype == torch.float32
    fp32 = MODELS.build({**tiny_model_cfg(), "precision": "fp32"})
    seen.clear()
    fp32.llm.model.layers[0].mlp.down_proj.register_forward_hook(
        lambda mod, inp, out: seen.append(out.dtype)
    )
    _loss(fp32, rec_batch)
    assert seen == [torch.float32]
    with pytest.raises(ValueError, match="precision must be one of"):
        MODELS.build({**tiny_model_cfg(), "precision": "int8"})


def test_gradient_checkpointing_gives_the_same_gradients(rec_batch):
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = MODELS.build({**tiny_model_cfg(), "gradient_checkpointing": checkpointing})
        model.train()
        _loss(model, rec_batch).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], msg=name)


def test_a_vit_towers_checkpointing_reaches_its_blocks():
    """timm's ViT feature wrapper has no switch of its own."""
    torch.manual_seed(0)
    tower = VisionTower(
        "vit_base_patch16_clip_224", model_kwargs=dict(depth=3, embed_dim=32, num_heads=2)
    )
    tower.set_grad_checkpointing(True)
    assert tower.backbone.model.grad_checkpointing
    images = torch.randint(0, 255, (2, 3, 224, 224), dtype=torch.uint8)
    calls = []
    block = tower.backbone.model.blocks[-1]
    block.register_forward_pre_hook(lambda *_: calls.append(1))
    sum(f.sum() for f in tower(images)).backward()
    assert len(calls) == 2  # forward, then recomputed in backward (which may stop early)
