"""What a codec's tests need, importable by an out-of-tree package: tiny
models and data (:mod:`.tiny`) and the codec conformance suite
(:class:`~.conformance.CodecConformance`). Needs the ``test`` extra
(pytest, hypothesis)."""

import pytest

# the suite's asserts report their operands only if pytest rewrites them, and
# it rewrites a library module only when told so before the module is imported
pytest.register_assert_rewrite("unigrounding.testing.conformance")

from .conformance import CodecConformance  # noqa: E402
from .tiny import (  # noqa: E402
    IMAGE_SIZE,
    TINY_MODEL,
    TINY_PROPOSER,
    tiny_model_cfg,
    tiny_shapesref,
    tiny_shapesref_dataset,
    train_proposers,
)

__all__ = [
    "IMAGE_SIZE",
    "TINY_MODEL",
    "TINY_PROPOSER",
    "CodecConformance",
    "tiny_model_cfg",
    "tiny_shapesref",
    "tiny_shapesref_dataset",
    "train_proposers",
]
