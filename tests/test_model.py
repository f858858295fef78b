import importlib.util

import pytest
import torch
from conftest import tiny_model_cfg

from unigrounding.codecs.base import Codec, ModelView
from unigrounding.engine.export import init_from_pretrained
from unigrounding.layers import IGNORE, sincos_2d
from unigrounding.models import Projector, select_attn_implementation
from unigrounding.models.chat import image_turn_text
from unigrounding.registry import CODECS, MODELS


def test_attn_selection(monkeypatch):
    assert select_attn_implementation("eager") == "eager"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_attn_implementation("auto") == "sdpa"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "flash_attn" else real(name)
    )
    assert select_attn_implementation("auto") == "sdpa"
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: object() if name == "flash_attn" else real(name)
    )
    assert select_attn_implementation("auto") == "flash_attention_2"


def test_projector_merges_2x2_neighbours_in_2d():
    proj = Projector(1, 4, merge=2, pos_embed=None)
    with torch.no_grad():
        proj.mlp[0].weight.zero_()
        proj.mlp[0].weight[0] = torch.tensor([1.0, 10.0, 100.0, 1000.0])
        proj.mlp[0].bias.zero_()
        proj.mlp[2].weight.copy_(torch.eye(4))
        proj.mlp[2].bias.zero_()
    fmap = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4) / 100
    out = proj(fmap)
    # first merged token = cells (0,0),(0,1),(1,0),(1,1) = 0, 1, 4, 5 (2-D neighbours, not 0..3)
    expected = torch.nn.functional.gelu(torch.tensor(0 * 1 + 0.01 * 10 + 0.04 * 100 + 0.05 * 1000))
    assert out.shape == (1, 4, 4)
    assert torch.allclose(out[0, 0, 0], expected)


def test_instruction_aware_projector_needs_the_instruction():
    proj = Projector(4, 8, instruction_aware=True)
    with pytest.raises(ValueError, match="instruction"):
        proj(torch.zeros(1, 4, 2, 2))


def test_image_turn_text_finds_the_turn_holding_the_image():
    turns = [
        {"role": "user", "text": "Hello"},
        {"role": "assistant", "text": "Hi"},
        {"role": "user", "text": "<image>\nWhere is the red circle?"},
    ]
    assert image_turn_text(turns) == "Where is the red circle?"
    with pytest.raises(ValueError, match="no user turn holds"):
        image_turn_text(turns[:2])


def test_instruction_aware_patches_depend_on_the_question(rec_batch):
    torch.manual_seed(0)
    cfg = tiny_model_cfg(type="text_coords")
    cfg["projector"] = dict(cfg["projector"], instruction_aware=True)
    model = MODELS.build(cfg)
    image = rec_batch["inputs"][:1]

    def patches(question: str) -> torch.Tensor:
        sample = rec_batch["data_samples"][0].clone()
        sample.conversation = [
            {"role": "user", "text": "<image>\n" + question},
            {"role": "assistant", "text": ""},
        ]
        return model.model_view(image, [sample], train=False).image_feats

    red = patches("Where is the red circle?")
    assert torch.equal(red, patches("Where is the red circle?"))
    assert not torch.allclose(red, patches("Where is the blue square?"))
    # the question's words learn through the projector
    red.sum().backward()
    words = model.tokenizer(" red", add_special_tokens=False).input_ids
    grad = model.llm.get_input_embeddings().weight.grad
    assert grad[words].abs().sum() > 0


def test_sincos_codes_differ_per_cell():
    code = sincos_2d(4, 4, 16)
    assert code.shape == (16, 16) and torch.cdist(code, code).fill_diagonal_(1).min() > 0


class _SpyCodec(Codec):
    """A latent-style codec that records what the model hands it."""

    kind = "latent"
    needs = frozenset({"hidden_states", "feature_pyramid", "generated_logits"})

    def __init__(self):
        from unigrounding.codecs.text_coords import TextCoordsProcessor

        super().__init__(TextCoordsProcessor())
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.seen = {}

    def loss(self, view: ModelView):
        self.seen["hidden"] = view.hidden_states.shape
        self.seen["pyramid"] = [f.shape for f in view.feature_pyramid]
        return {"loss_spy": (view.hidden_states.mean() * self.scale) ** 2}

    def decode(self, view: ModelView):
        self.seen["gen_hidden"] = view.generated_hidden_states.shape
        self.seen["gen_ids"] = view.generated_ids.shape
        self.seen["gen_logits"] = view.generated_logits.shape
        return super().decode(view)


def test_model_computes_only_and_all_that_a_codec_needs(rec_batch):
    CODECS.register_module(name="_spy", module=_SpyCodec, force=True)
    try:
        model = MODELS.build(tiny_model_cfg(type="_spy"))
        losses = model(rec_batch["inputs"], rec_batch["data_samples"], mode="loss")
        assert set(losses) == {"loss_lm", "loss_spy"}
        assert model.codec.seen["hidden"][-1] == model.llm.config.hidden_size
        assert len(model.codec.seen["pyramid"]) == 3
        model.eval()
        model(rec_batch["inputs"], [s.clone() for s in rec_batch["data_samples"]], mode="predict")
        b, t = model.codec.seen["gen_ids"]
        assert model.codec.seen["gen_hidden"][:2] == (b, t)
        assert model.codec.seen["gen_logits"][:2] == (b, t)
    finally:
        CODECS.module_dict.pop("_spy")


def test_lm_loss_equals_cross_entropy_over_the_whole_sequence(rec_batch):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(type="text_coords"))
    model.referent_flags = None
    loss = model(rec_batch["inputs"], rec_batch["data_samples"], mode="loss")["loss_lm"]
    view = model.model_view(rec_batch["inputs"], rec_batch["data_samples"], train=True)
    logits = model.llm(inputs_embeds=model._embed(view), attention_mask=view.attention_mask).logits
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        view.labels[:, 1:].reshape(-1),
        ignore_index=IGNORE,
    )
    assert (view.labels[:, 1:] == IGNORE).float().mean() > 0.3  # the head really skips positions
    torch.testing.assert_close(loss, expected)


def test_text_only_codec_builds_no_pyramid():
    model = MODELS.build(tiny_model_cfg(type="text_coords"))
    assert model.pyramid is None


def test_kv_cache_generation_matches_full_recompute(rec_batch):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(type="text_coords")).eval()
    samples = [s.clone() for s in rec_batch["data_samples"]]
    view = model.model_view(rec_batch["inputs"], samples, train=False)
    model.max_new_tokens = 6
    model._generate(view)
    ids, mask = view.input_ids, view.attention_mask
    embeds = model._embed(view)
    for step in range(6):
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos).logits[
            :, -1
        ]
        nxt = logits.argmax(-1)
        assert torch.equal(
            nxt[view.generated_ids[:, step] != model.tokenizer.eos_token_id],
            view.generated_ids[:, step][
                view.generated_ids[:, step] != model.tokenizer.eos_token_id
            ],
        )
        nxt = view.generated_ids[:, step]
        embeds = torch.cat([embeds, model.llm.get_input_embeddings()(nxt[:, None])], 1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    assert ids.shape[0] == 4


def test_init_from_pretrained_grows_vocabulary(tmp_path):
    from safetensors.torch import save_model

    small = MODELS.build(tiny_model_cfg(type="text_coords"))
    save_model(small, str(tmp_path / "model.safetensors"))
    big = MODELS.build(tiny_model_cfg(type="text_coords"))
    big.tokenizer.add_tokens(["<x1>", "<x2>"], special_tokens=True)
    big.llm.resize_token_embeddings(len(big.tokenizer))
    fresh = big.llm.get_input_embeddings().weight[-2:].clone()
    report = init_from_pretrained(big, tmp_path)
    emb = big.llm.get_input_embeddings().weight
    n = small.llm.get_input_embeddings().num_embeddings
    assert torch.equal(emb[:n], small.llm.get_input_embeddings().weight)
    assert torch.equal(emb[n:], fresh)
    assert report["unexpected"] == []


def test_init_from_pretrained_rejects_incompatible_shapes(tmp_path):
    from safetensors.torch import save_model

    save_model(
        MODELS.build(tiny_model_cfg(type="text_coords")), str(tmp_path / "model.safetensors")
    )
    cfg = tiny_model_cfg(type="text_coords")
    cfg["llm"]["config"]["hidden_size"] = 32
    with pytest.raises(ValueError, match="has shape"):
        MODELS.build({**cfg, "init_checkpoint": str(tmp_path)})


def test_api_chat_accepts_every_prompt_type(shapes_root):
    import numpy as np

    import unigrounding as ug

    model = ug.build({"model": tiny_model_cfg(type="text_coords")})
    mask = np.zeros((60, 72), bool)
    mask[10:20, 10:30] = True
    prompts = [ug.Box(1, 2, 20, 30), ug.Point(5, 6), ug.Scribble(((1, 1), (9, 9))), ug.Mask(mask)]
    text, refs = model.chat(
        shapes_root / "images" / "val_000040.png",
        "{prompt:0} {prompt:1} {prompt:2} {prompt:3}",
        prompts=prompts,
    )
    assert isinstance(text, str) and isinstance(refs, ug.RefTargets)
    with pytest.raises(TypeError, match="unsupported prompt"):
        model.chat(
            shapes_root / "images" / "val_000040.png", "{prompt:0}", prompts=["not a prompt"]
        )


def test_lora_trains_adapters_and_embeddings_only(rec_batch):
    """UGLMM's LoRA option (peft, rank 8, alpha 16): the LLM's own weights are
    frozen, the adapters and the (codec-grown) embeddings learn, and the
    model's loss and generation run through the wrapped LLM."""
    torch.manual_seed(0)
    model = MODELS.build({**tiny_model_cfg(type="gnd_query"), "lora": {"r": 8, "alpha": 16}})
    trainable = {n for n, p in model.llm.named_parameters() if p.requires_grad}
    assert trainable and all(
        "lora_" in n or "embed_tokens" in n or "lm_head" in n for n in trainable
    )
    assert any("lora_A" in n for n in trainable) and any("embed_tokens" in n for n in trainable)
    frozen = [p for n, p in model.llm.named_parameters() if "q_proj.base_layer" in n]
    assert frozen and not any(p.requires_grad for p in frozen)
    losses = model(rec_batch["inputs"], rec_batch["data_samples"], mode="loss")
    sum(losses.values()).backward()
    lora_b = [p for n, p in model.llm.named_parameters() if "lora_B" in n]
    assert all(p.grad is not None for p in lora_b)
    model.eval()
    out = model(rec_batch["inputs"], [s.clone() for s in rec_batch["data_samples"]], mode="predict")
    assert len(out) == len(rec_batch["data_samples"])


def test_generation_ignores_the_llm_folders_sampling_defaults(rec_batch):
    """A pretrained folder's generation_config.json (Qwen: sampling, a
    repetition penalty) must not change greedy answers."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(type="text_coords")).eval()
    model.max_new_tokens = 8
    samples = [s.clone() for s in rec_batch["data_samples"]]
    plain = model.model_view(rec_batch["inputs"], samples, train=False)
    model._generate(plain)
    folder = model.llm.generation_config
    folder.do_sample, folder.temperature, folder.top_k = True, 0.7, 5
    folder.repetition_penalty, folder.no_repeat_ngram_size = 1.5, 2
    configured = model.model_view(rec_batch["inputs"], samples, train=False)
    model._generate(configured)
    assert torch.equal(plain.generated_ids, configured.generated_ids)


def test_generated_hidden_states_are_each_tokens_read_back(rec_batch):
    """A latent codec reads the last layer's state of each generated token
    (``generate`` never reads back the last one; the model does)."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(type="trp")).eval()
    model.max_new_tokens = 5
    view = model.model_view(
        rec_batch["inputs"], [s.clone() for s in rec_batch["data_samples"]], False
    )
    with torch.no_grad():
        model._generate(view)
        embeds = torch.cat(
            [model._embed(view), model.llm.get_input_embeddings()(view.generated_ids)], 1
        )
        mask = torch.cat([view.attention_mask, torch.ones_like(view.generated_ids)], 1)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        full = model.llm(
            inputs_embeds=embeds, attention_mask=mask, position_ids=pos, output_hidden_states=True
        )
    steps = view.generated_ids.shape[1]
    still_going = (view.generated_ids != model.tokenizer.eos_token_id).cumprod(1).bool()
    expected = full.hidden_states[-1][:, -steps:]
    got = view.generated_hidden_states
    assert got.shape == expected.shape
    assert torch.allclose(got[still_going], expected[still_going], atol=1e-4)


def test_typed_special_tokens_and_the_image_tag_stay_plain_text():
    """``ground(img, "the <image> tag")`` once failed in masked_scatter; a typed
    ``[GND]`` acted as a control token; a lone surrogate broke the tokenizer."""
    import numpy as np
    from PIL import Image

    from unigrounding.api import Grounder
    from unigrounding.models.chat import plain_text

    model = MODELS.build(tiny_model_cfg(type="gnd_query"))
    grounder = Grounder(model)
    gnd = model.tokenizer.convert_tokens_to_ids("[GND]")
    safe = plain_text("a [GND] b <image> {target:0}", grounder._specials, slots=True)
    assert gnd not in model.tokenizer(safe, add_special_tokens=False).input_ids
    assert "<image>" not in safe and "{target:0}" not in safe
    assert safe.replace("\u2060", "") == "a [GND] b <image> {target:0}"
    image = Image.fromarray(np.zeros((30, 50, 3), np.uint8))
    for query in ("the <image> tag", "[GND] {target:0}", "\ud800 circle"):
        refs = grounder.ground(image, query)
        assert bool((refs.boxes[:, 2] <= 50).all() and (refs.boxes[:, 3] <= 30).all())
