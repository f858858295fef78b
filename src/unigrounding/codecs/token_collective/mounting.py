"""ClawMachine's V-L mounting (ClawMachine [docs/papers.md], section
2.1): a region becomes the *token collective* of the patches it covers.

The lattice is the vision tower's token map (``rows x cols`` patches of
``stride`` model-input pixels); a patch is indexed in raster order
(``row * cols + col``) and sits at its centre ``((col + 0.5) * stride,
(row + 0.5) * stride)``. Everything here is in the model-input frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PatchLattice:
    """The patch grid the codes live on."""

    rows: int
    cols: int
    stride: float

    def centres(self) -> np.ndarray:
        """``(rows * cols, 2)`` xy patch centres, raster order."""
        r, c = np.divmod(np.arange(self.rows * self.cols), self.cols)
        return np.stack([(c + 0.5) * self.stride, (r + 0.5) * self.stride], axis=1)

    def cell_boxes(self, cells: np.ndarray) -> np.ndarray:
        """``(K, 4)`` xyxy of the patches ``cells``."""
        r, c = np.divmod(np.asarray(cells, dtype=np.int64), self.cols)
        s = self.stride
        return np.stack([c * s, r * s, (c + 1) * s, (r + 1) * s], axis=1).astype(np.float64)

    def cell_of(self, xy: np.ndarray) -> np.ndarray:
        """Raster index of the patch under each ``(K, 2)`` point (clamped to the grid)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        c = np.clip(np.floor(xy[:, 0] / self.stride), 0, self.cols - 1).astype(np.int64)
        r = np.clip(np.floor(xy[:, 1] / self.stride), 0, self.rows - 1).astype(np.int64)
        return r * self.cols + c

    def cells_in_box(self, box: np.ndarray) -> np.ndarray:
        """Patches whose centre lies inside ``box`` (x1, y1, x2, y2; edges
        included), raster order; a box that holds no centre falls back to the
        patch nearest to its centre (the paper: a tiny region takes the
        nearest patch)."""
        x1, y1, x2, y2 = np.asarray(box, dtype=np.float64)
        xy = self.centres()
        inside = (xy[:, 0] >= x1) & (xy[:, 0] <= x2) & (xy[:, 1] >= y1) & (xy[:, 1] <= y2)
        if inside.any():
            return np.flatnonzero(inside)
        return self.cell_of(np.array([[(x1 + x2) / 2, (y1 + y2) / 2]]))

    def cells_in_mask(self, mask: np.ndarray) -> np.ndarray:
        """Patches whose centre pixel is in ``mask`` ``(H, W)`` (a free-form
        region), raster order; falls back to the patch under the mask's
        centroid, and to the grid's centre patch for an empty mask."""
        mask = np.asarray(mask, dtype=bool)
        xy = self.centres()
        px = np.clip(np.floor(xy[:, 0]).astype(np.int64), 0, mask.shape[1] - 1)
        py = np.clip(np.floor(xy[:, 1]).astype(np.int64), 0, mask.shape[0] - 1)
        inside = mask[py, px]
        if inside.any():
            return np.flatnonzero(inside)
        ys, xs = np.nonzero(mask)
        if not len(ys):
            return self.cell_of(
                np.array([[self.cols * self.stride / 2, self.rows * self.stride / 2]])
            )
        return self.cell_of(np.array([[xs.mean() + 0.5, ys.mean() + 0.5]]))

    def cells_at_points(self, xy: np.ndarray) -> np.ndarray:
        """The distinct patches under the points (a point or a scribble), raster order."""
        return np.unique(self.cell_of(xy))
