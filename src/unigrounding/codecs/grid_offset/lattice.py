"""GETok's two lattices over the model-input frame, and their token names.

* The **grid**: ``n x n`` cells; token ``<grid_i_j>`` names the *centre* of the
  cell in column ``i`` (x) and row ``j`` (y) — x first, as the paper's
  ``<grid 12,14>`` replaces the text point ``(124, 143)``.
* The **offset** lattice: step ``S = diag(W/m, H/m)`` pixels (the paper's
  "offset size" ``m``); token ``<off_du_dv>`` moves a point by ``S @ (du, dv)``
  with ``du, dv in {-1, 0, 1}``. ``<delete>`` drops the point.

All coordinates here are pixels ``(x, y)`` of the model-input frame (``hw`` is
its ``(H, W)``); a point lies on pixel ``(floor(y), floor(x))``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

DELETE = "<delete>"
MOVES = tuple((du, dv) for dv in (-1, 0, 1) for du in (-1, 0, 1))
_GRID = re.compile(r"<grid_(\d+)_(\d+)>")
_OFFSET = re.compile(r"<off_(-?1|0)_(-?1|0)>")


def offset_token(du: int, dv: int) -> str:
    return f"<off_{du}_{dv}>"


@dataclass(frozen=True)
class GridLattice:
    """``n x n`` grid cells and ``m x m`` offset steps over a model-input frame."""

    n: int = 32
    m: int = 64

    def __post_init__(self) -> None:
        if self.n < 1 or self.m < 1:
            raise ValueError(f"grid size n and offset size m must be >= 1, got {self.n}, {self.m}")

    # ------------------------------------------------------------- vocabulary
    def grid_token(self, i: int, j: int) -> str:
        return f"<grid_{i}_{j}>"

    def grid_tokens(self, cells: np.ndarray) -> str:
        """The grid tokens of cells ``(K, 2)`` ``(i, j)``, concatenated."""
        return "".join(self.grid_token(int(i), int(j)) for i, j in np.reshape(cells, (-1, 2)))

    def tokens(self) -> tuple[str, ...]:
        """Every token of the codec: grid (row-major), the nine moves, ``<delete>``."""
        grid = [self.grid_token(i, j) for j in range(self.n) for i in range(self.n)]
        return (*grid, *(offset_token(*d) for d in MOVES), DELETE)

    def read_grid(self, token: str) -> tuple[int, int] | None:
        """``(i, j)`` of a grid token; ``None`` if malformed or outside the lattice."""
        match = _GRID.fullmatch(token)
        if match is None:
            return None
        i, j = int(match[1]), int(match[2])
        return (i, j) if i < self.n and j < self.n else None

    @staticmethod
    def read_offset(token: str) -> tuple[int, int] | None:
        match = _OFFSET.fullmatch(token)
        return None if match is None else (int(match[1]), int(match[2]))

    # --------------------------------------------------------------- geometry
    def cell_size(self, hw: tuple[int, int]) -> np.ndarray:
        return np.array([hw[1] / self.n, hw[0] / self.n])

    def step(self, hw: tuple[int, int]) -> np.ndarray:
        """The offset step ``(s_x, s_y)`` in pixels."""
        return np.array([hw[1] / self.m, hw[0] / self.m])

    def cell_of(self, xy: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        """``(K, 2)`` int cells ``(i, j)`` holding the points (clipped to the grid)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return np.clip(np.floor(xy / self.cell_size(hw)), 0, self.n - 1).astype(int)

    def centre(self, cells: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        """``(K, 2)`` pixel centres of cells ``(i, j)``."""
        cells = np.asarray(cells, dtype=np.float64).reshape(-1, 2)
        return (cells + 0.5) * self.cell_size(hw)

    def all_centres(self, hw: tuple[int, int]) -> np.ndarray:
        """``(n, n, 2)`` centres indexed ``[j, i]`` (row, column)."""
        j, i = np.meshgrid(np.arange(self.n), np.arange(self.n), indexing="ij")
        return self.centre(np.stack([i, j], -1).reshape(-1, 2), hw).reshape(self.n, self.n, 2)

    def move(self, xy: np.ndarray, moves: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        """Points displaced by ``S @ (du, dv)`` per row of ``moves``."""
        return np.asarray(xy, dtype=np.float64).reshape(-1, 2) + np.asarray(
            moves, dtype=np.float64
        ).reshape(-1, 2) * self.step(hw)
