"""``unigrounding serve``: a Gradio web demo of one export or several side by side.

Upload an image, type a referring expression or click a box / point prompt
onto it, and every export answers in its own column, headed by its codec's
name: the image with the answer's boxes and masks drawn (the prompt outlined
in green), the raw answer text, and the regions as JSON. Several exports of one
backbone make the codec comparison visible on any image.

Prompts are clicked, not painted: a click on the image, or on the larger
prompt preview beside it (small images show at their own size in the upload
field), puts a point there; a second click makes the box with the two clicks
as opposite corners; a third starts over with a point. Clicks snap to the
nearest pixel corner. The prompt lives in a plain text field (``x,y`` or
``x1,y1,x2,y2``, original-image pixels), which can be typed or pasted as
well, and is what the HTTP API takes. Clicks (``Image.select``) work the same
in every Gradio version and give image positions, where a painted brush layer
(``ImageEditor``) would have to be turned into a box, and its value format
has changed between versions.

Everything but the page is plain functions, usable without a browser or
gradio: :func:`load_exports`, :func:`parse_prompt`, :func:`click_prompt`,
:func:`prompt_preview` and :func:`answer`. :func:`build_app` wires them into
a ``gradio.Blocks``; gradio (the ``serve`` extra) is imported only there.
"""

# no ``from __future__ import annotations``: gradio finds the ``gr.SelectData``
# parameter of a click handler by its annotation, which must be the class

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from .api import Grounder, load
from .data.pipeline import load_rgb
from .data.tasks import TASK_TEMPLATES
from .engine.export import read_export_config
from .structures import Box, Point, RefTargets
from .visualize import draw_refs, output_size

#: the question asked about a prompt when no expression is typed
REGION_QUESTION = TASK_TEMPLATES["reg"][0]
PROMPT_SLOT = "{prompt:0}"
HELP = f"""\
**Expression** alone: each model is asked *Where is &lt;expression&gt;?* and draws
what it finds. **Prompt**: click the image or, larger, the preview once for
a point, twice for a box (the two clicks are its opposite corners); a third
click starts again. With a prompt, the expression is a question about it: write
`{PROMPT_SLOT}` where the region goes (*Segment {PROMPT_SLOT}.*); without it,
the prompt is put at its end; left empty, the question is
*{REGION_QUESTION.split(chr(10))[-1]}* The prompt field takes `x,y` or
`x1,y1,x2,y2` in image pixels, typed as well as clicked. Each column is one
export, headed by its codec: green is the prompt, colours the answer's regions.
"""

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


@dataclass
class Served:
    """One export being served: its column label, codec name and model."""

    label: str
    codec: str
    export: Path
    grounder: Grounder


@dataclass
class Answer:
    """One export's answer: the drawing, the raw text and the regions as JSON data."""

    label: str
    image: Image.Image
    text: str
    regions: dict


def codec_name(export: str | Path) -> str:
    """The codec type of export folder ``export`` (from its JSON config; nothing runs)."""
    codec = read_export_config(export).get("codec") or {}
    return str(codec.get("type", "unknown codec"))


def _run_name(export: Path) -> str:
    export = export.resolve()
    return export.parent.name if export.name == "export" else export.name


def export_labels(exports: Sequence[str | Path], codecs: Sequence[str]) -> list[str]:
    """A column label per export: its codec name, followed by its run's folder
    name where codecs repeat, and by its position where that repeats too."""
    labels = [
        f"{codec} · {_run_name(Path(e))}" if codecs.count(codec) > 1 else codec
        for e, codec in zip(exports, codecs, strict=True)
    ]
    return [
        f"{label} #{i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)
    ]


def load_exports(exports: Sequence[str | Path], device: str = "cpu") -> list[Served]:
    """Every export loaded onto ``device``, labelled by :func:`export_labels`."""
    if not exports:
        raise ValueError("serve: give at least one export (--checkpoint EXPORT)")
    paths = [Path(e) for e in exports]
    codecs = [codec_name(p) for p in paths]
    return [
        Served(label, codec, path, load(path, map_location=device))
        for label, codec, path in zip(export_labels(paths, codecs), codecs, paths, strict=True)
    ]


def parse_prompt(text: str | None, size: tuple[int, int] | None = None) -> Box | Point | None:
    """The prompt of a prompt field: ``None`` when empty, a :class:`Point` for
    two numbers (``x,y``), a :class:`Box` for four (``x1,y1,x2,y2``, corners in
    either order), in original-image pixels; any separators of spaces, commas,
    semicolons or brackets. With ``size`` (``(width, height)``) the prompt must
    lie inside the image. Raises ``ValueError`` for anything else."""
    text = (text or "").strip()
    if not text:
        return None
    numbers = [float(v) for v in re.findall(_NUMBER, text)]
    if re.sub(_NUMBER, "", text).strip(" \t,;()[]") or len(numbers) not in (2, 4):
        raise ValueError(
            f"prompt {text!r}: expected x,y (a point) or x1,y1,x2,y2 (a box) in image pixels"
        )
    if not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"prompt {text!r}: coordinates must be finite")
    if size is not None:
        width, height = size
        xs, ys = numbers[0::2], numbers[1::2]
        if min(xs + ys) < 0 or max(xs) > width or max(ys) > height:
            raise ValueError(f"prompt {text!r} lies outside the {width}x{height} image")
    if len(numbers) == 2:
        return Point(*numbers)
    x1, y1, x2, y2 = numbers
    if x1 == x2 or y1 == y2:
        raise ValueError(f"prompt {text!r}: a box needs two different corners")
    return Box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def format_prompt(prompt: Box | Point | None) -> str:
    """The prompt field's text for ``prompt`` (read back by :func:`parse_prompt`)."""
    if prompt is None:
        return ""
    values = prompt.xyxy if isinstance(prompt, Box) else [prompt.x, prompt.y]
    return ",".join(f"{v:g}" for v in values)


def _whole(v: float) -> int:
    return math.floor(v + 0.5)


def click_prompt(text: str | None, x: float, y: float, size: tuple[int, int] | None = None) -> str:
    """The prompt field after a click at ``(x, y)`` (image pixels), snapped to
    the nearest pixel corner: a point there; when the field holds a point,
    the box with that point and this click as opposite corners (at least one
    pixel wide and high). A box, or an unreadable field, gives way to the new
    point. With ``size`` (``(width, height)``) everything stays in the image.

    Gradio reports a click on an image as the rounded pixel position under
    it (``Image.select``'s ``index``), which is what ``x, y`` are."""
    width, height = size or (math.inf, math.inf)
    x, y = min(max(_whole(x), 0), width), min(max(_whole(y), 0), height)
    try:
        current = parse_prompt(text)
    except ValueError:
        current = None
    if not isinstance(current, Point):
        return format_prompt(Point(x, y))
    x1, x2 = sorted((_whole(current.x), x))
    y1, y2 = sorted((_whole(current.y), y))
    if x2 == x1:
        x1, x2 = (x1, x1 + 1) if x1 + 1 <= width else (x1 - 1, x1)
    if y2 == y1:
        y1, y2 = (y1, y1 + 1) if y1 + 1 <= height else (y1 - 1, y1)
    return format_prompt(Box(x1, y1, x2, y2))


def _prompt_outline(prompt: Box | Point | None) -> RefTargets | None:
    """The prompt as the box the model reads (a point: its one-pixel box), to outline."""
    if prompt is None:
        return None
    if isinstance(prompt, Point):
        return RefTargets.build([[prompt.x - 0.5, prompt.y - 0.5, prompt.x + 0.5, prompt.y + 0.5]])
    return RefTargets.build([prompt.xyxy])


def prompt_preview(image, text: str | None) -> Image.Image | None:
    """``image`` drawn as the answers are (:func:`~unigrounding.visualize.output_size`)
    with the prompt of ``text`` outlined in green; an unreadable prompt (one
    being typed) is left out."""
    if image is None:
        return None
    img = load_rgb(image, "served image")
    try:
        prompt = parse_prompt(text, img.size)
    except ValueError:
        prompt = None
    return draw_refs(img, RefTargets.empty(), gt=_prompt_outline(prompt))


def preview_position(image, x: float, y: float) -> tuple[float, float]:
    """The image position under position ``(x, y)`` of its :func:`prompt_preview`."""
    width, height = load_rgb(image, "served image").size
    out_w, out_h = output_size(width, height)
    return x * width / out_w, y * height / out_h


def question(expression: str, prompt: Box | Point | None) -> str | None:
    """What is asked: ``None`` for a referring expression alone (each model's
    REC question), else the chat text holding :data:`PROMPT_SLOT`."""
    slots = set(re.findall(r"\{prompt:(\d+)\}", expression))
    if prompt is None:
        if not expression:
            raise ValueError("type an expression, or click a point or box prompt on the image")
        if slots:
            raise ValueError(f"the expression names {PROMPT_SLOT}, but no prompt is drawn")
        return None
    if slots - {"0"}:
        raise ValueError(f"one prompt is drawn: the expression can only name {PROMPT_SLOT}")
    if not expression:
        return REGION_QUESTION
    return expression if slots else f"{expression} {PROMPT_SLOT}"


def regions_json(refs: RefTargets) -> dict:
    """The regions of an answer as JSON data (original-image pixels)."""
    regions = []
    for i in range(len(refs)):
        region = {
            "box": [round(v, 2) for v in refs.boxes[i].tolist()],
            "phrase": refs.phrases[i],
            "unit": refs.units[i],
            "group": int(refs.group_ids[i]),
        }
        if "masks" in refs:
            region["mask_pixels"] = int(refs.masks[i].sum())
        if "points" in refs:
            region["points"] = [[round(v, 2) for v in p] for p in refs.points[i].tolist()]
        if "scores" in refs:
            region["score"] = round(float(refs.scores[i]), 4)
        regions.append(region)
    meta = dict(refs.metainfo_items())
    return {
        "regions": regions,
        "parse_failures": int(meta.get("parse_failures", 0)),
        "parse_repairs": int(meta.get("parse_repairs", 0)),
    }


def answer(
    served: Sequence[Served], image, expression: str | None, prompt: str | Box | Point | None = None
) -> list[Answer]:
    """Every served export's answer about ``image`` (a path, PIL image or
    array, read upright by its EXIF orientation) for ``expression`` and the
    optional prompt (a :class:`Box` / :class:`Point` or a prompt field's
    text, see :func:`parse_prompt`). Raises ``ValueError`` for a missing
    image, an empty request or an unreadable prompt."""
    if image is None:
        raise ValueError("upload an image first")
    img = load_rgb(image, "served image")
    if not isinstance(prompt, Box | Point):
        prompt = parse_prompt(prompt, img.size)
    expression = (expression or "").strip()
    asked = question(expression, prompt)
    outline = _prompt_outline(prompt)
    answers = []
    for s in served:
        with torch.no_grad():
            if asked is None:
                text, refs = s.grounder.chat(img, s.grounder.rec_question(expression))
            else:
                text, refs = s.grounder.chat(img, asked, prompts=[prompt])
        drawing = draw_refs(img, refs, title=s.label, gt=outline)
        answers.append(Answer(s.label, drawing, text, regions_json(refs)))
    return answers


def build_app(
    exports: Sequence[str | Path | Served],
    device: str = "cpu",
    examples: Sequence[Sequence] | None = None,
):
    """The demo page (a ``gradio.Blocks``) for ``exports`` (folders, loaded
    onto ``device``, or :class:`Served` ones), one answer column each.
    ``examples``: rows of ``[image path, expression, prompt text]`` offered
    under the inputs. Its API endpoint ``/ground`` takes ``(image,
    expression, prompt)`` and returns, per export, the drawing, the raw
    answer and the regions JSON."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    served = (
        list(exports)
        if all(isinstance(e, Served) for e in exports)
        else load_exports([Path(e) for e in exports], device)
    )

    def on_image_click(image, prompt: str, evt: gr.SelectData) -> str:
        if image is None or evt.index is None:
            return prompt
        size = load_rgb(image, "served image").size
        return click_prompt(prompt, *evt.index, size=size)

    def on_preview_click(image, prompt: str, evt: gr.SelectData) -> str:
        if image is None or evt.index is None:
            return prompt
        size = load_rgb(image, "served image").size
        return click_prompt(prompt, *preview_position(image, *evt.index), size=size)

    def run(image, expression: str, prompt: str) -> list:
        try:
            answers = answer(served, image, expression, prompt)
        except (ValueError, FileNotFoundError) as err:
            raise gr.Error(str(err)) from err
        return [value for a in answers for value in (a.image, a.text, a.regions)]

    with gr.Blocks(title="unigrounding") as app:
        gr.Markdown(f"## unigrounding: {', '.join(s.label for s in served)}\n\n{HELP}")
        with gr.Row():
            with gr.Column():
                image = gr.Image(
                    type="filepath",
                    image_mode=None,  # the uploaded file itself, read by load_rgb
                    sources=["upload", "clipboard"],
                    label="Image (click: point, two clicks: box)",
                    elem_id="image",
                )
                expression = gr.Textbox(
                    label="Expression", placeholder="the red circle", elem_id="expression"
                )
                prompt = gr.Textbox(
                    label="Prompt: x,y (point) or x1,y1,x2,y2 (box), image pixels",
                    placeholder="click the image",
                    elem_id="prompt",
                )
                with gr.Row():
                    clear = gr.Button("Clear prompt", elem_id="clear")
                    submit = gr.Button("Ground", variant="primary", elem_id="ground")
            preview = gr.Image(
                label="Prompt (green; clicks here work too)",
                interactive=False,
                format="png",
                elem_id="preview",
            )
        if examples:
            gr.Examples([list(row) for row in examples], inputs=[image, expression, prompt])
        outputs = []
        with gr.Row():
            for i, s in enumerate(served):
                with gr.Column(elem_id=f"answer-{i}"):
                    gr.Markdown(f"### {s.label}")
                    outputs += [
                        gr.Image(label=f"{s.label}: regions", format="png", interactive=False),
                        gr.Textbox(label=f"{s.label}: raw answer", lines=2, interactive=False),
                        gr.JSON(label=f"{s.label}: regions (JSON)"),
                    ]

        image.select(on_image_click, [image, prompt], [prompt], api_name="click")
        preview.select(on_preview_click, [image, prompt], [prompt], api_name="click_preview")
        # a new image, or none, makes the old prompt meaningless (examples set both)
        image.upload(lambda: "", None, [prompt], api_name="new_image")
        image.clear(lambda: "", None, [prompt], api_name="no_image")
        clear.click(lambda: "", None, [prompt], api_name="clear_prompt")
        gr.on(
            [image.change, prompt.change],
            prompt_preview,
            [image, prompt],
            [preview],
            api_name="preview",
        )
        gr.on(
            [submit.click, expression.submit, prompt.submit],
            run,
            [image, expression, prompt],
            outputs,
            api_name="ground",
        )
    return app


def serve(
    exports: Sequence[str | Path],
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str = "cpu",
) -> None:
    """Load ``exports`` and serve the demo at ``http://host:port`` until interrupted."""
    app = build_app(exports, device=device)
    app.queue().launch(server_name=host, server_port=port, show_error=True)
