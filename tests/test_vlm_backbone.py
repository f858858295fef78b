"""A pretrained transformers VLM as the backbone (``GroundingMLLM(vlm=...)``):
a random miniature of LLaVA-1.5-hf loaded from its folder. The conformance
suite runs every codec on it too (``test_conformance.py``)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

import unigrounding as ug
from unigrounding.codecs.catalog import registered_codecs
from unigrounding.data.pipeline import collate
from unigrounding.engine.export import export_model
from unigrounding.miniatures import llava_folder, qwen2_5_vl_folder
from unigrounding.models.vlm import with_backbone
from unigrounding.registry import MODELS
from unigrounding.testing.tiny import (
    mixed_size_batch,
    tiny_model_cfg,
    tiny_shapesref,
    tiny_shapesref_dataset,
    train_proposers,
)

#: Qwen2.5-VL's pixel range for the tests: ShapesRef at a few 28-pixel cells a side
QWEN_PIXELS = (56 * 56, 84 * 84)


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
    _trains_exports_and_reloads(_llava_cfg(codec, folder), folder, batch, tmp_path)


def _trains_exports_and_reloads(cfg: dict, folder, batch: dict, tmp_path) -> Path:
    """Two training steps (proposers first), an export, ``folder`` deleted,
    the export loaded: the same logits. Returns the export."""
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
    return out


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


# ---------------------------------------------------------------- Qwen2.5-VL
def _qwen_cfg(codec: str, folder, **codec_args) -> dict:
    return with_backbone(
        tiny_model_cfg(type=codec, **codec_args), {"vlm": {"pretrained": str(folder)}}
    )


@pytest.fixture(scope="module")
def qwen_batch(tmp_path_factory):
    """Mixed 56x84 / 84x56 inputs on one 84x84 canvas."""
    return mixed_size_batch(tmp_path_factory.mktemp("mixed"), QWEN_PIXELS)


@pytest.fixture(scope="module")
def qwen_folder(tmp_path_factory):
    return qwen2_5_vl_folder(tmp_path_factory.mktemp("qwen2_5_vl"), QWEN_PIXELS)


def test_qwen_vl_is_taken_apart_without_copies(qwen_folder, qwen_batch):
    """The tower is the VLM's encoder and merger, the LM the VLM without
    them; an image's tokens are written between <|vision_start|> and
    <|vision_end|>, as many as its input holds (2x3 merged 28-pixel cells
    for 56x84)."""
    model = MODELS.build(_qwen_cfg("text_coords", qwen_folder))
    assert type(model.llm).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(model.vision.visual).__name__ == "Qwen2_5_VisionTransformerPretrainedModel"
    assert model.llm.model.visual is None and type(model.projector).__name__ == "IdentityProjector"
    assert not any(n.startswith("llm.model.visual") for n, _ in model.named_parameters())
    view = model.model_view(qwen_batch["inputs"], qwen_batch["data_samples"], train=True)
    assert view.token_grids == [(2, 3), (3, 2)] * 2
    row = view.input_ids[0].tolist()
    start = row.index(model.tokenizer.convert_tokens_to_ids("<|vision_start|>"))
    image = model.image_token_id
    assert row[start + 1 : start + 7] == [image] * 6 and row[start + 7] != image
    assert row[start + 7] == model.tokenizer.convert_tokens_to_ids("<|vision_end|>")


def test_qwen_vl_runs_as_the_vlm_itself_runs(qwen_folder, qwen_batch):
    """Our forward (image tokens scattered into the embeddings, M-RoPE
    inputs beside them) gives the logits the VLM computes from the same
    conversations with its own pixel path; greedy answers are its own."""
    from transformers import AutoImageProcessor, Qwen2_5_VLForConditionalGeneration

    from unigrounding.models.generation import ended_at_stops

    torch.manual_seed(0)
    model = MODELS.build(_qwen_cfg("text_coords", qwen_folder)).eval()
    native = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        qwen_folder, dtype=torch.float32
    ).eval()
    processor = AutoImageProcessor.from_pretrained(qwen_folder)
    samples = qwen_batch["data_samples"]
    crops = [
        qwen_batch["inputs"][b, :, :h, :w]
        for b, (h, w) in enumerate(s.frame.input_hw for s in samples)
    ]
    pixels = processor(images=crops, do_resize=False, return_tensors="pt")
    pad = model.tokenizer.convert_tokens_to_ids("<|image_pad|>")

    def native_inputs(view):
        ids = view.input_ids.clone()
        is_image = ids == model.image_token_id
        ids[is_image] = pad
        return dict(
            input_ids=ids,
            attention_mask=view.attention_mask,
            pixel_values=pixels["pixel_values"],
            image_grid_thw=pixels["image_grid_thw"],
            mm_token_type_ids=is_image.int(),
        )

    vocab = native.config.text_config.vocab_size
    with torch.no_grad():
        view = model.model_view(qwen_batch["inputs"], samples, train=True)
        ours = model(qwen_batch["inputs"], samples, mode="tensor")[..., :vocab]
        torch.testing.assert_close(ours, native(**native_inputs(view)).logits, atol=1e-4, rtol=1e-4)
        prompt = model.model_view(qwen_batch["inputs"], samples, train=False)
        model._generate(prompt)
        theirs = native.generate(
            **native_inputs(prompt), max_new_tokens=model.max_new_tokens, do_sample=False
        )
    eos = model.tokenizer.eos_token_id
    expected = ended_at_stops(theirs[:, prompt.input_ids.shape[1] :], model.chat.stop_ids, eos)
    width = min(expected.shape[1], prompt.generated_ids.shape[1])
    assert torch.equal(prompt.generated_ids[:, :width], expected[:, :width])


def test_a_qwen_vl_answer_comes_back_in_original_pixels(qwen_folder, monkeypatch):
    """A 60x72 (HxW) image is resized, unpadded, to 56x84: Qwen's own
    answer bbox_2d [21, 28, 63, 56] (input pixels) is x 21*72/84 = 18 ..
    54, y 28*60/56 = 30 .. 60 in the image."""
    from unigrounding.testing.conformance import _answering

    grounder = ug.build({"model": _qwen_cfg("text_coords", qwen_folder, style="qwen2_5_vl")})
    model = grounder.model
    answer = '[{"bbox_2d": [21, 28, 63, 56], "label": "the red circle"}]'
    monkeypatch.setattr(model, "_generate", _answering(model, answer, 0.0))
    image = Image.fromarray(np.zeros((60, 72, 3), np.uint8))
    refs = grounder.ground(image, "the red circle")
    assert np.allclose(refs.boxes.numpy(), [[18.0, 30.0, 54.0, 60.0]])


@pytest.mark.parametrize("codec", sorted(set(registered_codecs()) - {"int_coords"}))
def test_every_codec_trains_exports_and_reloads_on_qwen_vl(codec, qwen_batch, tmp_path):
    """On mixed 56x84 / 84x56 inputs: two training steps, an export whose
    llm/ is a whole Qwen2.5-VL folder (the trained encoder in it, loadable
    as the VLM itself), the base folder deleted, the export reloaded: the
    same outputs."""
    from transformers import AutoModelForImageTextToText

    folder = qwen2_5_vl_folder(tmp_path / "qwen", QWEN_PIXELS)
    out = _trains_exports_and_reloads(_qwen_cfg(codec, folder), folder, qwen_batch, tmp_path)
    # the trained model came back from it (the helper's logits), and the
    # folder is a whole VLM to transformers: no weight missing, none left over
    _, info = AutoModelForImageTextToText.from_pretrained(
        out / "llm", dtype=torch.float32, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
