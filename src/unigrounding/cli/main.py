"""``unigrounding`` subcommands (DESIGN.md section 7)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

#: ``engine.runner.STRATEGIES``, written out: the parser is built before any
#: engine import (which loads torch, transformers and through them DeepSpeed,
#: whose import logs to stdout); a test checks the two agree
STRATEGY_CHOICES = ("ddp", "fsdp", "deepspeed")
#: ``ablate.backbones.backbone_names()``, written out for the same reason
BACKBONE_CHOICES = ("tiny", "qwen2_5_vl_tiny")


def _cmd_codecs(args: argparse.Namespace) -> None:
    from ..codecs.catalog import codec_catalog

    print(json.dumps(codec_catalog(), indent=2))


def _cmd_data_shapesref(args: argparse.Namespace) -> None:
    from ..data.shapesref import write_shapesref

    out = write_shapesref(args.out, seed=args.seed, n_train=args.n_train, n_val=args.n_val)
    print(f"ShapesRef written to {out}")


def _cmd_data_check(args: argparse.Namespace) -> None:
    """Build every dataset of the config's dataloaders with ``validate="error"``
    and print each one's verdict; exit non-zero if any has bad records or does
    not load."""
    from mmengine.registry import DefaultScope

    from ..ablate.configs import leaf_datasets
    from ..data import AnnotationError, GroundingDataset
    from ..engine.runner import load_config
    from ..registry import DATASETS, SCOPE

    cfg = load_config(args.config, cfg_options=args.cfg_options)
    seen: list[tuple[dict, str]] = []
    failed = 0
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(loader) is None:
            continue
        for i, leaf in enumerate(leaf_datasets(cfg[loader].dataset)):
            label = f"{loader} dataset {i}"
            same = next((name for other, name in seen if other == leaf), None)
            if same is not None:  # e.g. test_dataloader = val_dataloader
                print(f"{label}: as {same}")
                continue
            seen.append((leaf, label))
            leaf = leaf.to_dict()
            cls = DATASETS.get(leaf["type"])  # None: DATASETS.build names the unknown type
            validated = isinstance(cls, type) and issubclass(cls, GroundingDataset)
            if validated:
                leaf["validate"] = "error"  # whatever the config says: report every problem
            try:
                with DefaultScope.overwrite_default_scope(SCOPE):
                    dataset = DATASETS.build(leaf)
                dataset.full_init()  # a lazy_init dataset loads (and checks) here
            except (OSError, ValueError) as err:  # AnnotationError, GeometryError among them
                failed += 1
                problems = isinstance(err, AnnotationError) and err.problems
                print(f"{label}: {err}" if problems else f"{label}: does not load: {err}")
                continue
            verdict = "valid" if validated else "not checked (no GroundingDataset)"
            print(
                f"{label}: {type(dataset).__name__} ({dataset.data_root}): "
                f"{len(dataset)} records, {verdict}"
            )
    if failed:
        raise SystemExit(f"unigrounding data check: {failed} of {len(seen)} datasets fail")


def _cmd_train(args: argparse.Namespace) -> None:
    import torch.distributed as dist

    from ..engine.runner import train

    train(
        args.config,
        work_dir=args.work_dir,
        cfg_options=args.cfg_options,
        resume=args.resume,
        launcher=args.launcher,
        strategy=args.strategy,
        progress_bar=not args.verbose,
    )
    if dist.is_initialized():
        # mmengine leaves the process group open: a rank that exits while
        # another still writes its export sometimes aborts in gloo
        # ("terminate called without an active exception"), failing a run
        # that trained fine. All ranks finish, then the group closes, and the
        # process ends without the interpreter's teardown, where the abort
        # still came about once in tens of runs (everything is written and
        # flushed by then).
        dist.barrier()
        dist.destroy_process_group()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _cmd_plan(args: argparse.Namespace) -> None:
    import contextlib

    from ..engine.plan import plan

    # stdout carries the JSON alone: libraries imported on the way (DeepSpeed)
    # log to stdout
    with contextlib.redirect_stdout(sys.stderr):
        out = plan(
            args.config, gpus=args.gpus, strategy=args.strategy, text_tokens=args.text_tokens
        )
    print(json.dumps(out, indent=2))


def _cmd_eval(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from ..engine.evaluate import evaluate

    if args.launcher == "pytorch" and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")

    result = evaluate(
        args.config,
        checkpoint=args.checkpoint,
        predictions=args.predictions,
        predictions_format=args.format,
        frame=args.frame,
        pixels=tuple(int(v) for v in args.qwen_pixels.split(",")) if args.qwen_pixels else None,
        work_dir=args.work_dir,
        cfg_options=args.cfg_options,
        visualize=args.visualize,
    )
    if not result:  # a rank other than 0: rank 0 reports
        return
    _print_json(result, args.out)


def _print_json(result: dict, out: str | None) -> None:
    """``result`` as JSON on stdout, and in ``out`` if given."""
    text = json.dumps(result, indent=2)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    print(text)


def _cmd_ablate(args: argparse.Namespace) -> None:
    from ..ablate import run_ablation

    # SIGTERM (``kill``, a job scheduler) as an exception, so the ablation
    # stops its workers instead of leaving them training
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    codecs = args.codecs.split(",") if args.codecs else None
    run_ablation(
        args.out,
        preset=args.preset,
        codecs=codecs,
        config_dir_path=args.config_dir,
        task=args.task,
        backbone=args.backbone,
        jobs=args.jobs,
        variants=args.variants,
        seeds=args.seeds,
        reseed_pretraining=args.reseed_pretraining,
        live=not args.verbose,
        verbose=args.verbose,
        rl=args.rl,
    )


def _cmd_roundtrip(args: argparse.Namespace) -> None:
    from ..codec_ceiling import codec_roundtrip

    result = codec_roundtrip(args.codec, n=args.n, config_dir_path=args.config_dir)
    _print_json(result, args.out)


def _cmd_demo(args: argparse.Namespace) -> None:
    from ..api import load
    from ..data.pipeline import load_rgb
    from ..visualize import draw_refs

    model = load(args.checkpoint)
    refs = model.ground(args.image, args.query)
    draw_refs(load_rgb(args.image), refs, title=args.query).save(args.out)
    print(f"{len(refs)} region(s) for {args.query!r}: {refs.boxes.tolist()} -> {args.out}")


def _cmd_serve(args: argparse.Namespace) -> None:
    import importlib.util

    # before any export loads: gradio is the optional ``serve`` extra
    if importlib.util.find_spec("gradio") is None:
        raise SystemExit("unigrounding serve needs gradio: pip install 'unigrounding[serve]'")
    import torch

    from ..serve import serve

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    serve(args.checkpoint, host=args.host, port=args.port, device=device)


def _cmd_export_convert(args: argparse.Namespace) -> None:
    from ..engine.convert import convert_legacy_export

    out = convert_legacy_export(args.folder, args.out)
    print(f"converted {args.folder} -> {out} (unigrounding.json, safetensors, llm/)")


def _cmd_convert(args: argparse.Namespace) -> None:
    from ..data.refcoco import convert_refs_pickle

    out = convert_refs_pickle(args.refs, args.out)
    print(f"converted {args.refs} -> {out}")


def build_parser() -> argparse.ArgumentParser:
    from mmengine.config import DictAction

    from .. import __version__

    parser = argparse.ArgumentParser(prog="unigrounding", description=__doc__)
    parser.add_argument("--version", action="version", version=f"unigrounding {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("codecs", help="list registered codecs as JSON").set_defaults(func=_cmd_codecs)

    data = sub.add_parser("data", help="generate or check datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("shapesref", help="generate ShapesRef")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-val", type=int, default=200)
    p.set_defaults(func=_cmd_data_shapesref)
    p = data_sub.add_parser(
        "check",
        help="build every dataset of a config's dataloaders and list every bad record "
        "(missing or unreadable image, size mismatch, bad mask, box outside the image)",
    )
    p.add_argument("config")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE")
    p.set_defaults(func=_cmd_data_check)

    def add_cfg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--work-dir")
        p.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE")

    p = sub.add_parser("train", help="train from an mmengine config")
    p.add_argument("config")
    add_cfg(p)
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CHECKPOINT",
        help="continue from the work dir's latest checkpoint, or from CHECKPOINT (e.g. an "
        "earlier one when the latest cannot be read)",
    )
    p.add_argument("--launcher", default="none", choices=["none", "pytorch", "slurm", "mpi"])
    p.add_argument(
        "--strategy",
        choices=STRATEGY_CHOICES,
        help="ddp: a replica per process; fsdp: the model sharded (FSDP2); deepspeed: "
        "DeepSpeed ZeRO (stage 2 unless the config's deepspeed.zero_stage says). Default: "
        "the config's `strategy`, else ddp",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="mmengine's log lines on the terminal instead of a progress bar "
        "(the work dir's log file holds them either way)",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("plan", help="parameters and memory per GPU of a config (no weights read)")
    p.add_argument("config")
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--strategy", choices=STRATEGY_CHOICES)
    p.add_argument(
        "--text-tokens",
        type=int,
        help="text tokens per sample (default: the model's max_length, else 256)",
    )
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("eval", help="evaluate a checkpoint or a predictions file")
    p.add_argument("config")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="exported model dir, .safetensors or .pth")
    source.add_argument(
        "--predictions",
        help="JSON / JSON-lines predictions made elsewhere (see docs/evaluation.md)",
    )
    p.add_argument(
        "--format",
        default="unigrounding",
        help="predictions format: unigrounding (default), lmms-eval, qwen2.5-vl, qwen2-vl",
    )
    p.add_argument(
        "--frame",
        help="the answers' coordinate frame, if not the format's own: pixels, normalized, "
        "norm1000, padded_square, qwen2_5_vl (docs/evaluation.md)",
    )
    p.add_argument(
        "--qwen-pixels",
        metavar="MIN,MAX",
        help="Qwen2.5-VL's min_pixels,max_pixels for frame qwen2_5_vl "
        "(default: the released checkpoints' 3136,12845056)",
    )
    p.add_argument("--out", help="write the metrics JSON here too")
    p.add_argument(
        "--visualize", type=int, default=0, metavar="N", help="save the N worst and N best as PNGs"
    )
    p.add_argument(
        "--launcher",
        default="none",
        choices=["none", "pytorch"],
        help="pytorch: one process per GPU under torchrun, each predicting a share",
    )
    add_cfg(p)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("ablate", help="train + evaluate every codec on one backbone and budget")
    p.add_argument("--preset", default="quick", choices=["quick", "full"])
    p.add_argument("--codecs", help="comma-separated subset (default: all registered)")
    p.add_argument(
        "--task",
        default="rec",
        choices=["rec", "res"],
        help="rec: boxes, every codec; res: masks, the codecs that output them",
    )
    p.add_argument(
        "--backbone",
        default="tiny",
        choices=BACKBONE_CHOICES,
        help="tiny: the configs' assembled tower + projector + LLM; qwen2_5_vl_tiny: a "
        "random miniature of Qwen2.5-VL-Instruct loaded as a pretrained VLM folder "
        "(built into the cache once), its own input frame",
    )
    p.add_argument(
        "--jobs",
        type=int,
        help="codecs trained at once, one process each (default: 2 on a multi-core CPU, 1 on GPU)",
    )
    p.add_argument(
        "--variants",
        action="store_true",
        help="also train each codec's design variants (ablate_variants of its ablate config)",
    )
    p.add_argument(
        "--rl",
        action="store_true",
        help="after fine-tuning, run the RL (GRPO) stages of the codecs that have them "
        "(ablate_rl of their ablate config): extra rows '<codec> (GRPO)'",
    )
    p.add_argument(
        "--seeds",
        type=lambda text: [int(v) for v in text.split(",")],
        metavar="S[,S...]",
        help="train everything once per training seed (e.g. 0,1,2): means, per-seed values, "
        "95%% intervals and paired comparisons (default: the configs' seeds; the data stay "
        "the same)",
    )
    p.add_argument(
        "--reseed-pretraining",
        action="store_true",
        help="with --seeds, retrain stage 0 (the shared pretraining) under each seed too "
        "(default: stage 0 is trained once with its config's seed, like the released "
        "checkpoint a real study starts every run from)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="every job's mmengine log on the terminal instead of the live view "
        "(each job's work dir holds its log either way)",
    )
    p.add_argument("--out", default="work_dirs/ablate")
    p.add_argument("--config-dir", help="configs/ folder (default: the repository's)")
    p.set_defaults(func=_cmd_ablate)

    p = sub.add_parser("roundtrip", help="a codec's encode->decode accuracy ceiling")
    p.add_argument("--codec", required=True)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--out", help="also write the JSON report here (it is always printed)")
    p.add_argument("--config-dir")
    p.set_defaults(func=_cmd_roundtrip)

    p = sub.add_parser("demo", help="ground a query on an image and draw it")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--query", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "serve",
        help="a web demo (Gradio): upload an image, type an expression or click a box / point "
        "prompt; each export answers in its own column",
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        metavar="EXPORT",
        help="an export folder; repeat to compare several side by side",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("convert", help="convert a dataset file")
    p.add_argument("format", choices=["refcoco"])
    p.add_argument("refs", help="refs(<splitBy>).p (trusted: it is unpickled)")
    p.add_argument("--out", help="output JSON (default: beside the input)")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser(
        "export-convert",
        help="rewrite an export of unigrounding 0.1 (config.py) as data; RUNS its config.py",
    )
    p.add_argument("folder", help="the old export folder (trusted: its config.py is executed)")
    p.add_argument("--out", help="write the new export here (default: in place)")
    p.set_defaults(func=_cmd_export_convert)
    # on the parsers that run a command: a subcommand's default would overwrite
    # a value parsed by its parent (``data``)
    commands = [c for c in sub.choices.values() if c is not data] + list(data_sub.choices.values())
    for command in commands:
        command.add_argument(
            "--plugins",
            action="append",
            default=[],
            metavar="MODULE_OR_FILE",
            help="import a plugin first (a module importable from here, or a .py file; "
            "repeatable); installed plugins load by themselves",
        )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.plugins:
        from ..plugins.loading import PluginError, load_plugins, share_with_subprocesses

        share_with_subprocesses(args.plugins)  # ablate lanes, torchrun workers
        try:
            load_plugins()
        except PluginError as err:
            raise SystemExit(f"unigrounding: {err}") from err
    try:
        args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader closed the pipe (``unigrounding codecs | head``): end
        # quietly, and keep Python from failing again when it flushes at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    main(sys.argv[1:])
