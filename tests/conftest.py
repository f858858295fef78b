from __future__ import annotations

import copy

import pytest
import torch

import unigrounding.codecs.all  # noqa: F401  registers the in-tree codecs
from unigrounding.data import ShapesRefDataset, collate
from unigrounding.data.shapesref import write_shapesref

torch.set_num_threads(2)

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


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory):
    return write_shapesref(
        tmp_path_factory.mktemp("shapesref") / "data", seed=1, n_train=40, n_val=12
    )


def free_port() -> int:
    """A free local TCP port, so parallel torchrun tests do not collide."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_dataset(root, split="val", task="rec", **kwargs):
    return ShapesRefDataset(
        data_root=str(root),
        n_train=40,
        n_val=12,
        seed=1,
        split=split,
        task=task,
        pipeline=[dict(type="PackGroundingSample", image_size=IMAGE_SIZE)],
        **kwargs,
    )


def train_steps(model, batch, steps: int, lr: float = 3e-3) -> list[dict[str, float]]:
    """Train ``model`` on one batch for ``steps`` AdamW steps; the losses of each step."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    history = []
    for _ in range(steps):
        losses = model(batch["inputs"], batch["data_samples"], mode="loss")
        history.append({k: v.item() for k, v in losses.items()})
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    return history


@pytest.fixture(scope="session")
def rec_batch(shapes_root):
    ds = make_dataset(shapes_root)
    return collate([ds[i] for i in range(4)])


def tiny_model_cfg(**codec) -> dict:
    """The tiny test model with ``codec``; a codec that needs proposers gets
    tiny ones under the names it expects, and a frozen tower (as in its
    configs: proposals from a tower that keeps learning would drift)."""
    from unigrounding.registry import CODECS

    cfg = copy.deepcopy(TINY_MODEL)
    if codec:
        cfg["codec"] = codec
    codec_cls = CODECS.get(cfg["codec"]["type"])  # None: a plugin not imported yet
    needed = codec_cls.default_proposers if codec_cls is not None else {}
    cfg["proposers"] = {name: copy.deepcopy(TINY_PROPOSER) for name in needed}
    cfg["frozen"] = ("vision.*",) if needed else ()
    return cfg


def train_proposers(model, batch, steps: int, lr: float = 2e-3) -> list[float]:
    """Each proposer's own detection stage, on one batch (they are frozen in
    the grounding model); the summed loss of each step."""
    from unigrounding.decoders.query_decoders import box_targets

    history = []
    for proposer in model.proposers.values():
        proposer.requires_grad_(True)
        opt = torch.optim.AdamW(proposer.parameters(), lr=lr)
        with torch.no_grad():
            feats = model.vision(batch["inputs"])
        # detection data: every box the batch knows for an image (REC samples
        # of one image each name a different object)
        by_image: dict = {}
        for s in batch["data_samples"]:
            boxes = box_targets(s.gt_refs, s.frame, model.image_size)
            key = s.metainfo.get("image_path")
            by_image[key] = torch.cat([by_image[key], boxes]) if key in by_image else boxes
        targets = [
            by_image[s.metainfo.get("image_path")].unique(dim=0) for s in batch["data_samples"]
        ]
        for _ in range(steps):
            loss = sum(proposer.loss(feats, model.image_size, targets).values())
            history.append(loss.item())
            opt.zero_grad()
            loss.backward()
            opt.step()
        proposer.requires_grad_(False)
    return history


def answered_view(model, inputs, samples, texts: list[str]):
    """The prediction view of ``samples`` as if the model had answered
    ``texts`` (random last-layer hidden states): drives a latent codec's
    ``decode`` without training."""
    from unigrounding.codecs.base import ModelView

    ids = model.tokenizer(texts, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        view = model._view(inputs, samples, train=False)
    return ModelView(
        samples,
        view.rendered,
        view.images,
        view.input_ids,
        view.attention_mask,
        image_feats=view.image_feats,
        feature_pyramid=view.feature_pyramid,
        vision_tokens=view.vision_tokens,
        generated_ids=ids,
        generated_hidden_states=torch.randn(len(texts), ids.shape[1], model.llm.config.hidden_size),
        texts=list(texts),
    )
