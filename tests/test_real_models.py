"""A user's local LLM / tokenizer / tower folders: train, export, delete the
sources, reload — on offline miniatures of the published architectures
(tests/miniatures.py), loaded exactly as a user loads a real folder."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import unigrounding as ug
from unigrounding.engine.runner import train
from unigrounding.layers import IGNORE
from unigrounding.miniatures import llama_folder, mistral_folder, qwen2_folder, tower_checkpoint

CONFIGS = Path(ug.__file__).resolve().parent / "configs"
LLM_FAMILIES = {"llama": llama_folder, "qwen2": qwen2_folder, "mistral": mistral_folder}


def user_config(tmp: Path, body: str, base: str = "text_coords/rec_shapesref.py") -> Path:
    """A config as the README writes it: the shipped recipe plus the user's lines."""
    path = tmp / "my_config.py"
    path.write_text(f"_base_ = [{str(CONFIGS / base)!r}]\n{body}")
    return path


def few_iterations(root: Path, iters: int = 2) -> dict:
    """Run-time options (as ``--cfg-options``): a few iterations on the test data."""
    data = dict(data_root=str(root), seed=1, n_train=40, n_val=12)
    return {
        "train_dataloader.batch_size": 2,
        "train_dataloader.dataset": data,
        "val_dataloader.dataset": {**data, "max_samples": 2},
        "test_dataloader.dataset": {**data, "max_samples": 2},
        "train_cfg.max_iters": iters,
        "train_cfg.val_interval": 10**6,
        "default_hooks.logger.interval": 1,
    }


def check_export(export: Path, image: Path) -> ug.Grounder:
    """The export alone answers through the API and through plain transformers."""
    model = ug.load(export)
    refs = model.ground(image, "the red circle")
    assert isinstance(refs, ug.RefTargets)
    text, _ = model.chat(image, "What is {prompt:0}?", prompts=[ug.Box(1, 2, 20, 30)])
    assert isinstance(text, str)
    plain = AutoModelForCausalLM.from_pretrained(str(export / "llm"))
    tok = AutoTokenizer.from_pretrained(str(export / "llm"))
    assert len(tok) == len(model.model.tokenizer)
    ids = torch.tensor([tok("the red circle", add_special_tokens=False).input_ids])
    ours = model.model.llm
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, ours(ids).logits.to(plain.dtype))
    return model


@pytest.mark.parametrize("family", sorted(LLM_FAMILIES))
def test_llm_folder_trains_exports_and_reloads_alone(family, shapes_root, tmp_path):
    llm_dir = LLM_FAMILIES[family](tmp_path / family)
    cfg = user_config(tmp_path, f"model = dict(llm=dict(pretrained={str(llm_dir)!r}))\n")
    runner = train(cfg, work_dir=str(tmp_path / "run"), cfg_options=few_iterations(shapes_root))
    model = runner.model
    # the LLM's own tokenizer, template and fp32 master weights
    assert model.tokenizer.name_or_path == str(llm_dir)
    assert all(p.dtype == torch.float32 for p in model.llm.parameters())
    assert model.chat.name == ("vicuna" if family == "llama" else "tokenizer")
    shutil.rmtree(llm_dir)
    check_export(tmp_path / "run" / "export", shapes_root / "images" / "val_000040.png")


def test_qwen2_conversations_follow_chatml_without_bos(tmp_path):
    llm_dir = qwen2_folder(tmp_path / "qwen2")
    model = ug.build(
        user_config(tmp_path, f"model = dict(llm=dict(pretrained={str(llm_dir)!r}))\n")
    ).model
    tok = model.tokenizer
    turns = [
        {"role": "user", "text": "<image>\nWhere is the red circle?"},
        {"role": "assistant", "text": "[0.1,0.2,0.3,0.4]"},
    ]
    ids, labels = model.chat.encode(turns, 3, with_last_answer=True)
    text = tok.decode(ids)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    assert ids.count(tok.convert_tokens_to_ids("<image>")) == 3
    supervised = tok.decode([i for i, lab in zip(ids, labels, strict=True) if lab != IGNORE])
    assert supervised == "[0.1,0.2,0.3,0.4]<|im_end|>"
    prompt, _ = model.chat.encode(turns, 3, with_last_answer=False)
    assert tok.decode(prompt).endswith("<|im_start|>assistant\n")
    assert tok.convert_tokens_to_ids("<|im_end|>") in model.chat.stop_ids
    # tied embeddings padded past the tokenizer: no resize was needed
    emb = model.llm.get_input_embeddings()
    assert emb.weight is model.llm.get_output_embeddings().weight
    assert emb.num_embeddings > len(tok)


def test_vicuna_format_writes_bos_only_where_the_tokenizer_has_one(tmp_path):
    from unigrounding.models.chat import VicunaFormat

    turns = [{"role": "user", "text": "<image>\nhi"}, {"role": "assistant", "text": "ok"}]
    llama = AutoTokenizer.from_pretrained(str(llama_folder(tmp_path / "llama")))
    llama.add_tokens(["<image>"], special_tokens=True)
    assert VicunaFormat(llama).encode(turns, 1, True)[0][0] == llama.bos_token_id
    qwen = AutoTokenizer.from_pretrained(str(qwen2_folder(tmp_path / "qwen")))
    qwen.add_tokens(["<image>"], special_tokens=True)
    ids, _ = VicunaFormat(qwen).encode(turns, 1, True)
    assert qwen.decode(ids).startswith("USER:")


def test_codec_tokens_are_added_and_rows_grown(tmp_path):
    llm_dir = llama_folder(tmp_path / "llama")
    rows = AutoModelForCausalLM.from_pretrained(str(llm_dir)).get_input_embeddings().num_embeddings
    body = (
        f"model = dict(llm=dict(pretrained={str(llm_dir)!r}), "
        "codec=dict(type='grid_offset', n=4, m=8))\n"
    )
    model = ug.build(user_config(tmp_path, body, "grid_offset/rec_shapesref.py")).model
    tok = model.tokenizer
    assert "<grid_3_3>" in tok.get_vocab()
    assert model.llm.get_input_embeddings().num_embeddings == len(tok) > rows


def test_a_tokenizer_that_does_not_fit_the_llm_names_both(tmp_path):
    llm_dir = llama_folder(tmp_path / "llama")
    big = qwen2_folder(tmp_path / "qwen")  # trained alike, 3 special tokens: same size
    tok = AutoTokenizer.from_pretrained(str(big))
    tok.add_tokens([f"<extra_{i}>" for i in range(200)])
    tok.save_pretrained(str(tmp_path / "big_tok"))
    body = (
        f"model = dict(llm=dict(pretrained={str(llm_dir)!r}), "
        f"tokenizer=dict(path={str(tmp_path / 'big_tok')!r}))\n"
    )
    with pytest.raises(ValueError, match=r"tokenizer \(\d+ tokens\).*llama.*embedding rows"):
        ug.build(user_config(tmp_path, body))


def test_from_pretrained_options_reach_the_llm(tmp_path):
    llm_dir = qwen2_folder(tmp_path / "qwen2")
    body = (
        f"model = dict(llm=dict(pretrained={str(llm_dir)!r}, dtype='bfloat16', "
        "attn_implementation='eager'))\n"
    )
    model = ug.build(user_config(tmp_path, body)).model
    assert next(model.llm.parameters()).dtype == torch.bfloat16
    assert model.llm.config._attn_implementation == "eager"
    image = torch.zeros(1, 3, model.image_size, model.image_size, dtype=torch.uint8)
    from unigrounding.structures import GroundingDataSample, RefTargets, square_resize_frame

    frame = square_resize_frame((64, 64), model.image_size)
    sample = GroundingDataSample(
        metainfo={"sample_id": "s", "ori_shape": (64, 64), "img_shape": frame.input_hw,
                  "frame": frame, "task": "rec"}
    )  # fmt: skip
    sample.gt_refs = RefTargets.build([[1.0, 1.0, 30.0, 30.0]], phrases=["the red circle"])
    sample.prompt_refs = RefTargets.empty()
    sample.conversation = [
        {"role": "user", "text": "<image>\nWhere is {target:0}?"},
        {"role": "assistant", "text": "{target:0}"},
    ]
    losses = model(image, [sample], mode="loss")  # a bf16 LLM inside the fp32 model
    sum(v for k, v in losses.items() if k.startswith("loss")).backward()
    assert torch.isfinite(losses["loss_lm"])


def test_training_conversations_are_truncated_and_counted(tmp_path, rec_batch):
    from conftest import tiny_model_cfg

    from unigrounding.registry import MODELS

    cfg = tiny_model_cfg()
    model = MODELS.build(cfg)
    full = model(rec_batch["inputs"], rec_batch["data_samples"], mode="loss")
    assert "truncated" not in full
    limit = model.num_image_tokens + 12
    cfg["max_length"] = limit
    short = MODELS.build(cfg)
    losses = short(rec_batch["inputs"], rec_batch["data_samples"], mode="loss")
    assert losses["truncated"].item() == len(rec_batch["data_samples"])
    cfg["max_length"] = model.num_image_tokens // 2
    with pytest.raises(ValueError, match="sample .* would cut its image"):
        MODELS.build(cfg)(rec_batch["inputs"], rec_batch["data_samples"], mode="loss")


#: the input side each miniature was built for (its published size, or img_size)
OWN_SIZE = {"clip_vit_l14_336": 336, "eva02_clip_l14": 224, "dinov2_l14": 112,
            "siglip_so400m": 112, "convnext_clip": 320}  # fmt: skip


@pytest.mark.parametrize(
    "tower", ["clip_vit_l14_336", "eva02_clip_l14", "dinov2_l14", "siglip_so400m", "convnext_clip"]
)
def test_tower_checkpoint_trains_exports_and_reloads_alone(tower, shapes_root, tmp_path):
    name, miniature, file = tower_checkpoint(tower, tmp_path)
    tower_cfg = f"dict(model_name={name!r}, checkpoint={str(file)!r}, model_kwargs={miniature!r})"
    # image_size=None: the tower's own input size (its name's, or img_size)
    own = ug.build(user_config(tmp_path, f"model = dict(image_size=None, vision={tower_cfg})\n"))
    assert own.model.image_size == OWN_SIZE[tower]
    # the README's recipe; the ConvNeXt at 128 px, not its 320 (1600 tokens on CPU)
    size = 128 if tower == "convnext_clip" else own.model.image_size
    body = (
        f"image_size = {size}\n"
        f"model = dict(image_size=image_size, vision={tower_cfg})\n"
        "pipeline = [dict(type='PackGroundingSample', image_size=image_size)]\n"
        "train_dataloader = dict(dataset=dict(pipeline=pipeline))\n"
        "val_dataloader = dict(dataset=dict(pipeline=pipeline))\n"
        "test_dataloader = val_dataloader\n"
    )
    options = few_iterations(shapes_root, iters=1)
    runner = train(user_config(tmp_path, body), work_dir=str(tmp_path / "run"), cfg_options=options)
    assert runner.model.image_size == size
    if len(set(runner.model.vision.strides)) == 1:  # a ViT: the last blocks, tokens from the last
        depth = miniature["depth"]
        indices = runner.model.vision.backbone.feature_info.out_indices
        assert sorted(i % depth for i in indices) == [depth - 3, depth - 2, depth - 1]
        assert runner.model.vision.token_levels == (len(indices) - 1,)
    file.unlink()
    check_export(tmp_path / "run" / "export", shapes_root / "images" / "val_000040.png")


def test_a_tower_checkpoint_that_does_not_match_names_the_keys(tmp_path):
    name, miniature, file = tower_checkpoint("clip_vit_b16", tmp_path)
    with pytest.raises(ValueError, match=r"does not match timm model.*(Missing|Unexpected) key"):
        ug.models.VisionTower(name, checkpoint=str(file), model_kwargs={**miniature, "depth": 4})


PAYLOAD = "\n_x = __import__('pathlib').Path({marker!r}).write_text('ran')\n"


@pytest.fixture(scope="module")
def tiny_export(shapes_root, tmp_path_factory):
    """A trained, exported tiny model (the ShapesRef recipe as shipped)."""
    tmp = tmp_path_factory.mktemp("export")
    cfg = user_config(tmp, "")
    train(cfg, work_dir=str(tmp / "run"), cfg_options=few_iterations(shapes_root, 1))
    return tmp / "run" / "export"


def test_an_export_never_runs_code_appended_to_any_file(tiny_export, tmp_path):
    files = sorted(p.relative_to(tiny_export) for p in tiny_export.rglob("*") if p.is_file())
    assert Path("unigrounding.json") in files and Path("llm/config.json") in files
    marker = tmp_path / "ran"
    for name in [*files, Path("config.py")]:  # config.py: a planted 0.1-style config
        export = tmp_path / "copy"
        shutil.rmtree(export, ignore_errors=True)
        shutil.copytree(tiny_export, export)
        with (export / name).open("ab") as f:
            f.write(PAYLOAD.format(marker=str(marker)).encode())
        # a corrupted file may refuse to load; it must not run
        with contextlib.suppress(Exception):
            ug.load(export)
        assert not marker.exists(), f"a payload appended to {name} ran"


def test_a_legacy_export_is_refused_with_how_to_convert_it(tiny_export, tmp_path):
    """An export of 0.1 (config.py + one safetensors file + tokenizer/)
    fails to load with the conversion command; converting it (which runs its
    config, as the user asked) gives an export that loads."""
    from mmengine.config import Config
    from safetensors.torch import save_model

    from unigrounding.cli.main import main
    from unigrounding.engine.export import LegacyExportError, read_export_config

    model = ug.load(tiny_export).model
    old = tmp_path / "old"
    old.mkdir()
    cfg = read_export_config(tiny_export)
    arch = AutoModelForCausalLM.from_pretrained(str(tiny_export / "llm")).config
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "max_position_embeddings")  # fmt: skip
    cfg["llm"] = {"model_type": "llama", **{k: getattr(arch, k) for k in keys}}  # 0.1: flat
    cfg.pop("tokenizer")
    Config(dict(model=cfg)).dump(str(old / "config.py"))
    save_model(model, str(old / "model.safetensors"))
    model.tokenizer.save_pretrained(str(old / "tokenizer"))
    with pytest.raises(LegacyExportError, match="unigrounding export-convert"):
        ug.load(old)
    main(["export-convert", str(old)])
    converted = ug.load(old).model
    for key, value in model.state_dict().items():
        torch.testing.assert_close(converted.state_dict()[key], value, msg=key)


@pytest.mark.parametrize("lora", ["merge", "adapter"])
def test_lora_exports_merged_or_as_a_peft_adapter(lora, tmp_path):
    from peft import PeftModel

    from unigrounding.engine.export import export_model

    llm_dir = llama_folder(tmp_path / "llama")
    cfg_path = user_config(
        tmp_path, f"model = dict(llm=dict(pretrained={str(llm_dir)!r}), lora=dict(r=4))\n"
    )
    grounder = ug.build(cfg_path)
    model = grounder.model
    with torch.no_grad():  # a trained adapter: B != 0
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
    from mmengine.config import Config

    out = export_model(model, Config.fromfile(str(cfg_path)), tmp_path / "export", lora=lora)
    shutil.rmtree(llm_dir)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        expected = model.llm(input_ids=ids).logits
        plain = AutoModelForCausalLM.from_pretrained(str(out / "llm"))
        if lora == "adapter":
            assert (out / "lora" / "adapter_config.json").exists()
            plain = PeftModel.from_pretrained(plain, str(out / "lora"))
        else:
            assert not (out / "lora").exists()
        torch.testing.assert_close(plain(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-4)
        reloaded = ug.load(out).model
        torch.testing.assert_close(
            reloaded.llm(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-4
        )


def test_a_named_template_brings_its_turn_markers(tmp_path):
    """ChatML on a Llama tokenizer: the markers become single tokens, the
    answer ends with <|im_end|> and generation stops there."""
    llm_dir = llama_folder(tmp_path / "llama")
    body = f"model = dict(llm=dict(pretrained={str(llm_dir)!r}), chat_template='chatml')\n"
    model = ug.build(user_config(tmp_path, body)).model
    tok = model.tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    assert end != tok.unk_token_id and end in model.chat.stop_ids
    turns = [{"role": "user", "text": "<image>\nhi"}, {"role": "assistant", "text": "ok"}]
    ids, labels = model.chat.encode(turns, 1, with_last_answer=True)
    supervised = [i for i, lab in zip(ids, labels, strict=True) if lab != IGNORE]
    assert supervised[-1] == end and tok.decode(supervised) == "ok<|im_end|>"
    assert model.llm.get_input_embeddings().num_embeddings >= len(tok)


def test_a_lora_stage_starts_from_a_full_export(tmp_path):
    """A stage chain: an export of a fully fine-tuned model initialises a
    LoRA model (its base layers under peft's names)."""
    from conftest import tiny_model_cfg
    from mmengine.config import Config

    from unigrounding.engine.export import export_model
    from unigrounding.registry import MODELS

    full_cfg = tiny_model_cfg()
    full = MODELS.build(full_cfg)
    export = export_model(full, Config(dict(model=full_cfg)), tmp_path / "stage0")
    lora = MODELS.build({**tiny_model_cfg(), "lora": dict(r=4), "init_checkpoint": str(export)})
    base = dict(lora.llm.get_base_model().named_parameters())
    for name, value in full.llm.named_parameters():
        peft_name = (
            name.replace("q_proj.weight", "q_proj.base_layer.weight")
            .replace("v_proj.weight", "v_proj.base_layer.weight")
            .replace("k_proj.weight", "k_proj.base_layer.weight")
            .replace("o_proj.weight", "o_proj.base_layer.weight")
        )
        assert torch.equal(base[peft_name], value), name
