"""Recorded, invertible image transforms.

A :class:`Frame` is the ordered list of resize / pad / crop steps that took an
original image to the model input. Geometry is stored in original pixels and only
mapped to the input frame (and back) through the frame, so the "was this box
relative to the padded square or the raw image?" confusion cannot arise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


@dataclass(frozen=True)
class Resize:
    """Scale an ``in_hw`` image to ``out_hw`` (independent x / y factors)."""

    in_hw: tuple[int, int]
    out_hw: tuple[int, int]

    @property
    def scale(self) -> np.ndarray:
        return np.array([self.out_hw[1] / self.in_hw[1], self.out_hw[0] / self.in_hw[0]])

    def points(self, xy: np.ndarray, inverse: bool = False) -> np.ndarray:
        return xy / self.scale if inverse else xy * self.scale

    def mask(self, m: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        size = self.in_hw if inverse else self.out_hw
        return F.interpolate(m[None, None].float(), size=size, mode="nearest")[0, 0] > 0.5

    def image(self, img: Image.Image) -> Image.Image:
        return img.resize((self.out_hw[1], self.out_hw[0]), Image.BILINEAR)


@dataclass(frozen=True)
class Pad:
    """Place an ``in_hw`` image at ``(left, top)`` of an ``out_hw`` canvas."""

    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    left: int
    top: int
    fill: tuple[int, int, int] = (0, 0, 0)

    def points(self, xy: np.ndarray, inverse: bool = False) -> np.ndarray:
        offset = np.array([self.left, self.top], dtype=np.float64)
        return xy - offset if inverse else xy + offset

    def mask(self, m: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        h, w = self.in_hw
        if inverse:
            return m[self.top : self.top + h, self.left : self.left + w]
        out = torch.zeros(self.out_hw, dtype=torch.bool)
        out[self.top : self.top + h, self.left : self.left + w] = m
        return out

    def image(self, img: Image.Image) -> Image.Image:
        canvas = Image.new("RGB", (self.out_hw[1], self.out_hw[0]), self.fill)
        canvas.paste(img, (self.left, self.top))
        return canvas


@dataclass(frozen=True)
class Crop:
    """Keep the ``out_hw`` window at ``(left, top)`` of an ``in_hw`` image."""

    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    left: int
    top: int

    def points(self, xy: np.ndarray, inverse: bool = False) -> np.ndarray:
        offset = np.array([self.left, self.top], dtype=np.float64)
        return xy + offset if inverse else xy - offset

    def mask(self, m: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        h, w = self.out_hw
        if inverse:
            out = torch.zeros(self.in_hw, dtype=torch.bool)
            out[self.top : self.top + h, self.left : self.left + w] = m
            return out
        return m[self.top : self.top + h, self.left : self.left + w]

    def image(self, img: Image.Image) -> Image.Image:
        h, w = self.out_hw
        return img.crop((self.left, self.top, self.left + w, self.top + h))


Step = Resize | Pad | Crop


@dataclass(frozen=True)
class Frame:
    """The steps from an original ``(H, W)`` image to the model input, in order.

    Immutable (every step is too): copies share it, and ``copy.deepcopy`` —
    which mmengine applies to every sample's metainfo — returns it as is."""

    ori_hw: tuple[int, int]
    steps: tuple[Step, ...] = ()

    def __deepcopy__(self, memo: dict) -> Frame:
        return self

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.steps[-1].out_hw if self.steps else self.ori_hw

    def then(self, step: Step) -> Frame:
        if step.in_hw != self.input_hw:
            raise ValueError(f"step expects {step.in_hw}, frame is at {self.input_hw}")
        return Frame(self.ori_hw, (*self.steps, step))

    def points_to_input(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        for step in self.steps:
            xy = step.points(xy)
        return xy

    def points_to_original(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        for step in reversed(self.steps):
            xy = step.points(xy, inverse=True)
        return xy

    def boxes_to_input(self, boxes: np.ndarray) -> np.ndarray:
        return self.points_to_input(np.asarray(boxes).reshape(-1, 2)).reshape(-1, 4)

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        return self.points_to_original(np.asarray(boxes).reshape(-1, 2)).reshape(-1, 4)

    def mask_to_input(self, mask: np.ndarray | torch.Tensor) -> torch.Tensor:
        m = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
        for step in self.steps:
            m = step.mask(m)
        return m

    def mask_to_original(self, mask: np.ndarray | torch.Tensor) -> torch.Tensor:
        m = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
        for step in reversed(self.steps):
            m = step.mask(m, inverse=True)
        return m

    def image_to_input(self, img: Image.Image) -> Image.Image:
        for step in self.steps:
            img = step.image(img)
        return img


def square_resize_frame(
    ori_hw: tuple[int, int], size: int, fill: tuple[int, int, int] = (0, 0, 0)
) -> Frame:
    """Pad to a centred square (LLaVA ``expand2square``), then resize to ``size``."""
    h, w = ori_hw
    side = max(h, w)
    frame = Frame(ori_hw)
    if (h, w) != (side, side):
        frame = frame.then(Pad((h, w), (side, side), (side - w) // 2, (side - h) // 2, fill))
    if side != size:
        frame = frame.then(Resize((side, side), (size, size)))
    return frame


def resized_square_frame(ori_hw: tuple[int, int], size: int) -> Frame:
    """Resize to a ``size`` square, no padding (the aspect ratio changes:
    GETok's plain resize, its appendix A.3)."""
    frame = Frame(ori_hw)
    return (
        frame if tuple(ori_hw) == (size, size) else frame.then(Resize(tuple(ori_hw), (size, size)))
    )


#: Qwen2.5-VL's released preprocessor bounds on the input's area
#: (``preprocessor_config.json`` of the Qwen2.5-VL Instruct checkpoints;
#: transformers' own default maximum is lower, 1003520).
QWEN2_5_VL_PIXELS = (3136, 12845056)


def smart_resize_frame(
    ori_hw: tuple[int, int], factor: int = 28, pixels: tuple[int, int] = QWEN2_5_VL_PIXELS
) -> Frame:
    """Resize, without padding, to the nearest multiples of ``factor`` whose
    area lies within ``pixels`` (min, max): Qwen2-VL / Qwen2.5-VL's model
    input (transformers' ``smart_resize``; 28 = patch 14 x merge 2). The
    aspect ratio changes by the rounding only, and the recorded
    :class:`Resize` maps every coordinate back exactly."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    size = tuple(smart_resize(*ori_hw, factor=factor, min_pixels=pixels[0], max_pixels=pixels[1]))
    frame = Frame(ori_hw)
    return frame if size == tuple(ori_hw) else frame.then(Resize(tuple(ori_hw), size))


#: The ways to the model input a data pipeline and the model can name.
INPUT_FRAMES = ("padded_square", "resized_square", "qwen2_5_vl")


def input_frame(
    name: str,
    ori_hw: tuple[int, int],
    image_size: int | None = None,
    fill: tuple[int, int, int] = (0, 0, 0),
    pixels: tuple[int, int] = QWEN2_5_VL_PIXELS,
) -> Frame:
    """The frame :data:`INPUT_FRAMES` ``name`` gives an ``(H, W)`` image:
    ``padded_square`` (:func:`square_resize_frame`, side ``image_size``,
    padding ``fill``), ``resized_square`` (:func:`resized_square_frame`) or
    ``qwen2_5_vl`` (:func:`smart_resize_frame` within ``pixels``)."""
    if name not in INPUT_FRAMES:
        raise ValueError(f"frame must be one of {INPUT_FRAMES}, got {name!r}")
    if name == "qwen2_5_vl":
        return smart_resize_frame(ori_hw, pixels=pixels)
    if image_size is None:
        raise ValueError(f"frame {name!r} needs image_size")
    if name == "resized_square":
        return resized_square_frame(ori_hw, image_size)
    return square_resize_frame(ori_hw, image_size, fill)
