"""A screenshot of the web demo (``unigrounding serve``) in headless Chromium.

    python benchmarks/serve_screenshot.py [--checkpoint EXPORT ...] [--out PNG]

Without ``--checkpoint`` it first trains tiny exports of ``--codecs``
(default ``text_coords,grid_offset``, ``--iters`` 200 each: a few minutes on
CPU; enough for answers in each codec's format, not for right ones) on a
tiny ShapesRef. It serves them side by side on a free local port, opens the
page in headless Chromium through Playwright, uploads a ShapesRef val image,
types its referent's expression, asks, then draws a box prompt (the referent's box) by
clicking its corners (one on the image, one on the prompt preview), asks again, and saves the page (``--out``, default
``work_dirs/serve/serve_screenshot.png``; the expression-only page beside it
as ``*_expression.png``). The PNGs are checked to render (not blank, the
answer images present) and their figures printed.

Needs the ``serve`` extra, ``pip install playwright`` and a Chromium
(``apt-get install chromium``, or ``playwright install chromium``; ``--chromium``
names the binary, default: the first of chromium / chromium-browser /
google-chrome on PATH, else Playwright's own). Without Playwright it falls
back to ``chromium --headless --screenshot`` of the page as loaded (its
examples list shows a box prompt; no click is made).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

VIEWPORT = {"width": 1500, "height": 1400}


def tiny_export(codec: str, root: Path, work: Path, iters: int) -> Path:
    """A tiny model of ``codec`` trained ``iters`` steps on the tiny ShapesRef at ``root``."""
    from mmengine.config import Config

    from unigrounding.engine.runner import train
    from unigrounding.testing import IMAGE_SIZE, tiny_model_cfg

    repo = Path(__file__).resolve().parents[1]
    base = Config.fromfile(str(repo / "configs" / "_base_" / "schedules" / "quick.py"))
    dataset = dict(
        type="ShapesRefDataset", data_root=str(root), seed=1, n_train=40, n_val=12, task="rec"
    )
    cfg = dict(base.to_dict())
    cfg.update(
        model=tiny_model_cfg(type=codec),
        work_dir=str(work),
        train_dataloader=dict(
            batch_size=4,
            num_workers=0,
            sampler=dict(type="InfiniteSampler", shuffle=True, seed=0),
            collate_fn=dict(type="grounding_collate"),
            dataset=dict(
                dataset,
                split="train",
                turns_per_sample=2,
                pipeline=[dict(type="PackGroundingSample", image_size=IMAGE_SIZE)],
            ),
        ),
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=10**6),
        val_dataloader=None,
        val_cfg=None,
        val_evaluator=None,
        test_dataloader=None,
        test_cfg=None,
        test_evaluator=None,
        param_scheduler=[
            dict(
                type="OneCycleLR",
                eta_max=2e-3,
                total_steps=iters,
                pct_start=0.2,
                by_epoch=False,
            )
        ],
    )
    cfg["default_hooks"]["checkpoint"] = dict(
        type="AtomicCheckpointHook", interval=iters, by_epoch=False, max_keep_ckpts=1
    )
    train(Config(cfg))
    return work / "export"


def first_val_ref(root: Path) -> tuple[Path, str, tuple[int, int, int, int]]:
    """The first val referent of the ShapesRef at ``root``: its image, its
    expression and its box (pixel edges, whole pixels)."""
    ref = next(
        r for r in json.loads((root / "refs(shapesref).json").read_text()) if r["split"] == "val"
    )
    instances = json.loads((root / "instances.json").read_text())
    ann = next(a for a in instances["annotations"] if a["id"] == ref["ann_id"])
    x, y, w, h = ann["bbox"]
    box = (int(x), int(y), int(np.ceil(x + w)), int(np.ceil(y + h)))
    return root / "images" / ref["file_name"], ref["sentences"][0]["sent"], box


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def chromium_binary(name: str | None) -> str | None:
    if name:
        return name
    for candidate in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(candidate):
            return shutil.which(candidate)
    return None


def render_check(png: Path, answers: int) -> dict:
    """Figures that tell a rendered page from a blank one."""
    page = np.asarray(Image.open(png).convert("RGB"))
    colours = len(np.unique(page.reshape(-1, 3), axis=0))
    figures = {
        "png": str(png),
        "size": [page.shape[1], page.shape[0]],
        "colours": colours,
        "std": round(float(page.std()), 1),
        "answer_images": answers,
    }
    if colours < 50 or page.std() < 10:
        raise SystemExit(f"{png} looks blank: {figures}")
    return figures


def click_at(page, picture, fx: float, fy: float) -> None:
    """Click an ``<img>`` at fraction ``(fx, fy)`` of its picture, placed as
    Gradio places it (``object-fit: contain``, never enlarged). Chromium
    gives a mouse event whole CSS pixels, so the click goes to the whole
    pixel nearest the aim: Gradio's rounded position is then the aimed one."""
    picture.scroll_into_view_if_needed()
    frame = picture.bounding_box()
    natural = picture.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    scale = min(frame["width"] / natural[0], frame["height"] / natural[1], 1)
    x = frame["x"] + (frame["width"] - natural[0] * scale) / 2 + fx * natural[0] * scale
    y = frame["y"] + (frame["height"] - natural[1] * scale) / 2 + fy * natural[1] * scale
    page.mouse.click(math.ceil(x - 0.5), math.ceil(y - 0.5))


def with_playwright(
    url: str, image: Path, expression: str, box: tuple, out: Path, browser: str | None
) -> list:
    from playwright.sync_api import sync_playwright

    shown = []
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=browser, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = chromium.new_page(viewport=VIEWPORT)
        page.goto(url, wait_until="networkidle")
        page.locator("#image input[type=file]").set_input_files(str(image))
        page.locator("#image img").first.wait_for(state="visible", timeout=30_000)
        page.locator("#preview img").first.wait_for(state="visible", timeout=30_000)

        def ask() -> int:
            """Press Ground and wait until every answer column shows a new drawing."""
            before = page.locator("[id^=answer-] img").evaluate_all("e => e.map(i => i.src)")
            page.locator("#ground").click()
            page.wait_for_function(
                """before => {
                    const now = [...document.querySelectorAll('[id^=answer-] img')];
                    return now.length >= document.querySelectorAll('[id^=answer-]').length
                        && now.every(i => i.complete && i.naturalWidth > 0
                                          && !before.includes(i.src));
                }""",
                arg=before,
                timeout=120_000,
            )
            page.wait_for_timeout(500)  # the text and JSON land with the images
            return page.locator("[id^=answer-] img").count()

        page.locator("#expression textarea").fill(expression)
        n = ask()
        first = out.with_name(out.stem + "_expression.png")
        page.screenshot(path=str(first), full_page=True)
        shown.append((first, n))

        # the box prompt: its first corner clicked on the image, the opposite
        # one on the preview (each click lands on the pixel corner it aims at)
        width, height = Image.open(image).size
        before = page.locator("#preview img").first.get_attribute("src")
        click_at(page, page.locator("#image img").first, box[0] / width, box[1] / height)
        page.wait_for_function(
            """before => {
                const shown = document.querySelector('#preview img');
                return document.querySelector('#prompt textarea').value.split(',').length == 2
                    && shown && shown.src != before && shown.complete && shown.naturalWidth > 0;
            }""",
            arg=before,
        )
        click_at(page, page.locator("#preview img").first, box[2] / width, box[3] / height)
        page.wait_for_function(
            "() => document.querySelector('#prompt textarea').value.split(',').length == 4"
        )
        prompt = page.locator("#prompt textarea").input_value()
        print(f"prompt after two clicks: {prompt!r} (aimed at {list(box)})")
        if prompt != ",".join(str(v) for v in box):
            raise SystemExit(f"the clicks gave the prompt {prompt!r}, not the box {list(box)}")
        page.wait_for_timeout(700)  # the preview redraws
        page.locator("#expression textarea").fill("")
        n = ask()
        page.screenshot(path=str(out), full_page=True)
        shown.append((out, n))
        chromium.close()
    return shown


def with_chromium_cli(url: str, out: Path, browser: str) -> list:
    size = f"{VIEWPORT['width']},{VIEWPORT['height']}"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={size}", "--virtual-time-budget=15000", f"--screenshot={out}", url],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return [(out, 0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", default=[], metavar="EXPORT")
    parser.add_argument("--codecs", default="text_coords,grid_offset")
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--out", default="work_dirs/serve/serve_screenshot.png")
    parser.add_argument("--chromium", help="the Chromium binary (default: found on PATH)")
    args = parser.parse_args()

    from unigrounding.serve import build_app, format_prompt, load_exports
    from unigrounding.structures import Box
    from unigrounding.testing import tiny_shapesref

    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = tiny_shapesref(Path(tmp) / "data")
        exports = [Path(e) for e in args.checkpoint]
        for codec in [] if exports else args.codecs.split(","):
            start = time.time()
            exports.append(tiny_export(codec, root, Path(tmp) / codec, args.iters))
            print(f"trained {codec} for {args.iters} iterations in {time.time() - start:.0f} s")
        image, expression, box = first_val_ref(root)
        served = load_exports(exports)
        app = build_app(served, examples=[[str(image), "", format_prompt(Box(*box))]])
        port = free_port()
        app.queue().launch(
            server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True
        )
        url = f"http://127.0.0.1:{port}/"
        browser = chromium_binary(args.chromium)
        try:
            try:
                import playwright  # noqa: F401
            except ImportError:
                if browser is None:
                    raise SystemExit("neither Playwright nor a Chromium binary found") from None
                print("Playwright is not installed: a plain screenshot, no box drawn")
                shown = with_chromium_cli(url, out, browser)
            else:
                shown = with_playwright(url, image, expression, box, out, browser)
        finally:
            app.close()
    for png, answers in shown:
        print(json.dumps(render_check(png, answers)))
    print(f"columns: {[s.label for s in served]}")


if __name__ == "__main__":
    sys.exit(main())
