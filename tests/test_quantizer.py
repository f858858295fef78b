"""ClawMachine's visual tokenizer (LaVIT-style VQ layer) and its stage."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_MODEL

from unigrounding.codecs.token_collective import CodebookUsage, VisualQuantizer


def test_nearest_code_is_the_most_cosine_similar_entry():
    q = VisualQuantizer(in_dim=4, codebook_size=3, code_dim=2)
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]]))
    z = torch.tensor([[0.9, 0.1], [0.1, 0.2], [-0.5, -0.4], [0.3, -0.9]])
    # cosine, not dot product: entry 1's length 2 does not win by size
    assert q.nearest(F.normalize(z, dim=-1)).tolist() == [0, 1, 2, 2]


def test_straight_through_trains_encoder_and_losses_point_the_right_way():
    torch.manual_seed(0)
    q = VisualQuantizer(in_dim=8, codebook_size=16, code_dim=4)
    feats = torch.randn(64, 8)
    losses = q.loss(feats)
    assert bool(q.seeded)  # the codebook was seeded from the batch
    sum(losses.values()).backward()
    assert q.encoder[0].weight.grad.abs().sum() > 0  # through the straight-through estimator
    assert q.codebook.grad.abs().sum() > 0  # the codebook loss moves the entries
    assert q.decoder[0].weight.grad.abs().sum() > 0
    # the commitment term is beta times the codebook term (same distance)
    assert losses["loss_commitment"].item() == pytest.approx(0.25 * losses["loss_codebook"].item())


def test_training_lowers_reconstruction_and_uses_many_codes():
    torch.manual_seed(0)
    centres = torch.randn(8, 6)
    feats = centres[torch.randint(8, (512,))] + 0.05 * torch.randn(512, 6)
    q = VisualQuantizer(in_dim=6, codebook_size=32, code_dim=4)
    opt = torch.optim.Adam(q.parameters(), lr=1e-2)
    first = None
    for _ in range(200):
        losses = q.loss(feats)
        first = first if first is not None else losses["loss_reconstruction"].item()
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    assert losses["loss_reconstruction"].item() < 0.2 * first
    # no collapse: the 8 clusters keep (almost) distinct codes (VQ does not promise all 8)
    assert len(q.encode(centres).unique()) >= 6


def test_codebook_usage_hand_computed():
    metric = CodebookUsage(codebook_size=8)
    metric.process({}, [{"codes": [0, 0, 1, 1], "reconstruction_cos": 0.5}])
    metric.process({}, [{"codes": [2, 2, 2, 2], "reconstruction_cos": 1.0}])
    out = metric.compute_metrics(metric.results)
    p = np.array([2, 2, 4]) / 8
    assert out["usage"] == pytest.approx(3 / 8)
    assert out["perplexity"] == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert out["reconstruction_cos"] == pytest.approx(0.75)


def test_quantizer_stage_freezes_the_tower_and_names_the_codec_quantizer(shapes_root):
    from unigrounding.data import CocoDetectionDataset, collate
    from unigrounding.registry import MODELS

    stage = MODELS.build(
        dict(
            type="QuantizerPretrainer",
            vision=TINY_MODEL["vision"],
            quantizer=dict(codebook_size=16),
        )
    )
    ds = CocoDetectionDataset(
        str(shapes_root), split="val", pipeline=[dict(type="PackGroundingSample", image_size=64)]
    )
    batch = collate([ds[i] for i in range(3)])
    sum(stage(batch["inputs"], batch["data_samples"], mode="loss").values()).backward()
    assert all(p.grad is None for p in stage.vision.parameters())
    assert all(k.startswith(("vision.", "codec.quantizer.")) for k in stage.state_dict())
    stage.eval()
    out = stage(batch["inputs"], batch["data_samples"], mode="predict")
    assert len(out[0].codes) == (64 // 8) ** 2 and -1 <= out[0].reconstruction_cos <= 1
