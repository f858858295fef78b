"""What the ``CODECS`` registry holds: the codecs (not their processors)."""

from __future__ import annotations

from ..registry import CODECS
from .base import Codec


def registered_codecs() -> dict[str, type[Codec]]:
    """Name → class of every registered codec, in- and out-of-tree."""
    CODECS.import_from_location()
    return {
        name: cls
        for name, cls in sorted(CODECS.module_dict.items())
        if isinstance(cls, type) and issubclass(cls, Codec)
    }


def codec_catalog() -> list[dict]:
    """``unigrounding codecs`` output: name, kind and output units of each codec."""
    return [
        {"name": n, "kind": c.kind, "units": list(c.units)} for n, c in registered_codecs().items()
    ]
