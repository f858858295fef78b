"""A pretrained transformers VLM as the backbone (``GroundingMLLM(vlm=...)``):
a random miniature of LLaVA-1.5-hf loaded from its folder. The conformance
suite runs every codec on it too (``test_conformance.py``)."""

import shutil

import numpy as np
import pytest
import torch
from miniatures import llava_folder
from mmengine.config import Config
from PIL import Image

import unigrounding as ug
from unigrounding.codecs.catalog import registered_codecs
from unigrounding.data.pipeline import collate
from unigrounding.engine.export import export_model
from unigrounding.registry import MODELS
from unigrounding.testing.tiny import (
    tiny_model_cfg,
    tiny_shapesref,
    tiny_shapesref_dataset,
    train_proposers,
    with_backbone,
)


def _llava_cfg(codec: str, folder) -> dict:
    return with_backbone(tiny_model_cfg(type=codec), {"vlm": {"pretrained": str(folder)}})


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tiny_shapesref(tmp_path_factory.mktemp("shapesref") / "data")
    ds = tiny_shapesref_dataset(root, split="train")
    return collate([ds[i] for i in range(4)])


def test_the_vlm_is_taken_apart_without_copies(tmp_path):
    """Tower, projector and LM are the VLM's own modules, in its dtype as
    configured; the tokenizer is the folder's, ``<image>`` is LLaVA's token."""
    folder = llava_folder(tmp_path / "llava")
    model = MODELS.build(_llava_cfg("text_coords", folder))
    assert type(model.llm).__name__ == "LlamaForCausalLM"
    assert type(model.vision.encoder).__name__ == "CLIPVisionModel"
    assert type(model.projector.projector).__name__ == "LlavaMultiModalProjector"
    # CLIP-L's rule: the second-to-last layer (hidden_states[2] of 3 layers)
    assert model.vision.layers == (1, 2) and model.num_image_tokens == 64
    assert model.image_token_id == model.tokenizer.convert_tokens_to_ids("<image>") == 4
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(ValueError, match="brings its own vision tower"):
        MODELS.build({**_llava_cfg("text_coords", folder), "vision": {"model_name": "x"}})


@pytest.mark.parametrize("codec", sorted(set(registered_codecs()) - {"int_coords"}))
def test_every_codec_trains_exports_and_reloads_on_llava(codec, batch, tmp_path):
    """A few training steps, an export, the base folder deleted, the export
    loaded: the same outputs (the export rebuilt the tower and projector from
    the VLM config it holds)."""
    folder = llava_folder(tmp_path / "llava")
    cfg = _llava_cfg(codec, folder)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    if model.proposers:
        train_proposers(model, batch, steps=2)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(2):
        losses = model(**model.data_preprocessor(batch, True), mode="loss")
        loss = sum(v for k, v in losses.items() if k.startswith("loss"))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.isfinite(loss)
    out = export_model(model, Config({"model": cfg}), tmp_path / "export")
    shutil.rmtree(folder)
    reloaded = ug.load(out).model
    model.eval()
    reloaded.eval()
    with torch.no_grad():
        inputs = model.data_preprocessor(batch, True)
        torch.testing.assert_close(
            reloaded(**inputs, mode="tensor"), model(**inputs, mode="tensor"), atol=1e-5, rtol=1e-4
        )


def test_a_llava_answer_comes_back_in_original_pixels(tmp_path, monkeypatch):
    """A 60x80 (HxW) image is padded to an 80 px square (10 px above and
    below) and resized to the tower's 64: text_coords' [0.25,0.375,0.75,0.625]
    of the square is x 20..60, y 30..50 in the square, y 20..40 in the image."""
    from unigrounding.testing.conformance import _answering

    grounder = ug.build({"model": _llava_cfg("text_coords", llava_folder(tmp_path / "llava"))})
    model = grounder.model
    monkeypatch.setattr(model, "_generate", _answering(model, "[0.25,0.375,0.75,0.625]", 0.0))
    image = Image.fromarray(np.zeros((60, 80, 3), np.uint8))
    refs = grounder.ground(image, "the red circle")
    assert np.allclose(refs.boxes.numpy(), [[20.0, 20.0, 60.0, 40.0]])
