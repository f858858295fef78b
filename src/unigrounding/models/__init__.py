"""The shared grounding MLLM and its parts."""

from .cell_pretrain import CellAttributePretrainer
from .llm import build_llm, build_tokenizer, select_attn_implementation
from .mllm import GroundingMLLM
from .preprocessor import GroundingDataPreprocessor
from .tokenizer import build_shapesref_tokenizer
from .vision import Projector, VisionTower

__all__ = [
    "CellAttributePretrainer",
    "GroundingDataPreprocessor",
    "GroundingMLLM",
    "Projector",
    "VisionTower",
    "build_llm",
    "build_shapesref_tokenizer",
    "build_tokenizer",
    "select_attn_implementation",
]
