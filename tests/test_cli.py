"""The command line and the ablation report (schema of DESIGN.md section 7)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from safetensors.torch import load_file

import unigrounding.ablate as ablate
from unigrounding.ablate.configs import apply_task, codec_config
from unigrounding.ablate.report import markdown
from unigrounding.ablate.stages import longest_chains
from unigrounding.cli.main import main


def _cli(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "unigrounding.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_codecs_lists_json():
    catalog = json.loads(_cli("codecs"))
    assert {"name": "text_coords", "kind": "vocab", "units": ["box"]} in catalog


def test_data_command_writes_refcoco_layout(tmp_path):
    main(["data", "shapesref", "--out", str(tmp_path / "d"), "--n-train", "3", "--n-val", "2"])
    assert {p.name for p in (tmp_path / "d").iterdir()} >= {
        "instances.json",
        "refs(shapesref).json",
        "grefs(shapesref).json",
        "images",
    }


@pytest.fixture()
def small_preset(monkeypatch, tmp_path):
    monkeypatch.setenv("UNIGROUNDING_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(
        ablate.PRESETS,
        "quick",
        {
            "pretrain_iters": 2,
            "finetune_samples": 64,
            "stage_iters": 2,
            "rl_iters": 2,
            "n_train": 30,
            "n_val": 10,
            "eval_samples": 8,
        },
    )


def test_roundtrip_text_coords_reaches_quantization_ceiling(small_preset, tmp_path):
    out = tmp_path / "rt.json"
    main(["roundtrip", "--codec", "text_coords", "--n", "20", "--out", str(out)])
    result = json.loads(out.read_text())
    assert set(result) >= {
        "codec",
        "n",
        "box_iou_mean",
        "box_acc@0.5",
        "mask_iou_mean",
        "tokens_per_object",
        "encode_ms_per_object",
        "decode_ms_per_object",
    }
    assert result["box_iou_mean"] > 0.97 and result["box_acc@0.5"] == 1.0
    assert result["mask_iou_mean"] is None  # text coordinates carry no mask: null, not a number


def test_roundtrip_without_out_prints_the_report(small_preset, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["roundtrip", "--codec", "text_coords", "--n", "5"])
    result = json.loads(capsys.readouterr().out)
    assert result["codec"] == "text_coords" and result["n"] == 5
    written = [p.name for p in tmp_path.iterdir() if p.name != "cache"]  # cache: small_preset's
    assert written == []  # nothing written without --out


def test_roundtrip_region_proxy_runs_its_proposer_stage_first(small_preset, tmp_path):
    """The ceiling of region_proxy is the proposer's: roundtrip trains (and
    caches) the detection stage, then decodes ideal proxies to proposal boxes."""
    out = tmp_path / "rt.json"
    main(["roundtrip", "--codec", "region_proxy", "--n", "8", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["n"] > 0 and 0.0 <= result["box_iou_mean"] <= 1.0
    assert result["tokens_per_object"] > 0
    assert list((tmp_path / "cache").glob("proposer_shapesref-*/export/model.safetensors"))


def test_ablate_writes_report_with_schema_and_reuses_pretraining(small_preset, tmp_path, capfd):
    report = ablate.run_ablation(
        tmp_path / "ab", codecs=["text_coords"], log=lambda *_: None, live=True
    )
    # the terminal shows the live view; each job's own output is in its work dir
    terminal = capfd.readouterr()
    assert "text_coords" in terminal.out and "jobs done" in terminal.out
    assert "rec/acc@0.5" not in terminal.out + terminal.err
    console = (tmp_path / "ab" / "work" / "text_coords" / "console.log").read_text()
    assert "rec/acc@0.5" in console and "Failed to search registry" not in console
    progress = json.loads((tmp_path / "ab" / "work" / "text_coords" / "progress.json").read_text())
    assert progress["phase"] == "done" and progress["iter"] == progress["total"]
    on_disk = json.loads((tmp_path / "ab" / "report.json").read_text())
    assert on_disk["preset"] == "quick" and on_disk["dataset"] == "shapesref"
    assert "rec_acc@0.5" in on_disk["baselines"]["center_box"]
    row = on_disk["codecs"]["text_coords"]
    for key in (
        "rec_acc@0.5",
        "rec_miou",
        "res_ciou",
        "parse_failures",
        "tokens_per_object",
        "train_samples_per_s",
        "decode_ms_per_object",
        "train_seconds",
    ):
        assert key in row
    assert row["res_ciou"] is None and row["train_samples_per_s"] > 0
    assert row["protocols"]["rec"] == "rec-acc@iou>=t, float64"  # each metric's protocol
    assert (tmp_path / "ab" / "report.md").read_text().count("text_coords") >= 1
    assert list((tmp_path / "ab").glob("*.png"))
    logs = []
    ablate.run_ablation(tmp_path / "ab2", codecs=["text_coords"], log=logs.append)
    assert any("reusing cached stage pretrain/" in line for line in logs)
    assert (
        report["pretrained"]
        == json.loads((tmp_path / "ab2" / "report.json").read_text())["pretrained"]
    )


def test_ablate_seeds_retrain_everything_per_seed_and_report_intervals(small_preset, tmp_path):
    """``--seeds`` reaches each seed's codec config; stage 0 is trained once,
    with its config's seed, for every seed and a seedless run; the report has
    per-seed values, intervals, paired comparisons and each seed's own report."""
    from mmengine.config import Config

    main(
        [
            "ablate",
            "--codecs",
            "text_coords,grid_offset",
            "--seeds",
            "3,4",
            "--out",
            str(tmp_path / "s"),
        ]
    )
    report = json.loads((tmp_path / "s" / "report.json").read_text())
    assert report["seeds"] == [3, 4] and len(set(report["pretrained"])) == 1
    assert "seed" not in report["settings"] and report["manifest"]["seeds"] == [3, 4]
    assert report["manifest"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert all(Path(p).exists() for p in report["manifest"]["configs"]["text_coords"])
    row = report["codecs"]["text_coords"]
    assert len(row["per_seed"]["rec_acc@0.5"]) == 2 and "rec_acc@0.5" in row["spread"]
    low, high = row["rec_acc@0.5_ci95"]
    assert 0.0 <= low <= row["rec_acc@0.5"] <= high <= 1.0
    pairs = report["pairwise"]["rec_acc@0.5"]
    assert {(p["a"], p["b"]) for p in pairs} >= {("text_coords", "grid_offset")}
    per_sample = json.loads((tmp_path / "s" / "per_sample.json").read_text())
    assert len(per_sample["text_coords"]) == 2 and len(per_sample["text_coords"][0]["rec_iou"]) == 8
    markdown = (tmp_path / "s" / "report.md").read_text()
    assert "Paired comparisons on rec_acc@0.5" in markdown and "per seed" in markdown
    assert f"[{low:.3f}, {high:.3f}]" in markdown  # the interval column
    for seed in (3, 4):
        own = json.loads((tmp_path / "s" / f"seed_{seed}" / "report.json").read_text())
        assert own["seeds"] == [seed] and own["settings"]["seed"] == seed
        dumped = Config.fromfile(
            str(tmp_path / "s" / f"seed_{seed}" / "work" / "text_coords" / "ablate_config.py")
        )
        assert dumped.randomness.seed == seed
    default = ablate.run_ablation(tmp_path / "s0", codecs=["text_coords"], log=lambda *_: None)
    assert "seed" not in default["settings"] and default["seeds"] == [None]
    assert set(default["pretrained"]) == set(report["pretrained"])  # one stage 0 for all


def test_reseeded_pretraining_is_cached_per_seed(small_preset):
    """``--reseed-pretraining`` gives stage 0 each seed (its own cache folder
    and randomness); without it every seed shares the configs' stage 0,
    while a codec's own stages always take the seed."""
    from unigrounding.ablate.presets import config_dir
    from unigrounding.ablate.stages import PRETRAIN_STAGE, stage_config

    cdir, root = config_dir(), Path("unused")
    base = dict(ablate.PRESETS["quick"])

    def stage(name, **settings):
        return stage_config(cdir, name, {**base, **settings}, root, None)

    shared = {stage(PRETRAIN_STAGE, seed=s)[1] for s in (3, 4)}
    assert shared == {stage(PRETRAIN_STAGE)[1]}
    reseeded = [stage(PRETRAIN_STAGE, seed=s, reseed_pretraining=True) for s in (3, 4)]
    assert len({work for _, work in reseeded} | shared) == 3
    assert [cfg.randomness.seed for cfg, _ in reseeded] == [3, 4]
    proposer = "region_proxy/proposer_shapesref.py"
    assert stage(proposer, seed=3)[1] != stage(proposer, seed=4)[1]


def test_a_stages_cache_ignores_the_codecs_budget():
    """Changing the codecs' fine-tuning or RL budget or their evaluation set
    reuses the cached stages; changing what trains a stage does not."""
    from unigrounding.ablate.presets import config_dir
    from unigrounding.ablate.stages import PRETRAIN_STAGE, stage_config

    cdir, root = config_dir(), Path("unused")
    base = dict(ablate.PRESETS["quick"])

    def work(stage, **changed):
        return stage_config(cdir, stage, {**base, **changed}, root, None)[1]

    for stage in (PRETRAIN_STAGE, "region_proxy/proposer_shapesref.py"):
        same = {work(stage), work(stage, finetune_samples=64, rl_iters=3, eval_samples=10)}
        assert len(same) == 1
        assert work(stage, pretrain_iters=7, stage_iters=7) not in same
        assert work(stage, n_train=100) not in same


def test_ablate_runs_a_codecs_own_stage_in_the_pool_and_reports_it(small_preset, tmp_path):
    """region_proxy's proposer stage runs beside another codec (two lanes),
    its recall lands in the report, and the codec starts from its export."""
    report = ablate.run_ablation(
        tmp_path / "st", codecs=["region_proxy", "text_coords"], jobs=2, log=lambda *_: None
    )
    stage = report["stages"]["region_proxy/proposer_shapesref.py"]
    assert 0.0 <= stage["proposals/recall@100"] <= 1.0 and stage["train_iters"] == 2
    assert set(report["codecs"]) == {"region_proxy", "text_coords"}
    config = (tmp_path / "st" / "work" / "region_proxy" / "ablate_config.py").read_text()
    assert "proposer_shapesref" in config  # init_checkpoint: the stage's export
    assert (
        "Stage `region_proxy/proposer_shapesref.py`" in (tmp_path / "st" / "report.md").read_text()
    )


def test_ablate_chains_stages_and_trains_design_variants(small_preset, tmp_path):
    """token_collective's two stages run in order and its codec starts from an
    export holding both (the proposer carried over into the tokenizer's);
    ``variants`` trains the perception variants as extra rows, the eq. (1)
    metrics and the proposer-free evaluation variant land in the report."""
    report = ablate.run_ablation(
        tmp_path / "tc", codecs=["token_collective"], jobs=1, variants=True, log=lambda *_: None
    )
    assert set(report["stages"]) == {
        "region_proxy/proposer_shapesref.py",
        "token_collective/quantizer_shapesref.py",
    }
    rows = report["codecs"]
    for name in (
        "token_collective",
        "token_collective [continuous]",
        "token_collective [discrete]",
    ):
        assert name in rows and f"{name} (no proposer)" in rows
        assert set(rows[name]["codec_metrics"]) == {
            "collective/precision",
            "collective/recall",
            "collective/iou",
        }
    from safetensors import safe_open

    config = Config.fromfile(
        str(tmp_path / "tc" / "work" / "token_collective__discrete_" / "ablate_config.py")
    )
    assert config.model.codec.perception == "discrete"
    with safe_open(str(Path(config.model.init_checkpoint) / "model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert any(n.startswith("proposers.") for n in names)
    assert any(n.startswith("codec.quantizer.") for n in names)
    assert (
        "`token_collective` metrics: collective/precision"
        in (tmp_path / "tc" / "report.md").read_text()
    )


def test_every_codec_fine_tunes_on_the_presets_conversations(small_preset, tmp_path):
    """The fine-tuning budget is a number of training conversations: every
    codec, whatever its batch, sees the same number, and a variant that
    changes the batch trains the iterations that make it up."""
    import shutil

    from unigrounding.ablate.configs import finetune_iters
    from unigrounding.codecs.catalog import registered_codecs

    full = ablate.PRESETS["full"]
    for name in registered_codecs():
        cfg = codec_config(ablate.config_dir(), name)
        conversations = finetune_iters(cfg, full) * cfg.train_dataloader.batch_size
        assert conversations == full["finetune_samples"], name
    configs = shutil.copytree(Path(ablate.__file__).parents[1] / "configs", tmp_path / "configs")
    with open(configs / "ablate" / "text_coords.py", "a") as f:
        f.write("\nablate_variants = {'batch 16': {'train_dataloader.batch_size': 16}}\n")
    report = ablate.run_ablation(
        tmp_path / "ab",
        codecs=["text_coords"],
        jobs=1,
        variants=True,
        config_dir_path=configs,
        log=lambda *_: None,
    )
    rows = report["codecs"]
    assert rows["text_coords"]["train_iters"] == 64 // 32
    assert rows["text_coords [batch 16]"]["train_iters"] == 64 // 16


def test_stage_chains_that_begin_another_run_inside_it():
    a, b, c = ("p.py",), ("p.py", "q.py"), ("r.py",)
    assert longest_chains({a, b, c, ()}) == {b, c}


@pytest.mark.parametrize("task", ["rec", "res"])
def test_task_switch_leaves_a_converting_wrappers_dataset_alone(task):
    """grid_offset's refinement conversations are built from RES samples: the
    ablation's task switch must not turn them into mask-less REC samples
    (which the wrapper passes through unchanged: no refinement data at all)."""
    cfg = codec_config(ablate.config_dir(), "grid_offset")
    apply_task(cfg, task)
    main_set, refine = cfg.train_dataloader.dataset.datasets
    assert refine.type == "GridOffsetRefineDataset"
    assert (main_set.task, refine.dataset.task) == (task, "res")
    # ablate_task_overrides: box corners are refined for REC, mask points for RES
    assert refine.box_fraction == {"rec": 1.0, "res": 0.0}[task]
    assert "ablate_task_overrides" not in cfg
    wrapped = Config(
        dict(
            train_dataloader=dict(dataset=dict(type="RepeatDataset", dataset=main_set)),
            test_dataloader=cfg.test_dataloader,
        )
    )
    apply_task(wrapped, "res")
    assert wrapped.train_dataloader.dataset.dataset.task == "res"  # a pass-through wrapper


def test_roundtrip_reports_evaluation_variants(small_preset, tmp_path):
    out = tmp_path / "rt.json"
    main(["roundtrip", "--codec", "token_collective", "--n", "8", "--out", str(out)])
    result = json.loads(out.read_text())
    for row in (result, result["no proposer"]):
        assert row["n"] > 0 and 0.0 <= row["box_iou_mean"] <= 1.0
        assert row["tokens_per_object_max"] >= row["tokens_per_object"] > 0


def test_ablate_res_takes_mask_codecs_and_scores_masks(small_preset, tmp_path):
    report = ablate.run_ablation(tmp_path / "res", task="res", log=lambda *_: None)
    from unigrounding.codecs.catalog import registered_codecs

    expected = {n for n, c in registered_codecs().items() if "mask" in c.units}
    assert "text_coords" not in expected and expected <= {
        n.split(" (")[0] for n in report["codecs"]
    }
    assert report["task"] == "res"
    base = report["baselines"]["center_box"]
    assert 0 < base["res_ciou"] < 1 and 0 < base["res_giou"] < 1
    for row in report["codecs"].values():
        assert row["res_ciou"] is not None and row["rec_acc@0.5"] is None
    assert "RES gIoU" in (tmp_path / "res" / "report.md").read_text()


def test_ablate_on_a_vlm_backbone_trains_every_stage_on_it(small_preset, tmp_path):
    """``--backbone qwen2_5_vl_tiny``: stage 0, the codecs' own stages (the
    proposer's and the visual tokenizer's, both under token_collective) and
    the fine-tuning all run on the Qwen2.5-VL miniature, loaded from its
    folder and fed its own frame; stage 0's export initialises the VLM's
    tower; the report names the backbone."""
    from mmengine.config import Config
    from safetensors.torch import load_file

    from unigrounding.engine.export import init_from_pretrained
    from unigrounding.registry import MODELS

    out = tmp_path / "q"
    argv = ["ablate", "--backbone", "qwen2_5_vl_tiny", "--codecs", "text_coords,token_collective"]
    main([*argv, "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    backbone = report["backbone"]
    assert backbone["name"] == "qwen2_5_vl_tiny" == report["settings"]["backbone"]
    assert json.loads((Path(backbone["folder"]) / "config.json").read_text())["model_type"] == (
        "qwen2_5_vl"
    )
    assert "Backbone `qwen2_5_vl_tiny`" in (out / "report.md").read_text()
    assert set(report["stages"]) == {
        "region_proxy/proposer_shapesref.py",
        "token_collective/quantizer_shapesref.py",
    }
    for name in ("text_coords", "token_collective"):
        assert 0.0 <= report["codecs"][name]["rec_acc@0.5"] <= 1.0
    (dumped,) = report["manifest"]["configs"]["text_coords"]  # one per seed
    (pretrained,) = report["pretrained"]
    cfg = Config.fromfile(dumped)
    assert cfg.model.vlm == {"pretrained": backbone["folder"]}
    assert not {"vision", "projector", "llm", "image_size"} & set(cfg.model)
    (pack,) = cfg.test_dataloader.dataset.pipeline
    assert pack.frame == "qwen2_5_vl" and "image_size" not in pack
    stage0 = Config.fromfile(str(Path(pretrained).parent / "shapesref_cells.py"))
    assert (
        stage0.model.vlm == cfg.model.vlm and stage0.train_dataloader.dataset.pipeline[0].cell == 28
    )
    # every tower weight stage 0 trained has its place in the grounding model
    model = MODELS.build(dict(cfg.model, init_checkpoint=None))
    loaded = init_from_pretrained(model, pretrained)
    trained = [
        k for k in load_file(str(Path(pretrained) / "model.safetensors")) if k[:7] == "vision."
    ]
    assert trained and not set(trained) & set(loaded["unexpected"])
    # a second run reuses the built folder and the cached stage 0
    logs = []
    ablate.run_ablation(
        tmp_path / "q2", codecs=["text_coords"], backbone="qwen2_5_vl_tiny", log=logs.append
    )
    assert any("reusing cached stage pretrain/" in line for line in logs)
    assert len(list((tmp_path / "cache").glob("backbone-*"))) == 1


def test_ablate_rejects_unknown_backbone(small_preset, tmp_path):
    from unigrounding.ablate.backbones import backbone_names
    from unigrounding.cli.main import BACKBONE_CHOICES

    assert tuple(backbone_names()) == BACKBONE_CHOICES  # the CLI's copy of the names
    with pytest.raises(ValueError, match="unknown backbone 'qwen'"):
        ablate.run_ablation(tmp_path / "x", backbone="qwen", log=lambda *_: None)


def test_ablate_rl_adds_grpo_rows_after_the_fine_tuning(small_preset, tmp_path):
    """``--rl``: text_coords' GRPO stage and grid_offset's offset stage run
    from each codec's fine-tuned export, each an extra row (and grid_offset's
    grid-only variant of it); other codecs are unchanged. A chain of stages
    runs in order, each from the last one's export."""
    import shutil

    from unigrounding.engine.export import exported_config

    # grid_offset in the paper's order: the grid stage, then the offset stage
    configs = shutil.copytree(Path(ablate.__file__).parents[1] / "configs", tmp_path / "configs")
    with open(configs / "ablate" / "grid_offset.py", "a") as f:
        f.write("\nablate_rl = ['grid_offset/grpo_grid_shapesref.py', *ablate_rl]\n")
    out = tmp_path / "ab"
    codecs = "text_coords,grid_offset,trp"
    main(["ablate", "--codecs", codecs, "--rl", "--out", str(out), "--config-dir", str(configs)])
    report = json.loads((out / "report.json").read_text())
    rows = report["codecs"]
    assert {"text_coords (GRPO)", "grid_offset (GRPO)", "grid_offset (GRPO, grid only)"} <= set(
        rows
    )
    assert not any(name.startswith("trp (GRPO") for name in rows)
    for name in ("text_coords (GRPO)", "grid_offset (GRPO)"):
        assert rows[name]["train_iters"] == 2 and rows[name]["eval_samples"] == 8
        assert rows[name]["rec_acc@0.5"] is not None
    work = out / "work"
    assert not (work / "text_coords" / "rl_1").exists()
    # the grid stage rolled out grid-only; the offset stage, from its export, refines
    assert exported_config(work / "grid_offset" / "rl_0" / "export")["codec"]["refine"] is False
    assert exported_config(work / "grid_offset" / "rl_1" / "export")["codec"]["refine"] is True
    (dumped,) = (work / "grid_offset" / "rl_1").glob("*/vis_data/config.py")
    assert Config.fromfile(str(dumped)).model.policy == str(
        work / "grid_offset" / "rl_0" / "export"
    )
    sft, rl = (
        load_file(str(work / "text_coords" / d / "export" / "llm" / "model.safetensors"))
        for d in (".", "rl_0")
    )
    assert any(not torch.equal(sft[k], rl[k]) for k in sft)  # the policy was trained
    assert "text_coords (GRPO)" in (out / "report.md").read_text()
    with pytest.raises(ValueError, match="--rl runs with task 'rec'"):
        ablate.run_ablation(tmp_path / "res", codecs=["grid_offset"], task="res", rl=True)


def test_ablate_rejects_unknown_task(small_preset, tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        ablate.run_ablation(tmp_path / "x", task="gcg", log=lambda *_: None)


def test_ablate_rejects_unknown_codec(small_preset, tmp_path):
    with pytest.raises(ValueError, match="unknown codec"):
        ablate.run_ablation(tmp_path / "x", codecs=["nope"], log=lambda *_: None)


def test_report_markdown_marks_missing_values():
    text = markdown(
        {
            "preset": "quick",
            "dataset": "shapesref",
            "backbone": {"name": "tiny", "summary": "assembled", "folder": None},
            "seconds": 1.0,
            "baselines": {"center_box": {"rec_acc@0.5": 0.1}},
            "codecs": {"c": {"rec_acc@0.5": 0.5, "res_ciou": None}},
        }
    )
    assert "| c | 0.500 |" in text and "n/a" in text


@pytest.mark.parametrize(("cuda", "cpus", "jobs"), [(False, 2, 2), (False, 1, 1), (True, 8, 1)])
def test_default_jobs_runs_two_codecs_at_once_only_on_multicore_cpu(monkeypatch, cuda, cpus, jobs):
    import os

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert ablate.default_jobs() == jobs


def test_a_pipe_closed_early_ends_quietly():
    """``unigrounding codecs | head``: the reader leaves before the output."""
    cmd = [sys.executable, "-m", "unigrounding.cli.main", "codecs"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait() == 0 and "Error" not in err, err[-2000:]


#: ``unigrounding ablate`` on two codecs with a fine-tuning budget that keeps
#: its workers training for hours
LONG_ABLATION = """
import sys
import unigrounding.ablate as ablate
from unigrounding.cli.main import main
ablate.PRESETS["quick"] = dict(
    pretrain_iters=2, finetune_samples=10**7, n_train=30, n_val=10, eval_samples=8
)
main(["ablate", "--codecs", "text_coords,trp", "--jobs", "2", "--out", sys.argv[1]])
"""


def _spawned_workers(parent: int) -> list[int]:
    """The multiprocessing workers ``parent`` has spawned (from /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue  # the process has just ended
        if ppid == parent and b"spawn_main" in cmdline:
            pids.append(int(stat.parent.name))
    return pids


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_terminated_ablation_stops_its_workers(tmp_path):
    """``kill`` (SIGTERM) on ``unigrounding ablate`` ends its fine-tuning
    workers too, instead of leaving them training without a parent."""
    import os
    import signal
    import time

    out = tmp_path / "out"
    env = {**os.environ, "UNIGROUNDING_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-c", LONG_ABLATION, str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    training = [out / "work" / codec / "progress.json" for codec in ("text_coords", "trp")]
    deadline = time.monotonic() + 300
    while not all(p.exists() for p in training):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the workers did not start training"
        time.sleep(0.5)
    workers = _spawned_workers(proc.pid)
    try:
        assert len(workers) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 30
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_running(pid) for pid in workers)
    finally:  # a failure here must not leave training processes behind
        for pid in [proc.pid, *workers]:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def test_version(capsys):
    import unigrounding

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"unigrounding {unigrounding.__version__}"


def test_data_check_lists_every_bad_record_of_every_dataset(shapes_root, tmp_path, capsys):
    """Datasets inside a ConcatDataset are checked one by one; a bad one lists
    all its bad records at once, and the command fails."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(shapes_root, root)
    refs = json.loads((root / "refs(shapesref).json").read_text())
    coco = json.loads((root / "instances.json").read_text())
    val_images = sorted({r["image_id"] for r in refs if r["split"] == "val"})
    images = {im["id"]: im for im in coco["images"]}
    missing, resized = images[val_images[0]], images[val_images[1]]
    (root / "images" / missing["file_name"]).unlink()
    resized["width"] += 3
    (root / "instances.json").write_text(json.dumps(coco))
    config = tmp_path / "config.py"
    config.write_text(
        f"_ds = dict(type='RefCOCODataset', data_root={str(root)!r}, "
        "refs_file='refs(shapesref).json', pipeline=[])\n"
        "train_dataloader = dict(dataset=dict(type='ConcatDataset', "
        "datasets=[dict(_ds, split='train'), dict(_ds, split='val')]))\n"
        "val_dataloader = dict(dataset=dict(_ds, split='val'))\n"
        "test_dataloader = val_dataloader\n"
    )
    with pytest.raises(SystemExit, match="1 of 2 datasets fail"):
        main(["data", "check", str(config)])
    out = capsys.readouterr().out
    assert "train_dataloader dataset 0: RefCOCODataset" in out and "records, valid" in out
    for ref in refs:
        if ref["image_id"] in (missing["id"], resized["id"]):
            assert f"(ref_id={ref['ref_id']}) sample {ref['ref_id']}-0: " in out
    assert f"image_path: image file not found: {root / 'images' / missing['file_name']}" in out
    h, w = resized["height"], resized["width"]
    assert f"ori_shape: image is {(h, w - 3)} (height, width), annotation says {(h, w)}" in out
    assert "val_dataloader dataset 0: as train_dataloader dataset 1" in out
    assert "test_dataloader dataset 0: as train_dataloader dataset 1" in out
    shutil.copy(shapes_root / "instances.json", root / "instances.json")
    shutil.copy(shapes_root / "images" / missing["file_name"], root / "images")
    main(["data", "check", str(config)])  # mended: no exit
    assert "dataset 1: RefCOCODataset" in capsys.readouterr().out


def test_live_view_shows_each_jobs_progress(tmp_path):
    from rich.console import Console

    from unigrounding.ablate.live import LiveView

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "progress.json").write_text(
        json.dumps(
            {"phase": "train", "iter": 5, "total": 10, "loss": 0.25, "elapsed_s": 65, "eta_s": 65}
        )  # fmt: skip
    )
    view = LiveView(
        {"text_coords": [tmp_path / "a" / "progress.json"], "trp": [tmp_path / "b.json"]}, "t"
    )
    view.update({"text_coords": "running"})
    console = Console(record=True, width=120)
    console.print(view.render())
    text = console.export_text()
    assert "0/2 jobs done" in text
    (row,) = [line for line in text.splitlines() if line.startswith("text_coords")]
    for part in ("running", "train", "5/10", "0.2500", "1:05"):
        assert part in row
    assert "waiting" in next(line for line in text.splitlines() if line.startswith("trp"))


def test_train_progress_bar_keeps_mmengine_lines_in_the_log_file(shapes_root, tmp_path, capsys):
    from test_training import tiny_train_cfg

    from unigrounding.engine.runner import train

    train(tiny_train_cfg(shapes_root, tmp_path / "run", 3, 3, 3), progress_bar=True)
    terminal = capsys.readouterr()
    assert "Iter(train)" not in terminal.out and "train: 100%" in terminal.err
    assert "3/3" in terminal.err
    (log,) = (tmp_path / "run").glob("*/*.log")
    assert "Iter(train)" in log.read_text()
    progress = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert progress["phase"] == "done"
