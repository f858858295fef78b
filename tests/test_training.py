"""Training through mmengine: train, export, load, resume exactly, DDP on CPU."""

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import IMAGE_SIZE, free_port, make_dataset, tiny_model_cfg
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from safetensors.torch import load_file

from unigrounding.engine.runner import train

REPO = Path(__file__).resolve().parents[1]


def tiny_train_cfg(
    root: Path, work_dir: Path, max_iters: int, total_steps: int, interval: int
) -> Config:
    base = Config.fromfile(str(REPO / "configs" / "_base_" / "schedules" / "quick.py"))
    dataset = dict(
        type="ShapesRefDataset", data_root=str(root), seed=1, n_train=40, n_val=12, task="rec"
    )
    pipeline = [dict(type="PackGroundingSample", image_size=IMAGE_SIZE)]
    cfg = dict(base.to_dict())
    cfg.update(
        model=tiny_model_cfg(type="text_coords"),
        work_dir=str(work_dir),
        train_dataloader=dict(
            batch_size=4, num_workers=0, sampler=dict(type="InfiniteSampler", shuffle=True, seed=0),
            collate_fn=dict(type="grounding_collate"),
            dataset=dict(dataset, split="train", turns_per_sample=2, pipeline=pipeline),
        ),
        val_dataloader=dict(
            batch_size=6, num_workers=0, sampler=dict(type="DefaultSampler", shuffle=False),
            collate_fn=dict(type="grounding_collate"),
            dataset=dict(dataset, split="val", max_samples=6, pipeline=pipeline),
        ),
        val_evaluator=[dict(type="RECMetric")],
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=10**6),
        param_scheduler=[dict(type="OneCycleLR", eta_max=2e-3, total_steps=total_steps, pct_start=0.2, by_epoch=False)],
        randomness=dict(seed=0),
    )  # fmt: skip
    cfg["default_hooks"]["checkpoint"] = dict(
        type="AtomicCheckpointHook", interval=interval, by_epoch=False
    )
    cfg["default_hooks"]["logger"] = dict(type="LoggerHook", interval=1)
    cfg["test_dataloader"], cfg["test_evaluator"] = cfg["val_dataloader"], cfg["val_evaluator"]
    return Config(cfg)


def _weights(work_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(work_dir / "export" / "model.safetensors"))


def test_train_exports_safetensors_and_loads_through_the_api(shapes_root, tmp_path):
    import unigrounding as ug

    runner = train(tiny_train_cfg(shapes_root, tmp_path / "run", 3, 3, 3))
    export = tmp_path / "run" / "export"
    assert (export / "model.safetensors").exists() and (export / "unigrounding.json").exists()
    assert (export / "llm" / "config.json").exists() and not (export / "config.py").exists()
    assert runner.iter == 3
    # every runner part is built in our scope's registries: no scope fallback warnings
    (log,) = (tmp_path / "run").glob("*/*.log")
    assert "Iter(train)" in log.read_text() and "Failed to search registry" not in log.read_text()
    model = ug.load(export)
    image = shapes_root / "images" / "val_000040.png"
    refs = model.ground(image, "the red circle")
    assert isinstance(refs, ug.RefTargets)
    text, _ = model.chat(image, "What is {prompt:0}?", prompts=[ug.Box(1, 2, 20, 30)])
    assert isinstance(text, str)
    from PIL import Image

    from unigrounding.cli.main import main
    from unigrounding.visualize import output_size

    png = tmp_path / "demo.png"
    main(
        [
            "demo",
            "--checkpoint",
            str(export),
            "--image",
            str(image),
            "--query",
            "the red circle",
            "--out",
            str(png),
        ]
    )
    # drawn at the scaled size (a title bar may add to the height)
    assert Image.open(png).size[0] == output_size(*Image.open(image).size)[0]


class Interrupted(Exception):
    pass


@HOOKS.register_module(force=True)
class InterruptAfter(Hook):
    """Kills training after iteration ``n`` (after the checkpoint hook has run)."""

    priority = "LOWEST"

    def __init__(self, n: int) -> None:
        self.n = n

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.n:
            raise Interrupted


def test_resume_continues_exactly(shapes_root, tmp_path):
    straight = tmp_path / "straight"
    train(tiny_train_cfg(shapes_root, straight, 6, 6, 3))
    interrupted = tmp_path / "interrupted"
    cfg = tiny_train_cfg(shapes_root, interrupted, 6, 6, 3)
    cfg.custom_hooks = [*cfg.custom_hooks, dict(type="InterruptAfter", n=3)]
    with pytest.raises(Interrupted):
        train(cfg)
    assert (interrupted / "iter_3.pth").exists() and not (interrupted / "export").exists()
    runner = train(tiny_train_cfg(shapes_root, interrupted, 6, 6, 3), resume=True)
    assert runner.iter == 6
    a, b = _weights(straight), _weights(interrupted)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_resume_loads_with_torch_weights_only_default(shapes_root, tmp_path):
    train(tiny_train_cfg(shapes_root, tmp_path / "run", 2, 2, 2))
    ckpt = torch.load(tmp_path / "run" / "iter_2.pth", map_location="cpu")  # weights_only=True
    assert ckpt["meta"]["iter"] == 2 and "message_hub" in ckpt


def _shown(err: BaseException) -> str:
    """Every message a traceback of ``err`` shows (its causes and contexts)."""
    text = ""
    while err is not None:
        text += f"{err}\n"
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)
    return text


def test_resume_from_a_truncated_latest_checkpoint_names_it_and_the_earlier_one(
    shapes_root, tmp_path
):
    """No zip error and no silent fallback: the error names the cut file and
    the checkpoint to continue from, and ``--resume PATH`` continues from it."""
    from unigrounding.cli.main import main
    from unigrounding.engine import CheckpointError

    work = tmp_path / "run"
    cfg = tiny_train_cfg(shapes_root, work, 4, 4, 2)
    train(cfg)
    latest, earlier = work / "iter_4.pth", work / "iter_2.pth"
    assert (work / "last_checkpoint").read_text() == str(latest)
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    with pytest.raises(CheckpointError) as err:
        train(cfg, resume=True)
    message = _shown(err.value)
    assert f"the latest checkpoint {latest}" in message and "is truncated" in message
    assert f"--resume {earlier}" in message and "zip archive" not in message
    cfg_file = tmp_path / "cfg.py"
    cfg.dump(str(cfg_file))
    main(["train", str(cfg_file), "--resume", str(earlier)])
    assert torch.load(latest, map_location="cpu")["meta"]["iter"] == 4  # rewritten whole


class Pickled:
    """A class a crafted checkpoint could make loading import and call."""


@pytest.mark.parametrize("content", ["random bytes", "custom class"])
def test_an_unreadable_checkpoint_is_refused_with_its_name(shapes_root, tmp_path, content):
    """Through ``--resume PATH`` and through ``eval --checkpoint``'s .pth
    loader alike; never with torch's advice to load with weights_only=False."""
    from unigrounding.engine import CheckpointError, load_weights

    bad = tmp_path / "bad.pth"
    if content == "random bytes":
        bad.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(4096)))
        expected = "is not a PyTorch checkpoint"
    else:
        torch.save({"meta": {"iter": 1}, "state_dict": {}, "payload": Pickled()}, bad)
        expected = "was refused: it pickles `test_training.Pickled`"
    cfg = tiny_train_cfg(shapes_root, tmp_path / "run", 2, 2, 2)
    for load in (lambda: train(cfg, resume=bad), lambda: load_weights(torch.nn.Linear(1, 1), bad)):
        with pytest.raises(CheckpointError) as err:
            load()
        message = _shown(err.value)
        assert f"checkpoint {bad} {expected}" in message
        assert "weights_only" not in message


def test_a_cut_safetensors_file_is_named(tmp_path):
    """``eval --checkpoint`` / ``init_checkpoint`` with a .safetensors file."""
    from safetensors.torch import save_file

    from unigrounding.engine import CheckpointError, load_weights

    file = tmp_path / "model.safetensors"
    save_file({"weight": torch.ones(1, 1), "bias": torch.ones(1)}, str(file))
    file.write_bytes(file.read_bytes()[:-4])
    with pytest.raises(CheckpointError, match=re.escape(f"{file} is not a readable safetensors")):
        load_weights(torch.nn.Linear(1, 1), file)


@HOOKS.register_module(force=True)
class FailSaveAt(Hook):
    """Fails the save of the checkpoint of iteration ``n``, as a crash would."""

    def __init__(self, n: int) -> None:
        self.n = n

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if checkpoint["meta"]["iter"] == self.n:
            raise Interrupted


def test_a_save_cut_short_leaves_the_only_kept_checkpoint_the_latest(shapes_root, tmp_path):
    """``max_keep_ckpts=1``: mmengine would remove the checkpoint of 2 before
    writing that of 4; here it is removed only once that of 4 is complete."""
    work = tmp_path / "run"
    cfg = tiny_train_cfg(shapes_root, work, 4, 4, 2)
    cfg.default_hooks.checkpoint.max_keep_ckpts = 1
    cfg.custom_hooks = [*cfg.custom_hooks, dict(type="FailSaveAt", n=4)]
    with pytest.raises(Interrupted):
        train(cfg)
    assert sorted(p.name for p in work.glob("*.pth")) == ["iter_2.pth"]
    assert (work / "last_checkpoint").read_text() == str(work / "iter_2.pth")
    cfg.custom_hooks = cfg.custom_hooks[:-1]
    assert train(cfg, resume=True).iter == 4
    assert sorted(p.name for p in work.glob("*.pth")) == ["iter_4.pth"]
    assert not (work / ".partial").exists()


@HOOKS.register_module(force=True)
class MoveAfter(Hook):
    """Moves ``source`` to ``target`` after iteration ``n``, as a file gone
    from a disk mid-run."""

    priority = "LOWEST"

    def __init__(self, n: int, source: str, target: str) -> None:
        self.n, self.source, self.target = n, source, target

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.n:
            os.rename(self.source, self.target)


def test_a_sample_failing_mid_run_stops_with_a_checkpoint_that_resumes_exactly(
    shapes_root, tmp_path
):
    """``validate="off"``: the images gone after iteration 3 (the last interval
    checkpoint is of 2), the next batch's first sample stops the run with the
    checkpoint of 3, named with the file; once the images are back, --resume
    continues from 3 as if the run had never stopped."""
    from unigrounding.data import SampleError

    root = tmp_path / "data"
    shutil.copytree(shapes_root, root)
    straight = tmp_path / "straight"
    train(tiny_train_cfg(root, straight, 4, 4, 2))
    work, images, hidden = tmp_path / "stopped", root / "images", tmp_path / "hidden"
    cfg = tiny_train_cfg(root, work, 4, 4, 2)
    cfg.train_dataloader.dataset.validate = "off"
    moving = dict(type="MoveAfter", n=3, source=str(images), target=str(hidden))
    cfg.custom_hooks = [*cfg.custom_hooks, moving]
    with pytest.raises(SampleError) as err:
        train(cfg)
    message, checkpoint = str(err.value), work / "iter_3.pth"
    assert re.search(
        rf"ShapesRefDataset \({re.escape(str(root))}\) item \d+: .* sample \S+: "
        rf"image file not found: {re.escape(str(images))}/train_\d+\.png",
        message,
    )
    assert f"after 3 iterations, saved in {checkpoint}." in message
    assert message.endswith(f"--resume {checkpoint}")
    assert torch.load(checkpoint, map_location="cpu")["meta"]["iter"] == 3
    assert (work / "last_checkpoint").read_text() == str(checkpoint)
    hidden.rename(images)
    cfg.custom_hooks = cfg.custom_hooks[:-1]
    assert train(cfg, resume=True).iter == 4
    a, b = _weights(straight), _weights(work)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_a_sample_failing_in_the_first_batch_stops_with_no_checkpoint(shapes_root, tmp_path):
    """Nothing trained, nothing saved: the error says so (and names the file)."""
    from unigrounding.data import SampleError

    root = tmp_path / "data"
    shutil.copytree(shapes_root, root)
    work = tmp_path / "run"
    cfg = tiny_train_cfg(root, work, 2, 2, 2)
    cfg.train_dataloader.dataset.validate = "off"  # else the dataset's check stops the run
    for image in (root / "images").glob("train_*.png"):
        image.unlink()
    with pytest.raises(SampleError) as err:
        train(cfg)
    message = str(err.value)
    assert f"image file not found: {root / 'images'}/train_" in message
    assert "after 0 iterations, with no checkpoint of them (no iteration had completed)" in message
    assert message.endswith("then train again") and not list(work.glob("*.pth"))


@pytest.mark.slow
def test_two_process_ddp_training_on_cpu(shapes_root, tmp_path):
    cfg = tiny_train_cfg(shapes_root, tmp_path / "ddp", 2, 2, 2)
    cfg_file = tmp_path / "ddp.py"
    cfg.dump(str(cfg_file))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    port = free_port()
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
        "-m", "unigrounding.cli.main", "train", str(cfg_file), "--launcher", "pytorch",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "ddp" / "export" / "model.safetensors").exists()
    logs = list((tmp_path / "ddp").rglob("*.log"))
    assert logs
    text = logs[0].read_text()
    assert "Distributed training: True" in text and "GPU number: 2" in text  # the world size
    # eval of the export in two processes: each predicts a share, rank 0
    # scores all of them, as one process does
    from unigrounding.engine.evaluate import evaluate

    export = str(tmp_path / "ddp" / "export")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
        "-m", "unigrounding.cli.main", "eval", str(cfg_file), "--checkpoint", export,
        "--launcher", "pytorch", "--work-dir", str(tmp_path / "eval2"), "--out", str(tmp_path / "e2.json"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "e2.json").read_text())
    one = evaluate(str(cfg_file), checkpoint=export, work_dir=str(tmp_path / "eval1"))
    timing = {"rec/decode_ms_per_object"}
    scores = {k: v for k, v in two["metrics"].items() if k not in timing}
    assert scores == {k: v for k, v in one["metrics"].items() if k not in timing}
    assert two["metrics"]["rec/n"] == 6
    assert (tmp_path / "eval2" / "predictions.jsonl").read_text() == (
        tmp_path / "eval1" / "predictions.jsonl"
    ).read_text()


def test_eval_cli_writes_metrics_and_protocol(shapes_root, tmp_path):
    from unigrounding.cli.main import main

    cfg = tiny_train_cfg(shapes_root, tmp_path / "run", 2, 2, 2)
    train(cfg)
    cfg_file = tmp_path / "cfg.py"
    cfg.dump(str(cfg_file))
    out = tmp_path / "eval.json"
    main(
        [
            "eval",
            str(cfg_file),
            "--checkpoint",
            str(tmp_path / "run" / "export"),
            "--out",
            str(out),
            "--work-dir",
            str(tmp_path / "eval"),
        ]
    )
    result = json.loads(out.read_text())
    assert {"rec/acc@0.5", "rec/miou", "rec/parse_failures"} <= set(result["metrics"])
    assert result["protocol"]["rec_hit"].startswith("IoU >=")


def test_eval_predictions_file_scores_like_the_checkpoint_and_visualizes(shapes_root, tmp_path):
    """The checkpoint's own predictions.jsonl, scored as a foreign predictions
    file, gives the same metrics; --visualize writes the worst and best PNGs."""
    from unigrounding.cli.main import main

    cfg = tiny_train_cfg(shapes_root, tmp_path / "run", 2, 2, 2)
    train(cfg)
    cfg_file = tmp_path / "cfg.py"
    cfg.dump(str(cfg_file))
    base = ["eval", str(cfg_file), "--work-dir", str(tmp_path / "eval")]
    main(
        [
            *base,
            "--checkpoint",
            str(tmp_path / "run" / "export"),
            "--out",
            str(tmp_path / "a.json"),
            "--visualize",
            "2",
        ]
    )
    own = json.loads((tmp_path / "a.json").read_text())
    pngs = sorted(Path(p).name for p in own["visualizations"])
    assert len(pngs) == 4 and sum(n.startswith("worst") for n in pngs) == 2
    preds = tmp_path / "eval" / "predictions.jsonl"
    lines = preds.read_text().splitlines()
    assert len(lines) == own["metrics"]["rec/n"]
    main([*base, "--predictions", str(preds), "--out", str(tmp_path / "b.json")])
    foreign = json.loads((tmp_path / "b.json").read_text())
    for key in ("rec/acc@0.5", "rec/miou", "rec/missing"):
        assert foreign["metrics"][key] == pytest.approx(own["metrics"][key])
    assert foreign["unmatched_samples"] == 0
    # a dropped record is a counted miss; a record for no test sample is an error
    (tmp_path / "partial.jsonl").write_text("\n".join(lines[1:]))
    main(
        [*base, "--predictions", str(tmp_path / "partial.jsonl"), "--out", str(tmp_path / "c.json")]
    )
    assert json.loads((tmp_path / "c.json").read_text())["unmatched_samples"] == 1
    (tmp_path / "stray.jsonl").write_text('{"sample_id": "nope", "boxes": []}\n')
    with pytest.raises(ValueError, match="names no test sample"):
        main([*base, "--predictions", str(tmp_path / "stray.jsonl")])
    (tmp_path / "broken.jsonl").write_text('{"sample_id": "x"}\n')
    with pytest.raises(ValueError, match="broken.jsonl record 0: needs 'sample_id' and 'boxes'"):
        main([*base, "--predictions", str(tmp_path / "broken.jsonl")])


def test_gres_eval_on_shapesref_predictions_file(shapes_root, tmp_path):
    """The gRES config's data and metric end to end through `eval --predictions`:
    the ground truth as predictions scores 1 everywhere; predicting nothing
    scores N-acc 1 and T-acc 0."""
    from unigrounding.cli.main import main
    from unigrounding.structures import rle_encode

    cfg = Config.fromfile(
        str(Path(__file__).resolve().parents[1] / "configs/gnd_query/gres_shapesref.py")
    )
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.update(data_root=str(shapes_root), n_train=40, n_val=12, seed=1, max_samples=None)
    cfg.dump(str(tmp_path / "gres.py"))
    dataset = make_dataset(shapes_root, task="gres")
    records, empty = [], []
    for i in range(len(dataset)):
        s = dataset[i]["data_samples"]
        gt = s.gt_refs
        masks = [rle_encode(m.numpy()) for m in gt.masks] if len(gt) else []
        records.append({"sample_id": s.sample_id, "boxes": gt.boxes.tolist(), "masks": masks})
        empty.append({"sample_id": s.sample_id, "boxes": []})
    assert any(not r["boxes"] for r in records) and any(r["boxes"] for r in records)
    for name, recs in (("perfect", records), ("empty", empty)):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in recs))
        main(
            [
                "eval",
                str(tmp_path / "gres.py"),
                "--predictions",
                str(tmp_path / f"{name}.jsonl"),
                "--out",
                str(tmp_path / f"{name}.json"),
                "--work-dir",
                str(tmp_path / "w"),
            ]
        )
    perfect = json.loads((tmp_path / "perfect.json").read_text())["metrics"]
    assert perfect["gres/ciou"] == 1.0 and perfect["gres/giou"] == 1.0
    assert perfect["gres/n_acc"] == 1.0 and perfect["gres/t_acc"] == 1.0
    nothing = json.loads((tmp_path / "empty.json").read_text())["metrics"]
    assert (
        nothing["gres/n_acc"] == 1.0
        and nothing["gres/t_acc"] == 0.0
        and nothing["gres/ciou"] == 0.0
    )


def test_interactive_segmentation_on_shapesref_scores_each_prompt_type(shapes_root, tmp_path):
    """The interactive config's data (prompts rotating over point / box /
    scribble / mask) and metric end to end through `eval --predictions`."""
    from unigrounding.cli.main import main
    from unigrounding.structures import rle_encode

    cfg = Config.fromfile(
        str(Path(__file__).resolve().parents[1] / "configs/gnd_query/interactive_shapesref.py")
    )
    cfg.test_dataloader.dataset.update(
        data_root=str(shapes_root), n_train=40, n_val=12, seed=1, max_samples=None
    )
    cfg.dump(str(tmp_path / "interactive.py"))
    dataset = make_dataset(shapes_root, task="interactive")
    records = []
    for i in range(len(dataset)):
        s = dataset[i]["data_samples"]
        keep = s.prompt_refs.units[0] != "point"  # points predicted empty, the rest perfect
        masks = [rle_encode(m.numpy()) for m in s.gt_refs.masks] if keep else []
        records.append(
            {
                "sample_id": s.sample_id,
                "boxes": s.gt_refs.boxes.tolist() if keep else [],
                "masks": masks,
            }
        )
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    main(
        [
            "eval",
            str(tmp_path / "interactive.py"),
            "--predictions",
            str(tmp_path / "p.jsonl"),
            "--out",
            str(tmp_path / "m.json"),
            "--work-dir",
            str(tmp_path / "w"),
        ]
    )
    metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert metrics["interactive/point/giou"] == 0.0
    for unit in ("box", "scribble", "mask"):
        assert metrics[f"interactive/{unit}/giou"] == 1.0, unit


def test_a_stage_that_freezes_the_llm_trains_only_what_it_names(shapes_root, tmp_path):
    """LLaVA-style alignment: the LLM and the tower frozen, the projector
    trained at its own learning rate (mmengine ``paramwise_cfg``)."""
    cfg = tiny_train_cfg(shapes_root, tmp_path / "align", 3, 3, 3)
    cfg.model.frozen = ("llm.*", "vision.*")
    cfg.optim_wrapper.paramwise_cfg = dict(custom_keys={"projector": dict(lr_mult=10.0)})
    # a schedule that scales each group's own rate (OneCycleLR's one eta_max
    # would set every group to the same peak)
    cfg.param_scheduler = [dict(type="ConstantLR", factor=1.0, by_epoch=False)]
    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    before = {k: v.detach().clone() for k, v in runner.model.named_parameters()}
    runner.train()
    after = dict(runner.model.named_parameters())
    frozen = [k for k in before if k.startswith(("llm.", "vision."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    moved = [
        k for k in before if k.startswith("projector.") and not torch.equal(before[k], after[k])
    ]
    assert moved
    groups = runner.optim_wrapper.optimizer.param_groups
    projector = {id(p) for p in runner.model.projector.parameters()}
    base = cfg.optim_wrapper.optimizer.lr
    for g in groups:
        owned = any(id(p) in projector for p in g["params"])
        assert g["lr"] == pytest.approx(10 * base if owned else base)


def test_a_freeze_pattern_that_matches_nothing_is_an_error():
    from conftest import tiny_model_cfg

    from unigrounding.registry import MODELS

    with pytest.raises(ValueError, match="'lmm.\\*' matches no parameter"):
        MODELS.build({**tiny_model_cfg(), "frozen": ("lmm.*",)})
