"""Tiny models and data for tests: a model that builds in a second on CPU
and a ShapesRef of 40 train / 12 val images."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from ..data import ShapesRefDataset
from ..data.shapesref import write_shapesref

IMAGE_SIZE = 64

TINY_MODEL = dict(
    type="GroundingMLLM",
    codec=dict(type="text_coords"),
    image_size=IMAGE_SIZE,
    vision=dict(model_name="test_convnext"),
    projector=dict(merge=1, pos_embed="sincos"),
    llm=dict(
        config=dict(
            model_type="llama",
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=1024,
        )
    ),
    max_new_tokens=64,
)

#: A tiny Deformable-DETR proposer for codecs that need proposals.
TINY_PROPOSER = dict(
    type="DeformableDetrProposer",
    dim=32,
    strides=(8, 16, 32, 64),
    encoder_layers=1,
    decoder_layers=1,
    heads=2,
    ffn_dim=64,
)

#: ShapesRef of :func:`tiny_shapesref`: its seed and split sizes
_TINY_DATA = dict(seed=1, n_train=40, n_val=12)


def tiny_model_cfg(**codec) -> dict:
    """The tiny model config with ``codec`` (``type`` and arguments); a codec
    that needs proposers gets tiny ones under the names it expects, and a
    frozen tower (as in its configs: proposals from a tower that keeps
    learning would drift)."""
    from ..registry import CODECS

    cfg = copy.deepcopy(TINY_MODEL)
    if codec:
        cfg["codec"] = codec
    codec_cls = CODECS.get(cfg["codec"]["type"])  # None: a plugin not imported yet
    needed = codec_cls.default_proposers if codec_cls is not None else {}
    cfg["proposers"] = {name: copy.deepcopy(TINY_PROPOSER) for name in needed}
    cfg["frozen"] = ("vision.*",) if needed else ()
    return cfg


def tiny_shapesref(root: str | Path) -> Path:
    """Write the tiny ShapesRef into ``root`` (once; it is deterministic)."""
    return write_shapesref(Path(root), **_TINY_DATA)


def tiny_shapesref_dataset(
    root: str | Path,
    split: str = "val",
    task: str = "rec",
    pack: dict | None = None,
    **kwargs,
) -> ShapesRefDataset:
    """The tiny ShapesRef written by :func:`tiny_shapesref`, packed for the
    tiny model, or by ``pack`` (a ``PackGroundingSample`` config, e.g. the
    ``qwen2_5_vl`` frame of a Qwen2.5-VL backbone)."""
    return ShapesRefDataset(
        data_root=str(root),
        split=split,
        task=task,
        pipeline=[pack or dict(type="PackGroundingSample", image_size=IMAGE_SIZE)],
        **_TINY_DATA,
        **kwargs,
    )


def mixed_size_batch(root: str | Path, pixels: tuple[int, int] = (56 * 56, 84 * 84)) -> dict:
    """A collated batch of inputs of two sizes in Qwen2.5-VL's frame (no
    padding): two 60x72 (HxW) ShapesRef images, at 56x84 with the default
    ``pixels``, and two 80x48 ones, at 84x56 — one 84x84 canvas. ShapesRefs
    of four train images each, written under ``root``."""
    from ..data import collate

    def sized(height: int, width: int) -> ShapesRefDataset:
        return ShapesRefDataset(
            data_root=str(Path(root) / f"shapesref_{height}x{width}"),
            seed=3,
            n_train=4,
            n_val=2,
            split="train",
            scene=dict(height=height, width=width),
            pipeline=[dict(type="PackGroundingSample", frame="qwen2_5_vl", pixels=pixels)],
        )

    wide, tall = sized(60, 72), sized(80, 48)
    return collate([wide[0], tall[0], wide[1], tall[1]])


def train_proposers(model, batch: dict, steps: int, lr: float = 2e-3) -> list[float]:
    """Each proposer's own detection stage, on one batch (they are frozen in
    the grounding model); the summed loss of each step."""
    from ..decoders.query_decoders import box_targets

    history = []
    for proposer in model.proposers.values():
        proposer.requires_grad_(True)
        opt = torch.optim.AdamW(proposer.parameters(), lr=lr)
        canvas = tuple(batch["inputs"].shape[-2:])
        with torch.no_grad():
            hws = [tuple(s.frame.input_hw) for s in batch["data_samples"]]
            feats = model.vision(batch["inputs"], hws)
        # detection data: every box the batch knows for an image (REC samples
        # of one image each name a different object)
        by_image: dict = {}
        for s in batch["data_samples"]:
            boxes = box_targets(s.gt_refs, s.frame, canvas)
            key = s.metainfo.get("image_path")
            by_image[key] = torch.cat([by_image[key], boxes]) if key in by_image else boxes
        targets = [
            by_image[s.metainfo.get("image_path")].unique(dim=0) for s in batch["data_samples"]
        ]
        for _ in range(steps):
            loss = sum(proposer.loss(feats, canvas, targets).values())
            history.append(loss.item())
            opt.zero_grad()
            loss.backward()
            opt.step()
        proposer.requires_grad_(False)
    return history
