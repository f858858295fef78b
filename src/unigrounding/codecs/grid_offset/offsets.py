"""Offset-aware data construction: GETok's Appendix C.2 and Algorithm 1.

Given a mask in the model-input frame, every grid cell centre ``c`` is put in
one pool by the paper's rule (eq. 5, first match wins):

* **Hard-Delete** — on the boundary ribbon ``B``, off the mask, and no
  one-step move reaches the mask (``not Hit``);
* **Inside** — on the eroded mask ``E = M ⊖ K_{k_e}``, ``k_e = floor(s_y) + 1``;
* **Ring** — on the dilated mask ``D = M ⊕ K_{k_d}``, ``k_d = 2 floor(s_y) + 1``,
  but off the mask;
* **Far** — everything else.

``Hit(c)`` (eq. 4) asks whether ``M(c + S δ) = 1`` for some ``δ in {-1,0,1}^2``.
The refinement target of a sampled grid is ``<off_0_0>`` if ``c`` is on the mask,
else a move that reaches the mask, else ``<delete>``. Box corners get offsets
only if the best pair of corner moves gives IoU ``>= tau`` with the true box.

Choices the paper leaves open (stated here and tested):

* ``B = dilate(grad(M), K_b)`` with the morphological gradient over a 3x3
  square and ``b = k_d`` — the ribbon then reaches about one step beyond the
  halo, the band in which a proposal is near the object but not one move away.
* ``K ~ π_K``: uniform on ``[k_min, k_max] = [3, 8]`` grids per sample; pools are
  drawn with weights Inside 0.35, Ring 0.35, Hard-Delete 0.15, Far 0.15
  (preference for Inside and Ring, every pool represented), without
  replacement; an empty pool's weight goes to the others.
* When several moves reach the mask, the one landing deepest inside it
  (distance transform) is emitted; ties go to the shorter move, then to the
  first in raster order of ``(du, dv)``.
* Box corners are "jittered" by moving each corner's cell by a uniform
  ``{-1, 0, 1}`` cell in x and y; ``tau = 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from ...structures import paired_box_iou, points_in_mask
from .lattice import DELETE, MOVES, GridLattice, offset_token

POOLS = ("hard_delete", "inside", "ring", "far")
POOL_WEIGHTS = {"inside": 0.35, "ring": 0.35, "hard_delete": 0.15, "far": 0.15}
K_RANGE = (3, 8)
TAU = 0.5


def _square(k: int) -> np.ndarray:
    return np.ones((max(1, k), max(1, k)), dtype=bool)


def offset_pools(mask: np.ndarray, lattice: GridLattice) -> np.ndarray:
    """``(n, n)`` pool index (into :data:`POOLS`) of every cell, indexed ``[j, i]``."""
    mask = np.asarray(mask, dtype=bool)
    hw = mask.shape
    s_y = lattice.step(hw)[1]
    k_e, k_d = int(np.floor(s_y)) + 1, 2 * int(np.floor(s_y)) + 1
    eroded = ndimage.binary_erosion(mask, _square(k_e))
    dilated = ndimage.binary_dilation(mask, _square(k_d))
    gradient = ndimage.binary_dilation(mask, _square(3)) & ~ndimage.binary_erosion(mask, _square(3))
    ribbon = ndimage.binary_dilation(gradient, _square(k_d))
    centres = lattice.all_centres(hw).reshape(-1, 2)
    on_mask = points_in_mask(centres, mask)
    hit = one_step_hit(mask, centres, lattice.step(hw))
    pools = np.full(len(centres), POOLS.index("far"))
    pools[points_in_mask(centres, dilated) & ~on_mask] = POOLS.index("ring")
    pools[points_in_mask(centres, eroded)] = POOLS.index("inside")
    pools[points_in_mask(centres, ribbon) & ~on_mask & ~hit] = POOLS.index("hard_delete")
    return pools.reshape(lattice.n, lattice.n)


def one_step_hit(mask: np.ndarray, xy: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Eq. (4): ``(K,)`` whether some move ``S δ``, ``δ in {-1,0,1}^2``, lands a
    point of ``xy`` on the mask; ``step`` is ``(s_x, s_y)`` in pixels."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    moves = np.array(MOVES, dtype=np.float64) * np.asarray(step, dtype=np.float64)
    landed = points_in_mask((xy[:, None] + moves[None]).reshape(-1, 2), mask)
    return landed.reshape(len(xy), len(MOVES)).any(1)


def refinement_target(mask: np.ndarray, xy: np.ndarray, lattice: GridLattice) -> str:
    """The offset token (or ``<delete>``) Algorithm 1 emits for a proposed point."""
    return refinement_targets(mask, xy, lattice)[0]


def refinement_targets(mask: np.ndarray, xy: np.ndarray, lattice: GridLattice) -> list[str]:
    """:func:`refinement_target` for each point of ``xy`` ``(K, 2)`` (the mask's
    distance transform is computed once)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    depth = ndimage.distance_transform_edt(mask)
    targets = []
    for point, on_mask in zip(xy, points_in_mask(xy, mask), strict=True):
        if on_mask:
            targets.append(offset_token(0, 0))
            continue
        best, best_key = None, None
        for du, dv in MOVES:
            p = lattice.move(point, np.array([[du, dv]]), mask.shape)
            if not points_in_mask(p, mask)[0]:
                continue
            x, y = np.floor(p[0]).astype(int)
            key = (-depth[y, x], abs(du) + abs(dv))
            if best_key is None or key < best_key:
                best, best_key = (du, dv), key
        targets.append(DELETE if best is None else offset_token(*best))
    return targets


@dataclass
class RefineExample:
    """One propose-then-refine training pair: proposed cells → their targets."""

    cells: np.ndarray  # (K, 2) int, (i, j)
    targets: list[str]  # offset tokens or <delete>, one per cell
    pools: list[str]


def sample_refinement(
    mask: np.ndarray, lattice: GridLattice, rng: np.random.Generator
) -> RefineExample:
    """Sample ``K ~ π_K`` proposal cells from the pools and their targets."""
    pools = offset_pools(mask, lattice).reshape(-1)
    members = {name: np.flatnonzero(pools == k) for k, name in enumerate(POOLS)}
    k = int(rng.integers(K_RANGE[0], K_RANGE[1] + 1))
    taken: list[int] = []
    names: list[str] = []
    while len(taken) < k:
        left = {p: np.setdiff1d(members[p], taken) for p in POOLS}
        weights = np.array([POOL_WEIGHTS[p] * (len(left[p]) > 0) for p in POOLS])
        if weights.sum() == 0:
            break
        pool = POOLS[int(rng.choice(len(POOLS), p=weights / weights.sum()))]
        taken.append(int(rng.choice(left[pool])))
        names.append(pool)
    cells = np.stack([np.array(taken) % lattice.n, np.array(taken) // lattice.n], 1)
    centres = lattice.centre(cells, mask.shape)
    targets = refinement_targets(mask, centres, lattice)
    return RefineExample(cells.astype(int), targets, names)


def box_corner_refinement(
    box: np.ndarray,
    hw: tuple[int, int],
    lattice: GridLattice,
    rng: np.random.Generator,
    tau: float = TAU,
) -> tuple[np.ndarray, list[str]]:
    """Jittered corner cells of ``box`` (xyxy, input frame) and their two targets:
    the best pair of corner moves if its IoU with ``box`` reaches ``tau``, else
    ``<delete>`` twice."""
    box = np.asarray(box, dtype=np.float64).reshape(4)
    corners = lattice.cell_of(box.reshape(2, 2), hw)
    cells = np.clip(corners + rng.integers(-1, 2, size=(2, 2)), 0, lattice.n - 1)
    moves, iou = best_corner_moves(cells, box, hw, lattice)
    if iou < tau:
        return cells, [DELETE, DELETE]
    return cells, [offset_token(*moves[0]), offset_token(*moves[1])]


def best_corner_moves(
    cells: np.ndarray, box: np.ndarray, hw: tuple[int, int], lattice: GridLattice
) -> tuple[tuple[tuple[int, int], tuple[int, int]], float]:
    """The pair of moves for corner cells ``(tl, br)`` whose box has the highest
    IoU with ``box`` (ties: the first in raster order of the moves), and that IoU."""
    tl, br = lattice.centre(cells, hw)
    pairs = [(m1, m2) for m1 in MOVES for m2 in MOVES]
    moved_tl = lattice.move(np.tile(tl, (len(pairs), 1)), np.array([p[0] for p in pairs]), hw)
    moved_br = lattice.move(np.tile(br, (len(pairs), 1)), np.array([p[1] for p in pairs]), hw)
    candidates = torch.as_tensor(np.concatenate([moved_tl, moved_br], 1))
    ious = paired_box_iou(candidates, torch.as_tensor(box).expand_as(candidates))
    best = int(ious.argmax())
    return pairs[best], float(ious[best])
