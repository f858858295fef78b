"""Out-of-tree codecs load through mmengine ``custom_imports``, ``--plugins``
or an installed package's entry point, with no core edit."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_dataset, tiny_model_cfg
from mmengine.config import Config
from test_cli import small_preset  # noqa: F401  (fixture)

from unigrounding.plugins.loading import ENV_VAR, PluginError, load_plugins
from unigrounding.registry import CODECS, MODELS
from unigrounding.roundtrip import roundtrip


def test_plugin_codec_loads_from_config_and_trains(tmp_path, shapes_root, rec_batch):
    cfg_file = tmp_path / "plugin.py"
    cfg_file.write_text(
        'custom_imports = dict(imports=["unigrounding.plugins.example_codec"], allow_failed_imports=False)\n'
        f"model = {tiny_model_cfg(type='int_coords')!r}\n"
    )
    cfg = Config.fromfile(str(cfg_file))
    assert "int_coords" in CODECS.module_dict
    model = MODELS.build(cfg.model)
    assert {"<box>", "</box>"} <= set(model.tokenizer.get_vocab())
    ds = make_dataset(shapes_root)
    result = roundtrip(
        model.codec, model.tokenizer, [ds[i]["data_samples"] for i in range(len(ds))]
    )
    assert result["box_iou_mean"] >= model.codec.min_roundtrip_iou
    losses = model(rec_batch["inputs"], rec_batch["data_samples"], mode="loss")
    assert losses["loss_lm"].isfinite()
    garbage = model.codec.processor.parse(
        "<box>(1,2),(0,0)</box><box>(3", rec_batch["data_samples"][0]
    )
    assert len(garbage) == 0 and garbage.metainfo["parse_failures"] == 2


def _tiny_sam():
    """A randomly initialised SAM small enough for CPU tests (64 px input)."""
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    dim = 32
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=64, patch_size=16, embed_dim=dim, depth=1, num_heads=2, out_chans=dim
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim, image_embedding_size=(4, 4), input_image_size=(64, 64), mask_in_chans=8
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=dim,
            transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
            iou_head_depth=1,
            iou_head_hidden_dim=16,
        ),
    )


def test_sam_point_decoder_swaps_in_for_the_default_without_retraining(tmp_path, shapes_root):
    import numpy as np
    import pytest
    import torch

    from unigrounding.codecs.base import ModelView
    from unigrounding.codecs.grid_offset.codec import GridOffsetCodec
    from unigrounding.registry import DECODERS

    cfg_file = tmp_path / "sam.py"
    cfg_file.write_text(
        'custom_imports = dict(imports=["unigrounding.plugins.sam_point_decoder"], allow_failed_imports=False)\n'
    )
    Config.fromfile(str(cfg_file))
    with pytest.raises(FileNotFoundError, match="SAM checkpoint"):
        DECODERS.build(dict(type="SamPointDecoder", checkpoint=str(tmp_path / "none.pth")))
    torch.manual_seed(0)
    sam_decoder = DECODERS.build(dict(type="SamPointDecoder", sam=_tiny_sam()))
    assert not list(sam_decoder.state_dict())  # SAM's weights stay out of our checkpoints
    ds = make_dataset(shapes_root, task="res")
    item = ds[0]
    sample, image = item["data_samples"], item["inputs"]
    codec = GridOffsetCodec(refine=False)
    text = codec.processor.encode(sample.gt_refs.group(0), sample, "target")
    view = ModelView([sample], [], image[None], None, None, texts=[text])
    shapes = []
    for decoder in (DECODERS.build(dict(type="ColourRegionGrowing")), sam_decoder):
        codec.mask_decoder = decoder  # what bind() does with the model's decoders
        refs = codec.decode(view)[0]
        assert refs.masks.shape == (1, *sample.ori_shape) and refs.masks.dtype == torch.bool
        shapes.append(refs.masks.sum().item())
    assert shapes[0] > 0  # the colour decoder finds the object; random SAM gives some mask
    empty = sam_decoder(image, np.zeros((0, 2)))
    assert empty.shape == image.shape[-2:] and not empty.any()


def test_sam_ref_decoder_trains_from_ref_embeddings(shapes_root):
    """trp with SAM's mask decoder prompted by <REF> states (tiny random SAM)."""
    import torch

    import unigrounding.plugins.sam_ref_decoder  # noqa: F401  (registration, as custom_imports does)
    from unigrounding.data import collate

    torch.manual_seed(0)
    cfg = tiny_model_cfg(type="trp")
    cfg["decoders"] = dict(mask=dict(type="SamRefDecoder", sam=_tiny_sam()))
    model = MODELS.build(cfg)
    names = list(model.state_dict())
    assert any(n.startswith("decoders.mask.mask_decoder.") for n in names)
    assert not any("image_encoder" in n for n in names)  # frozen SAM encoder not saved
    ds = make_dataset(shapes_root, split="train", task="res")
    batch = collate([ds[i] for i in range(2)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    first = None
    for _ in range(25):
        losses = model(batch["inputs"], batch["data_samples"], mode="loss")
        mask_loss = (losses["loss_mask_focal"] + losses["loss_mask_dice"]).item()
        first = first if first is not None else mask_loss
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    decoder = model.decoders["mask"].mask_decoder
    # the mask path trains (SAM's IoU head gets no gradient: its score is unused)
    for p in [*decoder.transformer.parameters(), *decoder.output_upscaling.parameters()]:
        assert p.grad is not None
    assert mask_loss < 0.7 * first


REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    return subprocess.run(
        [sys.executable, "-m", "unigrounding.cli.main", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_plugins_option_makes_a_plugin_codec_visible_to_the_cli(tmp_path):
    listed = _cli("codecs", "--plugins", "plugins.example_codec")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "int_coords" in [c["name"] for c in json.loads(listed.stdout)]
    plain = _cli("codecs")
    assert "int_coords" not in [c["name"] for c in json.loads(plain.stdout)]
    # a file works from anywhere; a name that does not import is a one-line error
    by_file = _cli("codecs", "--plugins", str(REPO / "plugins" / "example_codec.py"), cwd=tmp_path)
    assert "int_coords" in [c["name"] for c in json.loads(by_file.stdout)]
    broken = _cli("codecs", "--plugins", "no_such_plugin")
    assert broken.returncode != 0
    assert "plugin 'no_such_plugin' failed to import" in broken.stderr.splitlines()[-1]


def test_ablate_trains_a_plugin_codec_in_its_lanes(small_preset, tmp_path, monkeypatch):  # noqa: F811
    from unigrounding.cli.main import main

    monkeypatch.delenv(ENV_VAR, raising=False)  # restored after the test
    out = tmp_path / "ab"
    main(["ablate", "--codecs", "int_coords", "--plugins", "unigrounding.plugins.example_codec",
          "--out", str(out)])  # fmt: skip
    row = json.loads((out / "report.json").read_text())["codecs"]["int_coords"]
    assert row["rec_acc@0.5"] is not None and row["train_samples_per_s"] > 0


def test_an_installed_packages_entry_point_registers_its_parts(tmp_path, monkeypatch):
    """A package declaring ``[project.entry-points."unigrounding.plugins"]``,
    as pip installs it (a dist-info folder beside the module)."""
    (tmp_path / "tmp_ug_plugin.py").write_text(
        "from torch import nn\n"
        "from unigrounding.registry import DECODERS\n"
        "@DECODERS.register_module()\n"
        "class TmpPluginDecoder(nn.Module):\n"
        "    pass\n"
    )
    info = tmp_path / "tmp_ug_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tmp-ug-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[unigrounding.plugins]\ntmp = tmp_ug_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from unigrounding.registry import DECODERS

    assert "tmp_ug_plugin" in load_plugins()
    assert DECODERS.get("TmpPluginDecoder") is not None
    assert "tmp_ug_plugin" not in load_plugins()  # once per process
    (info / "entry_points.txt").write_text("[unigrounding.plugins]\nbad = no_such_module_x\n")
    with pytest.raises(PluginError, match="bad = no_such_module_x .package tmp-ug-plugin"):
        load_plugins()


def test_an_out_of_tree_package_runs_the_conformance_suite(tmp_path):
    """What docs/adding_a_codec.md tells a plugin author to write: a test
    module subclassing the suite, run by pytest from outside this repository."""
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["unigrounding.testing.conformance"]\n')
    (tmp_path / "test_int_coords.py").write_text(
        "from unigrounding.testing import CodecConformance\n\n\n"
        "class TestIntCoords(CodecConformance):\n"
        '    codec = "int_coords"\n'
        '    plugins = ("unigrounding.plugins.example_codec",)\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    from unigrounding.testing import CodecConformance

    checks = [name for name in dir(CodecConformance) if name.startswith("test_")]
    passed = re.search(r"(\d+) passed, 1 deselected", proc.stdout)  # deselected: the slow one
    assert passed and int(passed.group(1)) >= len(checks) - 1, proc.stdout[-3000:]
