"""The decoders' MLP heads: the layout checkpoints and callers index into."""

from __future__ import annotations

import torch
from torch import nn

from unigrounding.decoders.query_decoders import mlp


def test_mlp_is_the_plain_linear_relu_stack():
    """Same modules, state-dict keys and (seeded) weights as a stack built by
    hand, with the output layer last: exports store ``head.4.weight`` and the
    Deformable-DETR proposer zero-initialises ``head[-1]``."""
    torch.manual_seed(0)
    head = mlp(16, 4)
    torch.manual_seed(0)
    reference = nn.Sequential(
        nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4)
    )
    assert [type(m) for m in head] == [type(m) for m in reference]
    assert head.state_dict().keys() == reference.state_dict().keys()
    x = torch.randn(3, 16)
    assert torch.equal(head(x), reference(x))
    assert isinstance(head[-1], nn.Linear) and head[-1].out_features == 4
    assert [type(m) for m in mlp(16, 16, 2)] == [nn.Linear, nn.ReLU, nn.Linear]
