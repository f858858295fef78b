"""The shared grounding MLLM and its parts."""

from .cell_pretrain import CellAttributePretrainer
from .llm import build_llm, build_tokenizer, select_attn_implementation
from .mllm import GroundingMLLM
from .preprocessor import GroundingDataPreprocessor
from .proposer_pretrain import ProposerPretrainer, build_proposers
from .quantizer import VisualQuantizer
from .quantizer_pretrain import QuantizerPretrainer
from .tokenizer import build_shapesref_tokenizer
from .vision import FeaturePyramid, Projector, VisionTower, sincos_2d

__all__ = [
    "CellAttributePretrainer",
    "FeaturePyramid",
    "GroundingDataPreprocessor",
    "GroundingMLLM",
    "Projector",
    "ProposerPretrainer",
    "QuantizerPretrainer",
    "VisionTower",
    "VisualQuantizer",
    "build_llm",
    "build_proposers",
    "build_shapesref_tokenizer",
    "build_tokenizer",
    "select_attn_implementation",
    "sincos_2d",
]
