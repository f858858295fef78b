"""Out-of-tree codecs load through mmengine ``custom_imports``, with no core edit."""

from conftest import make_dataset, tiny_model_cfg
from mmengine.config import Config

from unigrounding.registry import CODECS, MODELS
from unigrounding.roundtrip import roundtrip


def test_plugin_codec_loads_from_config_and_trains(tmp_path, shapes_root, rec_batch):
    cfg_file = tmp_path / "plugin.py"
    cfg_file.write_text(
        'custom_imports = dict(imports=["plugins.example_codec"], allow_failed_imports=False)\n'
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
