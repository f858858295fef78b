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


def test_mask_targets_and_geometry_on_a_canvas_wider_than_the_input():
    """An 8x16 (HxW) image resized to a 16x32 input on a 32x32 canvas: the
    mask of its left half is the top-left 4x4 cells of the 8x8 stride-4 grid,
    and those logits come back as the same left half of the image."""
    from unigrounding.decoders.query_decoders import mask_geometry, mask_grid, mask_targets
    from unigrounding.structures import Frame, RefTargets
    from unigrounding.structures.frame import Resize

    frame = Frame((8, 16)).then(Resize((8, 16), (16, 32)))
    mask = torch.zeros(8, 16, dtype=torch.bool)
    mask[:, :8] = True
    refs = RefTargets.build([[0, 0, 8, 8]], masks=mask[None])
    assert mask_grid((32, 32)) == (8, 8) and mask_grid((30, 33)) == (8, 9)
    target = mask_targets(refs, frame, (32, 32)).reshape(8, 8)
    expected = torch.zeros(8, 8)
    expected[:4, :4] = 1
    assert torch.equal(target, expected)
    back = mask_geometry((target.flatten() * 20 - 10)[None], frame, (32, 32))
    assert torch.equal(back[0], mask)
