"""Class-agnostic region proposers (registered in ``PROPOSERS``).

A proposer is built by the model (:func:`build_proposers`) with the vision
tower's ``in_channels`` and ``in_strides`` and reads the tower's raw feature
levels; ``propose(feats, canvas_hw)`` returns one ``InstanceData(bboxes,
scores)`` per image in model-input pixels (``canvas_hw``: the ``(H, W)`` of
the batch's images, see :attr:`~unigrounding.codecs.base.ModelView.canvas_hw`),
and ``loss(feats, canvas_hw, targets)`` trains it in its own detection stage
(:class:`~.pretrain.ProposerPretrainer`, shared by ``region_proxy`` and
``token_collective``). That stage is a model of its own (tower + proposer), so
it imports :mod:`unigrounding.models`, which imports this package: it is not
imported here but registered by :mod:`unigrounding.codecs.all`, with the
paradigms that use it.
"""

from .build import build_proposers
from .deformable_detr import DeformableDetrProposer

__all__ = ["DeformableDetrProposer", "build_proposers"]
