"""Referring codecs: the contract (:mod:`.base`) and one module or package
per paradigm, each registering its parts (codec, processor, its own stages)
where it is defined. :mod:`.all` imports every one of them, which the
registries do on their first lookup: a new codec is a new module here and
touches no other file."""

from .base import NEEDS, Codec, ModelView, Processor, Rendered

__all__ = ["NEEDS", "Codec", "ModelView", "Processor", "Rendered"]
