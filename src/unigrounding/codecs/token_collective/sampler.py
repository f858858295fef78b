"""ClawMachine's region sampler (ClawMachine [docs/papers.md],
Appendix A.6): generated token collectives → boxes.

1. **Retrieval map.** Each generated code is placed on the image patch that
   carries it: codes that occur once in the image first; a repeated code then
   goes to its occurrence nearest to the points already placed.
2. **Fuzzy search.** A generated code the image does not contain is replaced
   by the first of its top-k alternatives (the step's logits) that occurs
   inside the lattice of a proposal which already holds a placed point.
3. **Nomination.** Proposals (score above ``score_threshold``) that hold more
   than ``min_overlap`` of the points each get a 2-D Gaussian; as a mixture
   they assign every point to a proposal, and the proposal explaining the
   most points (then the densest) is the answer. With no such proposal — or
   no proposer at all — the answer is the convex box of the points' patches.
4. Several collectives of one answer are decoded in order; a proposal (and a
   patch, where a repeated code leaves a choice) serves one collective only.

Choices the paper leaves open (each tested):

* Repeated codes are placed rarest first (a code twice in the image says
  more than a background code on half of it). When nothing is placed yet,
  the rarest goes to the occurrence with the most other generated codes
  among its 8 neighbours (each code counted once; ties: raster order). A
  code generated twice takes two different occurrences when it can.
* "Overlap" of a proposal: the fraction of the collective's points whose
  patch centre lies in the proposal box.
* Gaussian of a proposal: mean at the box centre, standard deviations a
  quarter of the box's width and height (the box spans ±2σ: the covariance
  "follows the shape of the rectangle"). Normalised, its peak density is
  proportional to 1 / area — the paper's "variance inversely proportional to
  the box's size" read as the density, which is what makes a point inside a
  small box nested in a larger one go to the small one. Equal mixture weights.
* Score of a proposal: the number of points the mixture assigns to it, ties
  broken by density (assigned points over the patches the box holds).
* Fuzzy search considers proposals above the score threshold only, and the
  alternatives in logit order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import ConvexHull

from .mounting import PatchLattice


@dataclass
class SampledRegion:
    """The sampler's reading of one collective (model-input pixels).

    ``box`` is ``None`` when no code could be placed. ``cells`` are the patches
    of the exact retrieval (the sets of eq. (1)); ``unplaced`` counts codes the
    image does not hold; ``points`` are the patch centres used for the box
    (after fuzzy search); ``proposal`` is the nominated proposal's index.
    """

    box: np.ndarray | None
    cells: list[int] = field(default_factory=list)
    unplaced: int = 0
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    proposal: int | None = None

    @property
    def centre(self) -> np.ndarray | None:
        """The cluster centre (a point prompt for a mask decoder): the
        nominated proposal's centre — its Gaussian's mean — else the points'
        mean."""
        if self.box is None:
            return None
        if self.proposal is not None:
            return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])
        return self.points.mean(0)


@dataclass
class RegionSampler:
    """Settings of the sampler (paper defaults)."""

    score_threshold: float = 0.3
    min_overlap: float = 0.1
    use_proposals: bool = True
    sigma_scale: float = 0.25

    def sample(
        self,
        collectives: list[list[int]],
        image_codes: np.ndarray,
        lattice: PatchLattice,
        proposals: np.ndarray | None = None,
        scores: np.ndarray | None = None,
        alternatives: list[list[list[int]]] | None = None,
    ) -> list[SampledRegion]:
        """One :class:`SampledRegion` per collective, decoded in order.

        ``image_codes`` ``(rows * cols,)`` raster; ``proposals`` ``(P, 4)``
        boxes with ``scores`` ``(P,)``; ``alternatives[i][j]`` the top-k codes
        of the ``j``-th code of collective ``i`` (``None``: no fuzzy search).
        """
        image_codes = np.asarray(image_codes, dtype=np.int64).reshape(-1)
        keep = np.zeros(0, dtype=bool)
        if self.use_proposals and proposals is not None and len(proposals):
            proposals = np.asarray(proposals, dtype=np.float64).reshape(-1, 4)
            keep = np.asarray(scores, dtype=np.float64).reshape(-1) > self.score_threshold
        else:
            proposals = np.zeros((0, 4))
        free = keep.copy()
        taken: set[int] = set()
        out = []
        for i, codes in enumerate(collectives):
            alts = alternatives[i] if alternatives is not None else None
            region = self._one(codes, alts, image_codes, lattice, proposals, free, taken)
            if region.proposal is not None:
                free[region.proposal] = False
            taken.update(region.cells)
            out.append(region)
        return out

    def _one(self, codes, alts, image_codes, lattice, proposals, free, taken) -> SampledRegion:
        cells = retrieve(codes, image_codes, lattice, avoid=taken)
        exact = [c for c in cells if c is not None]
        unplaced = len(cells) - len(exact)
        placed = list(exact)
        if alts is not None and unplaced and free.any() and exact:
            centres = lattice.centres()
            holding = [
                k for k in np.flatnonzero(free) if _inside(centres[exact], proposals[k]).any()
            ]
            if holding:
                placed += fuzzy_cells(
                    [a for a, c in zip(alts, cells, strict=True) if c is None],
                    image_codes,
                    lattice,
                    proposals[holding],
                    exact,
                )
        if not placed:
            return SampledRegion(None, unplaced=unplaced)
        points = lattice.centres()[placed]
        box, proposal = self.nominate(points, placed, lattice, proposals, free)
        return SampledRegion(box, sorted(set(exact)), unplaced, points, proposal)

    def nominate(
        self,
        points: np.ndarray,
        cells: list[int],
        lattice: PatchLattice,
        proposals: np.ndarray,
        free: np.ndarray,
    ) -> tuple[np.ndarray, int | None]:
        """The box for placed ``points``: the best proposal of the mixture, or
        the convex box of the ``cells`` when none holds enough of them."""
        candidates = [
            k
            for k in np.flatnonzero(free)
            if _inside(points, proposals[k]).mean() > self.min_overlap
        ]
        if not candidates:
            return convex_box(cells, lattice), None
        boxes = proposals[candidates]
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        sd = np.maximum((boxes[:, 2:] - boxes[:, :2]) * self.sigma_scale, 1e-3)
        z = (points[:, None, :] - centre[None]) / sd[None]
        log_density = -0.5 * (z**2).sum(-1) - np.log(2 * np.pi * sd.prod(-1))[None]
        assigned = np.bincount(log_density.argmax(1), minlength=len(candidates))
        centres = lattice.centres()
        held = np.array([max(int(_inside(centres, b).sum()), 1) for b in boxes])
        density = assigned / held
        best = max(range(len(candidates)), key=lambda j: (assigned[j], density[j], -j))
        return boxes[best].copy(), int(candidates[best])


def retrieve(
    codes: list[int], image_codes: np.ndarray, lattice: PatchLattice, avoid: set[int] = frozenset()
) -> list[int | None]:
    """The retrieval map: the patch of each generated code (``None``: the
    image does not hold it). Unique codes first; then repeated ones, rarest
    first, each to its occurrence nearest to what is placed; patches in
    ``avoid`` (an earlier collective's) only when nothing else is left."""
    occurrences = {int(c): np.flatnonzero(image_codes == c) for c in set(codes)}
    cells: list[int | None] = [None] * len(codes)
    for j, code in enumerate(codes):
        if len(occurrences[int(code)]) == 1:
            cells[j] = int(occurrences[int(code)][0])
    centres = lattice.centres()
    repeated = [j for j, c in enumerate(codes) if len(occurrences[int(c)]) > 1]
    for j in sorted(repeated, key=lambda j: (len(occurrences[int(codes[j])]), j)):
        options = occurrences[int(codes[j])]
        placed = [c for c in cells if c is not None]
        fresh = [o for o in options if o not in placed and o not in avoid]
        options = np.array(fresh or [o for o in options if o not in placed] or options)
        if placed:
            dist = np.linalg.norm(centres[options][:, None] - centres[placed][None], axis=-1)
            cells[j] = int(options[dist.min(1).argmin()])
        else:
            others = [occurrences[int(c)] for c in set(codes) if c != codes[j]]
            cells[j] = int(options[_support(options, others, lattice).argmax()])
    return cells


def fuzzy_cells(
    alternatives: list[list[int]],
    image_codes: np.ndarray,
    lattice: PatchLattice,
    proposals: np.ndarray,
    placed: list[int],
) -> list[int]:
    """For each unplaced code, the patch of its first alternative that occurs
    inside one of ``proposals`` (nearest to ``placed`` if several); codes
    with no such alternative add nothing."""
    centres = lattice.centres()
    inside_any = np.zeros(len(centres), dtype=bool)
    for box in proposals:
        inside_any |= _inside(centres, box)
    found = []
    for options in alternatives:
        for code in options:
            where = np.flatnonzero((image_codes == code) & inside_any)
            where = np.array([w for w in where if w not in placed and w not in found] or where)
            if len(where):
                dist = np.linalg.norm(centres[where][:, None] - centres[placed][None], axis=-1)
                found.append(int(where[dist.min(1).argmin()]))
                break
    return found


def convex_box(cells: list[int], lattice: PatchLattice) -> np.ndarray:
    """The box around the patches ``cells``."""
    boxes = lattice.cell_boxes(np.asarray(cells))
    return np.concatenate([boxes[:, :2].min(0), boxes[:, 2:].max(0)])


def hull_mask(
    cells: list[int], lattice: PatchLattice, hw: tuple[int, int], box: np.ndarray | None = None
) -> np.ndarray:
    """``(H, W)`` bool: the convex hull of the patches ``cells`` (the paper's
    Figure 9 "convex closure", a coarse mask), cut to ``box`` if given."""
    corners = lattice.cell_boxes(np.asarray(cells))[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 2)
    hull = ConvexHull(np.unique(corners, axis=0))
    ys, xs = np.mgrid[: hw[0], : hw[1]] + 0.5
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1)
    inside = (pixels @ hull.equations[:, :2].T + hull.equations[:, 2] <= 1e-9).all(1)
    mask = inside.reshape(hw)
    if box is not None:
        mask &= (xs >= box[0]) & (xs <= box[2]) & (ys >= box[1]) & (ys <= box[3])
    return mask


def _inside(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    return (
        (points[:, 0] >= box[0])
        & (points[:, 0] <= box[2])
        & (points[:, 1] >= box[1])
        & (points[:, 1] <= box[3])
    )


def _support(options: np.ndarray, others: list[np.ndarray], lattice: PatchLattice) -> np.ndarray:
    """Per option patch, how many of the other generated codes occur among its
    8 neighbours (each code counted once)."""
    r, c = np.divmod(options, lattice.cols)
    support = np.zeros(len(options), dtype=np.int64)
    for where in others:
        orow, ocol = np.divmod(where, lattice.cols)
        near = (np.abs(r[:, None] - orow[None]) <= 1) & (np.abs(c[:, None] - ocol[None]) <= 1)
        support += (near & (options[:, None] != where[None])).any(1)
    return support
