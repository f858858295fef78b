"""unigrounding: train, evaluate and compare grounding multimodal LLMs.

``import unigrounding as ug`` registers every in-tree codec, model, dataset,
transform and metric in the ``unigrounding`` mmengine scope and exposes the
Python API (``ug.load``, ``ug.build``, ``Grounder.ground`` / ``chat``,
``ug.visualize``) and the geometry types used for prompts.
"""

from . import data, decoders, engine, evaluation, models, proposers, rl  # noqa: F401  (registration)
from .api import Grounder, build, load, visualize
from .codecs import all as _codecs  # noqa: F401  (registration)
from .structures import Box, GroundingDataSample, Mask, Point, RefTargets, Scribble

__version__ = "0.2.0"

__all__ = [
    "Box",
    "Grounder",
    "GroundingDataSample",
    "Mask",
    "Point",
    "RefTargets",
    "Scribble",
    "build",
    "load",
    "visualize",
]
