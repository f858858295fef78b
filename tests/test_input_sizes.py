"""Inputs of their own size (a frame without padding, as Qwen2.5-VL's): each
sample gets the image tokens its input holds, a batch of mixed sizes shares
one zero-padded canvas, and every codec trains and decodes on it, with
geometry in each image's original pixels."""

import numpy as np
import pytest
import torch

from unigrounding.codecs.catalog import registered_codecs
from unigrounding.registry import MODELS
from unigrounding.testing.conformance import _answering
from unigrounding.testing.tiny import mixed_size_batch, tiny_model_cfg, train_proposers


@pytest.fixture(scope="module")
def mixed_batch(tmp_path_factory):
    return mixed_size_batch(tmp_path_factory.mktemp("mixed"))


def test_each_sample_gets_the_image_tokens_its_input_holds(mixed_batch):
    samples = mixed_batch["data_samples"]
    assert [tuple(s.frame.input_hw) for s in samples] == [(56, 84), (84, 56)] * 2
    assert tuple(mixed_batch["inputs"].shape) == (4, 3, 84, 84)
    assert mixed_batch["inputs"][0, :, 56:].sum() == 0  # the wide image's padding
    model = MODELS.build(tiny_model_cfg(type="text_coords"))  # 8-pixel image tokens
    view = model.model_view(mixed_batch["inputs"], samples, train=True)
    assert view.token_grids == [(7, 10), (10, 7)] * 2 and view.image_grid == (10, 10)
    image_tokens = (view.input_ids == model.image_token_id).sum(1).tolist()
    assert image_tokens == [70, 70, 70, 70]
    # the wide sample's tokens are the top 7 rows of the canvas grid
    tokens = model._sample_image_tokens(view)
    torch.testing.assert_close(
        tokens[:70], view.image_feats[0].unflatten(0, (10, 10))[:7].flatten(0, 1)
    )
    torch.testing.assert_close(
        tokens[70:140], view.image_feats[1].unflatten(0, (10, 10))[:, :7].flatten(0, 1)
    )


@pytest.mark.parametrize("codec", sorted(set(registered_codecs()) - {"int_coords"}))
def test_every_codec_trains_and_decodes_on_mixed_sizes(codec, mixed_batch, monkeypatch):
    """Two training steps (every loss finite, referent flags on each sample's
    own grid), then a prediction whose boxes lie inside each original image."""
    torch.manual_seed(0)
    model = MODELS.build(
        dict(tiny_model_cfg(type=codec), image_placement="after_text", referent_flag_weight=1.0)
    )
    if model.proposers:
        train_proposers(model, mixed_batch, steps=2)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for _ in range(2):
        losses = model(**model.data_preprocessor(mixed_batch, True), mode="loss")
        assert all(torch.isfinite(v) for v in losses.values()), losses
        opt.zero_grad()
        sum(v for k, v in losses.items() if k.startswith("loss")).backward()
        opt.step()
    model.eval()
    samples = [s.clone() for s in mixed_batch["data_samples"]]
    answer = model.codec.processor.format(samples[0]).turns[-1]["text"]
    monkeypatch.setattr(model, "_generate", _answering(model, answer, 0.0))
    with torch.no_grad():
        preds = model(mixed_batch["inputs"], samples, mode="predict")
    for sample in preds:
        height, width = sample.ori_shape
        boxes = sample.pred_refs.boxes
        assert torch.isfinite(boxes).all()
        assert bool((boxes[:, :2] >= 0).all() and (boxes[:, 2] <= width).all())
        assert bool((boxes[:, 3] <= height).all())


def test_a_box_on_a_wide_input_comes_back_in_original_pixels(mixed_batch, monkeypatch):
    """text_coords' [0.25,0.5,0.75,1.0] of the 56x84 input of a 60x72 image
    is x 21..63, y 28..56 there: x 18..54, y 30..60 in the image (x 72/84, y 60/56)."""
    model = MODELS.build(tiny_model_cfg(type="text_coords")).eval()
    monkeypatch.setattr(model, "_generate", _answering(model, "[0.25,0.5,0.75,1.0]", 0.0))
    samples = [s.clone() for s in mixed_batch["data_samples"]]
    with torch.no_grad():
        preds = model(mixed_batch["inputs"], samples, mode="predict")
    assert np.allclose(preds[0].pred_refs.boxes.numpy(), [[18.0, 30.0, 54.0, 60.0]])
    # the tall 80x48 image's 84x56 input: x 14..42 -> 12..36, y 42..84 -> 40..80
    assert np.allclose(preds[1].pred_refs.boxes.numpy(), [[12.0, 40.0, 36.0, 80.0]])


def test_a_visual_prompt_covers_only_its_own_input_on_the_canvas(mixed_batch):
    """The whole of the wide 60x72 image as a box prompt: its 7x10 cells of
    the 10x10 canvas grid, nothing in the padding below."""
    from unigrounding.codecs.visual_prompts import region_mask
    from unigrounding.structures import RefTargets

    sample = mixed_batch["data_samples"][0]
    mask = region_mask(RefTargets.build([[0, 0, 72, 60]]), 0, sample, (10, 10), (84, 84))
    expected = torch.zeros(10, 10)
    expected[:7] = 1
    assert torch.equal(mask, expected)


def test_a_model_names_its_input_frame_for_the_api():
    """``frame="resized_square"`` (GETok's plain resize): a 60x72 image is
    stretched to the 64 square, so x 36 is input 32 and y 30 is input 32."""
    from unigrounding.structures import input_frame

    model = MODELS.build(dict(tiny_model_cfg(type="text_coords"), frame="resized_square"))
    frame = model.input_frame((60, 72))
    assert tuple(frame.input_hw) == (64, 64)
    assert np.allclose(
        frame.boxes_to_input(np.array([[36.0, 30.0, 72.0, 60.0]])), [[32, 32, 64, 64]]
    )
    # the tiny model's own (auto): LLaVA's padded square
    padded = MODELS.build(tiny_model_cfg(type="text_coords")).input_frame((60, 72))
    assert padded.steps == input_frame("padded_square", (60, 72), 64).steps
    with pytest.raises(ValueError, match="frame must be"):
        MODELS.build(dict(tiny_model_cfg(type="text_coords"), frame="letterbox"))
