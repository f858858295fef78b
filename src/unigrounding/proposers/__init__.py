"""Class-agnostic region proposers (registered in ``PROPOSERS``).

A proposer is built by the model with the vision tower's ``in_channels`` and
``in_strides`` and reads the tower's raw feature levels; ``propose(feats,
image_size)`` returns one ``InstanceData(bboxes, scores)`` per image in
model-input pixels, and ``loss(feats, image_size, targets)`` trains it in its
own detection stage (:class:`~unigrounding.models.ProposerPretrainer`).
"""

from .deformable_detr import DeformableDetrProposer

__all__ = ["DeformableDetrProposer"]
