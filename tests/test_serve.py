"""The web demo (``unigrounding serve``): its prompt fields and request
handler without a browser, and its HTTP API against a server launched on a
free local port."""

import json
import urllib.request

import numpy as np
import pytest
import torch
from conftest import free_port
from PIL import Image
from test_training import tiny_train_cfg

from unigrounding.data.pipeline import load_rgb
from unigrounding.serve import (
    REGION_QUESTION,
    answer,
    click_prompt,
    export_labels,
    format_prompt,
    load_exports,
    parse_prompt,
    preview_position,
    prompt_preview,
    question,
    regions_json,
)
from unigrounding.structures import Box, Point, RefTargets
from unigrounding.visualize import GT_COLOUR, draw_refs, output_size

IMAGE = "images/val_000040.png"


@pytest.fixture(scope="module")
def export(shapes_root, tmp_path_factory):
    """A tiny text_coords export (3 iterations: garbage answers, in its format)."""
    from unigrounding.engine.runner import train

    work = tmp_path_factory.mktemp("serve") / "run"
    train(tiny_train_cfg(shapes_root, work, 3, 3, 3))
    return work / "export"


@pytest.fixture(scope="module")
def served(export):
    """The export served twice, as two columns."""
    return load_exports([export, export])


def test_prompt_field_reads_points_and_boxes_and_refuses_the_rest():
    assert parse_prompt("") is None and parse_prompt("  ") is None and parse_prompt(None) is None
    assert parse_prompt("3.5, 4.5") == Point(3.5, 4.5)
    assert parse_prompt("[30, 40, 5, 6]") == Box(5, 6, 30, 40)  # corners in either order
    assert parse_prompt("5 6 30 40", size=(30, 40)) == Box(5, 6, 30, 40)
    for bad in ("1", "1,2,3", "a,b", "1,2 px", "5,5,5,9"):
        with pytest.raises(ValueError, match="prompt"):
            parse_prompt(bad)
    with pytest.raises(ValueError, match="outside the 30x40 image"):
        parse_prompt("5,6,31,40", size=(30, 40))
    for prompt in (Point(3.5, 4.5), Box(1, 2, 30.25, 40)):
        assert parse_prompt(format_prompt(prompt)) == prompt


def test_clicks_make_a_point_then_a_box_with_both_as_corners_then_start_over():
    first = click_prompt("", 10.4, 3)  # snapped to the nearest pixel corner
    assert parse_prompt(first) == Point(10, 3)
    second = click_prompt(first, 4, 8.6)
    assert parse_prompt(second) == Box(4, 3, 10, 9)
    assert parse_prompt(click_prompt(second, 0, 0)) == Point(0, 0)
    assert parse_prompt(click_prompt("half typed,", 2, 2)) == Point(2, 2)
    # the same corner twice: a box one pixel wide and high, kept inside the image
    assert parse_prompt(click_prompt("5,5", 5, 5)) == Box(5, 5, 6, 6)
    assert parse_prompt(click_prompt("30,40", 30, 40, size=(30, 40))) == Box(29, 39, 30, 40)
    assert parse_prompt(click_prompt("", 31, -2, size=(30, 40))) == Point(30, 0)
    # a click on the preview (drawn 8x) lands on the image position under it
    assert preview_position(Image.new("RGB", (63, 54)), 80, 24) == (10, 3)


def test_what_is_asked_for_an_expression_a_prompt_or_both():
    assert question("the red circle", None) is None  # each model's REC question
    assert question("", Point(1, 1)) == REGION_QUESTION
    assert question("Segment {prompt:0}.", Point(1, 1)) == "Segment {prompt:0}."
    assert question("Segment", Point(1, 1)) == "Segment {prompt:0}"
    with pytest.raises(ValueError, match="type an expression"):
        question("", None)
    with pytest.raises(ValueError, match="no prompt is drawn"):
        question("What is {prompt:0}?", None)
    with pytest.raises(ValueError, match="only name"):
        question("{prompt:0} or {prompt:1}?", Point(1, 1))


def test_columns_are_labelled_by_codec_and_told_apart_where_codecs_repeat(tmp_path):
    a, b, c = tmp_path / "a" / "export", tmp_path / "b" / "export", tmp_path / "c"
    assert export_labels([a, c], ["text_coords", "trp"]) == ["text_coords", "trp"]
    assert export_labels([a, b, c], ["trp", "trp", "gnd_query"]) == [
        "trp · a",
        "trp · b",
        "gnd_query",
    ]
    assert export_labels([a, a], ["trp", "trp"]) == ["trp · a #1", "trp · a #2"]


def test_regions_json_carries_every_field_of_the_answer():
    refs = RefTargets.build(
        [[1, 2, 10, 20]], phrases=["the red circle"], masks=torch.ones(1, 30, 30), scores=[0.5]
    )
    data = regions_json(refs)
    assert data == {
        "regions": [
            {
                "box": [1.0, 2.0, 10.0, 20.0],
                "phrase": "the red circle",
                "unit": "box",
                "group": 0,
                "mask_pixels": 900,
                "score": 0.5,
            }
        ],
        "parse_failures": 0,
        "parse_repairs": 0,
    }
    json.dumps(data)


def test_each_export_answers_in_its_own_column(served, shapes_root):
    image = shapes_root / IMAGE
    width, height = Image.open(image).size
    assert [s.label for s in served] == ["text_coords · run #1", "text_coords · run #2"]
    assert {s.codec for s in served} == {"text_coords"}
    answers = answer(served, image, "the red circle")
    assert [a.label for a in answers] == [s.label for s in served]
    # the question ground() asks: the same regions as the Python API finds
    expected = served[0].grounder.ground(image, "the red circle")
    for a in answers:
        assert isinstance(a.text, str) and set(a.regions) >= {"regions", "parse_failures"}
        assert a.image.width == output_size(width, height)[0]  # a title bar adds height
        assert [r["box"] for r in a.regions["regions"]] == [
            [round(v, 2) for v in box] for box in expected.boxes.tolist()
        ]
    json.dumps([a.regions for a in answers])


def _green(image: Image.Image) -> int:
    """Pixels of the prompt's outline colour."""
    return dict((rgb, n) for n, rgb in image.getcolors(1 << 24)).get(GT_COLOUR, 0)


@pytest.mark.parametrize("prompt", ["5,6,30,40", Point(10.5, 12.5)])
def test_a_prompt_is_asked_about_and_outlined_in_green(served, shapes_root, prompt):
    image = shapes_root / IMAGE
    text = prompt if isinstance(prompt, str) else format_prompt(prompt)
    bare = prompt_preview(image, "")
    assert bare.size == output_size(*Image.open(image).size)
    shown = prompt_preview(image, text)
    changed = np.any(np.asarray(shown) != np.asarray(bare), axis=-1)
    assert changed.any() and (np.asarray(shown)[changed] == GT_COLOUR).all()
    # a prompt being typed is left out of the preview, not an error
    assert prompt_preview(image, "5,6,3").tobytes() == bare.tobytes()
    first = answer(served, image, "", prompt)[0]
    assert isinstance(first.text, str)
    untouched = draw_refs(load_rgb(image), RefTargets.empty(), title=first.label)
    assert _green(first.image) > _green(untouched)


def test_requests_the_handler_refuses(served, shapes_root):
    image = shapes_root / IMAGE
    with pytest.raises(ValueError, match="upload an image"):
        answer(served, None, "the red circle")
    with pytest.raises(ValueError, match="type an expression"):
        answer(served, image, "  ", "")
    with pytest.raises(ValueError, match="outside"):
        answer(served, image, "", "0,0,500,500")


@pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")  # gradio's own pandas calls
def test_http_api_answers_per_export_and_reports_errors(served, shapes_root):
    pytest.importorskip("gradio")
    gradio_client = pytest.importorskip("gradio_client")
    from unigrounding.serve import build_app

    image = shapes_root / IMAGE
    app = build_app(served)
    port = free_port()
    app.queue().launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200 and "unigrounding" in page.read().decode()
        client = gradio_client.Client(url, verbose=False)
        assert (
            "/ground" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        )
        out = client.predict(
            gradio_client.handle_file(str(image)), "the red circle", "5,6,30,40", api_name="/ground"
        )
        assert len(out) == 3 * len(served)  # drawing, raw answer, regions per export
        local = answer(served, image, "the red circle", "5,6,30,40")
        for (drawing, text, regions), expected in zip(
            (out[i : i + 3] for i in range(0, len(out), 3)), local, strict=True
        ):
            assert Image.open(drawing).size == expected.image.size
            assert text == expected.text and regions == expected.regions
        preview = client.predict(
            gradio_client.handle_file(str(image)), "5,6,30,40", api_name="/preview"
        )
        assert Image.open(preview).size == output_size(*Image.open(image).size)
        with pytest.raises(gradio_client.exceptions.AppError, match="type an expression"):
            client.predict(gradio_client.handle_file(str(image)), "", "", api_name="/ground")
    finally:
        app.close()


def test_cli_serve_passes_every_export_host_and_port(monkeypatch, tmp_path):
    pytest.importorskip("gradio")
    import unigrounding.serve
    from unigrounding.cli.main import main

    calls = []
    monkeypatch.setattr(unigrounding.serve, "serve", lambda *a, **k: calls.append((a, k)))
    main(["serve", "--checkpoint", "a", "--checkpoint", "b", "--port", "8123", "--device", "cpu"])
    assert calls == [((["a", "b"],), {"host": "127.0.0.1", "port": 8123, "device": "cpu"})]
