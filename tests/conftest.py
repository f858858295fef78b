from __future__ import annotations

import pytest
import torch

import unigrounding.codecs.all  # noqa: F401  registers the in-tree codecs
from unigrounding.data import collate
from unigrounding.testing import (  # noqa: F401  (re-exported to the test modules)
    IMAGE_SIZE,
    TINY_MODEL,
    TINY_PROPOSER,
    tiny_model_cfg,
    tiny_shapesref,
    train_proposers,
)
from unigrounding.testing import tiny_shapesref_dataset as make_dataset

torch.set_num_threads(2)

# the suite's markers and hooks, as a plugin author's conftest.py loads them
pytest_plugins = ["unigrounding.testing.conformance"]


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory):
    return tiny_shapesref(tmp_path_factory.mktemp("shapesref") / "data")


def free_port() -> int:
    """A free local TCP port, so parallel torchrun tests do not collide."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


def answered_view(model, inputs, samples, texts: list[str]):
    """The prediction view of ``samples`` as if the model had answered
    ``texts`` (random last-layer hidden states): drives a latent codec's
    ``decode`` without training."""
    from unigrounding.codecs.base import ModelView

    ids = model.tokenizer(texts, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        view = model.model_view(inputs, samples, train=False)
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
