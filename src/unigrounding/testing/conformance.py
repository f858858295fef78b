"""The codec conformance suite: every check a codec must pass, for any codec,
in-tree or out-of-tree.

An out-of-tree package runs it on its codec with a test module::

    from unigrounding.testing import CodecConformance

    class TestMyCodec(CodecConformance):
        codec = "my_codec"                    # its registered name
        plugins = ("my_package.codec",)       # what registers it (--plugins syntax)

and, to register the suite's ``slow`` marker (the one-batch overfit test:
``-m "not slow"`` skips it), ``pytest_plugins = ["unigrounding.testing.conformance"]``
in its ``conftest.py``. A codec with arguments sets ``codec_args``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mmengine.structures import InstanceData
from PIL import Image

from ..data import collate
from ..models.vlm import with_backbone
from ..plugins.loading import load_plugins
from ..registry import MODELS
from ..roundtrip import prepared_samples, roundtrip
from ..structures import RefTargets, paired_box_iou
from .tiny import (
    tiny_model_cfg,
    tiny_shapesref,
    tiny_shapesref_dataset,
    train_proposers,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: trains a model for more than a few seconds")


class CodecConformance:
    """Subclass with ``codec`` set; pytest runs every ``test_*`` on the tiny
    model with that codec. To run the suite over several codecs, override the
    ``codec_name`` fixture with ``params``; to run it on another backbone,
    the ``backbone`` fixture (model config keys that replace the tiny
    model's ``vision`` / ``projector`` / ``llm``, e.g. ``dict(vlm=...)``)
    and, for a backbone with its own input frame, ``pack`` (the data's
    ``PackGroundingSample`` config)."""

    codec: ClassVar[str]
    codec_args: ClassVar[dict[str, Any]] = {}
    plugins: ClassVar[tuple[str, ...]] = ()
    #: codecs the (slow) overfit check runs for; ``None``: every one
    overfit_codecs: ClassVar[tuple[str, ...] | None] = None
    #: how the data is packed for the backbone; ``None``: the tiny model's padded square
    pack: ClassVar[dict | None] = None

    @pytest.fixture(scope="class")
    @classmethod
    def codec_name(cls) -> str:
        return cls.codec

    @pytest.fixture(scope="class")
    @classmethod
    def backbone(cls) -> dict | None:
        return None

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, codec_name, backbone):
        load_plugins(cls.plugins)
        torch.manual_seed(0)
        cfg = tiny_model_cfg(type=codec_name, **cls.codec_args)
        return MODELS.build(cfg if backbone is None else with_backbone(cfg, backbone))

    @pytest.fixture(scope="class")
    @classmethod
    def shapes_root(cls, tmp_path_factory):
        return tiny_shapesref(tmp_path_factory.mktemp("shapesref") / "data")

    @pytest.fixture(scope="class")
    @classmethod
    def rec_batch(cls, shapes_root):
        ds = tiny_shapesref_dataset(shapes_root, pack=cls.pack)
        return collate([ds[i] for i in range(4)])

    def test_catalog_entry_has_kind_and_units(self, model, codec_name):
        from ..codecs.catalog import codec_catalog

        entry = next(c for c in codec_catalog() if c["name"] == codec_name)
        assert entry["kind"] in ("vocab", "latent") and entry["units"]

    def test_special_tokens_added_and_embeddings_sized(self, model):
        vocab = model.tokenizer.get_vocab()
        for token in model.codec.processor.special_tokens:
            assert token in vocab
        assert model.llm.get_input_embeddings().num_embeddings >= len(model.tokenizer)

    def test_model_moves_between_devices_and_dtypes(self, model):
        """What mmengine's runner does first; a codec must not shadow nn.Module internals."""
        model.to("cpu").to(torch.float64).to(torch.float32)
        assert next(model.parameters()).dtype == torch.float32

    def test_processor_round_trip_reaches_its_ceiling(self, model, shapes_root):
        ds = tiny_shapesref_dataset(shapes_root, pack=self.pack)
        samples = prepared_samples(model, [ds[i] for i in range(len(ds))])
        result = roundtrip(model.codec, model.tokenizer, samples)
        assert result["n"] == len(samples)
        assert result["box_iou_mean"] >= model.codec.min_roundtrip_iou

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(data=st.data())
    def test_parser_never_raises(self, model, rec_batch, data):
        pieces = [*model.codec.processor.special_tokens, "[", "]", ",", ";", "0.", "1", "-"]
        pieces += ["nan", "1e9", " ", "the"]
        text = data.draw(
            st.one_of(
                st.text(max_size=80), st.lists(st.sampled_from(pieces), max_size=40).map("".join)
            )
        )
        refs = model.codec.processor.parse(text, rec_batch["data_samples"][0])
        assert isinstance(refs, RefTargets)
        assert refs.metainfo["parse_failures"] >= 0
        if len(refs):
            assert torch.isfinite(refs.boxes).all()
            assert bool((refs.boxes[:, 2:] > refs.boxes[:, :2]).all())

    def test_batch_collation_pads_and_supervises_only_answers(self, model, rec_batch):
        view = model.model_view(rec_batch["inputs"], rec_batch["data_samples"], train=True)
        assert view.input_ids.shape == view.labels.shape == view.attention_mask.shape
        image_tokens = (view.input_ids == model.image_token_id).sum(1).tolist()
        grids = [model.token_grid(s.frame.input_hw) for s in rec_batch["data_samples"]]
        assert image_tokens == [rows * cols for rows, cols in grids]
        assert ((view.labels != -100) & (view.attention_mask == 0)).sum() == 0
        assert (view.labels != -100).sum(1).min() > 0

    def test_forward_backward_finite_with_codec_gradients(self, model, rec_batch):
        model.train()
        model.zero_grad()
        losses = model(rec_batch["inputs"], rec_batch["data_samples"], mode="loss")
        total = sum(losses.values())
        assert torch.isfinite(total)
        total.backward()
        for name, p in model.codec.named_parameters():
            if p.requires_grad:  # frozen parts (a visual tokenizer) are trained in their own stage
                assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.llm.parameters())

    def test_predict_returns_refs_and_never_raises_on_untrained_output(self, model, rec_batch):
        model.eval()
        samples = [s.clone() for s in rec_batch["data_samples"]]
        for s in model(rec_batch["inputs"], samples, mode="predict"):
            assert isinstance(s.pred_refs, RefTargets)
            assert isinstance(s.pred_text, str)

    @pytest.mark.parametrize("hidden", [0.0, float("nan"), float("inf")])
    def test_hostile_output_and_proposals_give_boxes_inside_the_image(self, model, hidden):
        """Whatever the model answers (NaN / out-of-range / degenerate
        coordinates, stray special tokens, hidden states of NaN or inf)
        and whatever a proposer returns (NaN, inf, degenerate, out-of-image
        boxes), ``ground`` on a non-square image returns finite boxes inside
        it and raises nothing."""
        from ..api import Grounder

        height, width = 40, 100
        image = Image.fromarray(
            np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)
        )
        specials = list(model.codec.processor.special_tokens)
        answers = [
            "[nan, inf, -1e9, 1e9] [-0.5,-0.2,1.7,2.0] [0.5,0.5,0.5,0.5]",
            " ".join(specials * 3),
            "the red circle " + " ".join(reversed(specials)) + " [1.5, -3, 0.2, 0.1]",
        ]
        hostile = InstanceData(
            bboxes=torch.tensor(
                [
                    [float("nan"), 0, 10, 10],
                    [0, 0, float("inf"), 10],
                    [5, 5, 5, 20],
                    [-50, -50, 500, 500],
                    [8, 8, 30, 30],
                ]
            ),
            scores=torch.tensor([0.9, 0.8, float("nan"), 0.7, 0.6]),
        )
        monkeypatch = pytest.MonkeyPatch()
        for proposer in model.proposers.values():
            monkeypatch.setattr(
                proposer, "propose", lambda feats, size: [hostile.clone() for _ in feats[0]]
            )
        grounder = Grounder(model)
        try:
            model._proposal_cache.clear()
            for answer in answers:
                monkeypatch.setattr(model, "_generate", _answering(model, answer, hidden))
                refs = grounder.ground(image, "the red circle")
                assert torch.isfinite(refs.boxes).all(), answer
                assert bool((refs.boxes[:, :2] >= 0).all() and (refs.boxes[:, 2] <= width).all())
                assert bool((refs.boxes[:, 3] <= height).all()), answer
        finally:  # the model is the class's: later checks must see it untouched
            monkeypatch.undo()
            model._proposal_cache.clear()

    @pytest.mark.slow
    def test_overfit_one_batch_decodes_the_right_region(self, model, shapes_root, codec_name):
        """Train on two samples until both decode to the right region (checked
        every 50 steps once the loss fell 50x; at most 400 steps): latent codecs
        need more steps, as their decoders only find the referent once the
        LLM's hidden states tell the two samples apart (trp, gnd_query:
        ~200-300). Proposers first get their own detection stage on the same
        images."""
        if self.overfit_codecs is not None and codec_name not in self.overfit_codecs:
            pytest.skip(f"overfit check limited to {self.overfit_codecs} on this backbone")
        torch.manual_seed(0)
        ds = tiny_shapesref_dataset(shapes_root, split="train", pack=self.pack)
        batch = collate([ds[i] for i in range(2)])
        if len(model.proposers):
            history = train_proposers(model, batch, 150)
            assert history[-1] < 0.3 * history[0]
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        first, ious = None, []
        for step in range(1, 401):
            loss = sum(model(batch["inputs"], batch["data_samples"], mode="loss").values())
            first = first if first is not None else loss.item()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 50 == 0 and loss.item() < 0.02 * first:
                ious = _decoded_ious(model, batch)
                if min(ious) >= 0.5:
                    break
        assert np.isfinite(loss.item()) and loss.item() < 0.1 * first
        assert ious and min(ious) >= 0.5, ious


def _answering(model, text: str, hidden: float):
    """A stand-in for the model's generation that answers ``text`` for every
    sample (cut to the generation budget, as a real answer is), with
    last-layer states of ``hidden`` (seeded random for 0) and seeded random
    logits: what a latent codec decodes from."""

    def generate(view, allowed=None, temperature=0.0, top_p=1.0) -> torch.Tensor:
        rows = len(view.samples)
        ids = model.tokenizer(text, add_special_tokens=False).input_ids[: model.max_new_tokens - 1]
        ids = torch.tensor([[*ids, model.tokenizer.eos_token_id]] * rows)
        size = (rows, ids.shape[1], model.llm.config.get_text_config().hidden_size)
        random = torch.Generator().manual_seed(0)
        view.generated_ids = ids
        view.generated_hidden_states = (
            torch.randn(size, generator=random) if hidden == 0 else torch.full(size, hidden)
        )
        view.generated_logits = torch.randn(
            rows, ids.shape[1], len(model.tokenizer), generator=random
        )
        view.texts = [model.tokenizer.decode(ids[0, :-1])] * rows
        return ids

    return generate


def _decoded_ious(model, batch: dict) -> list[float]:
    """Each sample's first predicted box's IoU with its first target (0: none)."""
    model.eval()
    out = model(batch["inputs"], [s.clone() for s in batch["data_samples"]], mode="predict")
    model.train()
    return [
        float(paired_box_iou(s.pred_refs.boxes[:1], s.gt_refs.boxes[:1])[0])
        if len(s.pred_refs)
        else 0.0
        for s in out
    ]
