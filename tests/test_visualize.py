"""Image reading (EXIF orientation) and drawing referents at a size that fits the image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ExifTags, Image

import unigrounding as ug
from unigrounding.data.pipeline import image_hw, load_rgb
from unigrounding.structures import RefTargets
from unigrounding.visualize import GT_COLOUR, MAX_LONG_SIDE, PALETTE, draw_refs, output_size


def _rotated_jpeg(path) -> None:
    """A 100 x 40 bitmap, left half white, tagged "rotate 90 degrees clockwise to view"."""
    stored = np.zeros((40, 100, 3), np.uint8)
    stored[:, :50] = 255
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    Image.fromarray(stored).save(path, exif=exif, quality=95)


def test_images_are_read_upright_by_their_exif_orientation(tmp_path):
    path = tmp_path / "portrait.jpg"
    _rotated_jpeg(path)
    upright = np.asarray(load_rgb(path))
    assert upright.shape == (100, 40, 3)
    # turned clockwise, the stored left half is the top
    assert upright[:45].mean() > 200 and upright[55:].mean() < 50
    assert image_hw(path) == (100, 40)  # what importers record as ori_shape
    with Image.open(path) as opened:  # a caller's own, untransposed PIL image
        assert load_rgb(opened).size == (40, 100)


def test_unreadable_and_missing_images_name_the_source(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    for read in (load_rgb, image_hw):
        with pytest.raises(ValueError, match="sample 7: unreadable image file"):
            read(bad, "sample 7")
        with pytest.raises(FileNotFoundError, match="sample 7: image file not found"):
            read(tmp_path / "missing.jpg", "sample 7")


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((64, 64), (512, 512)),
        ((100, 40), (500, 200)),
        ((300, 200), (600, 400)),
        ((400, 300), (400, 300)),
        ((1200, 900), (1200, 900)),
        ((2048, 100), (2048, 100)),
        ((3000, 2000), (2048, 1365)),
        ((4032, 3024), (2048, 1536)),
    ],
)
def test_output_size_upscales_small_images_and_caps_large_ones(size, expected):
    assert output_size(*size) == expected


def test_visualize_caps_a_large_photo(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (3000, 2000), (90, 90, 90)).save(path)
    refs = RefTargets.build([[300, 200, 2700, 1800]], phrases=["a wall"])
    out = ug.visualize(path, refs)
    assert out.size == (2048, 1365) and max(out.size) <= MAX_LONG_SIDE
    # importing unigrounding.visualize (above, and by a first call) leaves the function bound
    assert ug.visualize(path, refs).size == out.size


def test_small_images_are_upscaled_and_titled():
    out = draw_refs(Image.new("RGB", (64, 48)), RefTargets.empty(), title="a query")
    assert out.width == 512 and out.height > 384  # 8x, plus the title bar


def test_box_outlines_lie_on_the_box_edge():
    refs = RefTargets.build([[8, 8, 40, 40]], phrases=[""])
    gt = RefTargets.build([[2, 2, 60, 60]])
    out = np.asarray(draw_refs(Image.new("RGB", (64, 64)), refs, gt=gt))
    # 8x: the box covers output pixels 64..319; its outline those on the edge
    for x, y in [(64, 200), (319, 200), (200, 64), (200, 319)]:
        assert tuple(out[y, x]) == PALETTE[0]
    assert tuple(out[200, 63]) == (0, 0, 0) and tuple(out[200, 320]) == (0, 0, 0)
    assert tuple(out[200, 200]) == (0, 0, 0)  # not filled
    assert tuple(out[200, 16]) == GT_COLOUR


def test_masks_and_points_are_drawn_in_the_scaled_frame():
    mask = np.zeros((1, 32, 32), bool)
    mask[0, 4:12, 4:12] = True
    refs = RefTargets.from_masks(list(mask), points=[np.array([[24.0, 24.0]])])
    out = np.asarray(draw_refs(Image.new("RGB", (32, 32)), refs)).astype(int)
    blended = (np.array(PALETTE[0]) * 0.5).astype(int)
    assert np.abs(out[128, 128] - blended).max() <= 1  # inside the mask, 16x
    assert tuple(out[200, 200]) == (0, 0, 0)  # outside it
    assert tuple(out[384, 384]) == PALETTE[0]  # the point at (24, 24)
