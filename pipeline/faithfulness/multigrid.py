"""ROAD's linear imputation solved by conjugate gradient preconditioned with an aggregation multigrid.

The system (`road`): each removed pixel equals the weighted mean of its in-image neighbours (1/6 for the 4
direct, 1/12 for the 4 diagonal ones), the kept pixels fixed. On the removed pixels that is A x = b with
A = D − W, D the sum of each pixel's in-image neighbour weights and W the weights between removed pixels:
a symmetric positive-definite M-matrix when at least one pixel is kept.

Why multigrid: when most of the image is removed (MoRF/LeRF at 90%, a ReLU'd CAM with many zeros) the far
field of a hole is fixed by a few kept pixels, and a Jacobi-preconditioned CG needs on the order of the
hole's diameter in iterations to move it; its residual is small long before its error is (measured on the
default run's systems: 32 iterations per level of a coarse-to-fine CG left errors up to 0.26 in normalised
units, 26 times ROAD's noise). A V-cycle corrects those smooth errors on coarser grids, so every
preconditioned iteration shrinks the error by a fixed factor whatever the hole (measured on the same
systems: 10 iterations, largest error 1.7e-3, float32's floor, in no more time).

The multigrid, batched over every system and channel at once:
- Levels: each level groups the previous one's pixels into 2 × 2 aggregates (a removed-pixel aggregate
  when any child is removed) down to `COARSEST` pixels a side. Prolongation P copies an aggregate's value
  to its removed children; the coarse matrix is P^T A P (Galerkin), a 9-point stencil whose weights are
  the sums of the fine weights between two aggregates — built exactly, per system, from the fine weights.
- The coarsest level, the first whose shorter side is ≤ `COARSEST`, is solved exactly (a dense inverse per
  system: 12 × 12 = 144 unknowns at 96 px, 8 × 8 at 64 px).
- A V-cycle: one damped Jacobi sweep, the coarse correction scaled by `OVERCORRECT` (unsmoothed
  aggregation underestimates smooth errors; 1.5 measured best of 1, 1.5, 1.8), one more sweep. Symmetric,
  so it is a valid CG preconditioner.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_DIRECT, _DIAGONAL = 1.0 / 6.0, 1.0 / 12.0
DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
WEIGHTS = tuple(_DIAGONAL if dy and dx else _DIRECT for dy, dx in DIRECTIONS)
COARSEST, JACOBI, OVERCORRECT = 12, 0.7, 1.5


def neighbours(x: Tensor) -> Tensor:
    """(M, C, h, w) → Σ_j w_ij x_j over the in-image neighbours j of each pixel (zero outside).

    The 3×3 stencil [[1, 2, 1], [2, 0, 2], [1, 2, 1]] / 12 is the separable [1, 2, 1] ⊗ [1, 2, 1] / 12 minus
    the centre's 4/12: two 1-D passes of shifted adds (a 1-channel conv2d is ~5× slower on a CPU)."""
    p = F.pad(x, (1, 1, 1, 1))
    rows = p[..., :-2, :] + 2.0 * p[..., 1:-1, :] + p[..., 2:, :]  # (M, C, h, w + 2)
    both = rows[..., :-2] + 2.0 * rows[..., 1:-1] + rows[..., 2:]  # (M, C, h, w)
    return (both - 4.0 * x) * _DIAGONAL


def _shifted(p: Tensor, dy: int, dx: int, h: int, w: int) -> Tensor:
    """x[i + (dy, dx)] of a 1-pixel zero-padded p (M, C, h + 2, w + 2)."""
    return p[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]


class Level:
    """One grid of the hierarchy: free (M, 1, h, w) 1 on unknowns; diag (M, 1, h, w) A's diagonal (1 off the
    unknowns); weights (M, 8, h, w) the off-diagonal −A per direction, or None on the finest level, whose
    weights are the constant stencil masked by `free` (applied by `neighbours`, 3× faster)."""

    def __init__(self, free: Tensor, diag: Tensor, weights: Tensor | None = None):
        self.free, self.diag, self.weights = free, diag, weights

    def apply(self, x: Tensor) -> Tensor:
        """A x for x (M, C, h, w) zero off the unknowns."""
        if self.weights is None:
            return self.free * (self.diag * x - neighbours(x))
        h, w = x.shape[-2:]
        p, out = F.pad(x, (1, 1, 1, 1)), self.diag * x
        for d, (dy, dx) in enumerate(DIRECTIONS):
            out = out - self.weights[:, d:d + 1] * _shifted(p, dy, dx, h, w)
        return out

    def all_weights(self) -> Tensor:
        """(M, 8, h, w) the off-diagonal weights, built for the finest level."""
        if self.weights is not None:
            return self.weights
        h, w = self.free.shape[-2:]
        p = F.pad(self.free, (1, 1, 1, 1))
        return torch.cat([wt * self.free * _shifted(p, dy, dx, h, w)
                          for wt, (dy, dx) in zip(WEIGHTS, DIRECTIONS, strict=True)], dim=1)


def finest(keep: Tensor, dtype: torch.dtype) -> Level:
    """The level of the pixels themselves; keep (M, 1, h, w) bool."""
    free = (~keep).to(dtype)
    diag = neighbours(torch.ones_like(free))  # D: Σ of in-image weights, kept neighbours included
    return Level(free, torch.where(free > 0, diag, torch.ones_like(diag)))


def coarsen(level: Level) -> Level:
    """P^T A P on 2 × 2 aggregates (a grid of odd side gains a last row/column with no unknowns)."""
    w = level.all_weights()
    h, wd = w.shape[-2:]
    pad = (0, wd % 2, 0, h % 2)
    w, free, diag = F.pad(w, pad), F.pad(level.free, pad), F.pad(level.diag * level.free, pad)
    coarse_free = F.max_pool2d(free, 2)
    coarse_diag = 4.0 * F.avg_pool2d(diag, 2)
    coarse_w = torch.zeros(w.shape[0], 8, w.shape[2] // 2, w.shape[3] // 2, dtype=w.dtype, device=w.device)
    for a in (0, 1):
        for b in (0, 1):
            for d, (dy, dx) in enumerate(DIRECTIONS):
                child = w[:, d, a::2, b::2]  # (M, h/2, w/2) the edge from child (a, b) in direction d
                offset = ((a + dy) // 2, (b + dx) // 2)  # the aggregate it leads to, relative
                if offset == (0, 0):  # inside the aggregate: P^T A P's diagonal loses it
                    coarse_diag[:, 0] -= child
                else:
                    coarse_w[:, DIRECTIONS.index(offset)] += child
    coarse_diag = torch.where(coarse_free > 0, coarse_diag, torch.ones_like(coarse_diag))
    return Level(coarse_free, coarse_diag, coarse_w * coarse_free)


def dense(level: Level) -> Tensor:
    """(M, n, n) the level's matrix, n = h · w (rows off the unknowns are the identity's)."""
    w = level.all_weights()
    m, _, h, wd = w.shape
    n = h * wd
    a = torch.diag_embed(level.diag.reshape(m, n))
    yy, xx = torch.meshgrid(torch.arange(h, device=w.device), torch.arange(wd, device=w.device), indexing="ij")
    for d, (dy, dx) in enumerate(DIRECTIONS):
        ty, tx = yy + dy, xx + dx
        inside = ((ty >= 0) & (ty < h) & (tx >= 0) & (tx < wd)).reshape(-1)
        rows, cols = torch.arange(n, device=w.device)[inside], (ty * wd + tx).reshape(-1)[inside]
        a[:, rows, cols] -= w[:, d].reshape(m, n)[:, inside]
    return a


class Hierarchy:
    """The levels of a batch of systems and the V-cycle that preconditions CG on the finest."""

    def __init__(self, keep: Tensor, dtype: torch.dtype):
        self.levels = [finest(keep, dtype)]
        while min(self.levels[-1].free.shape[-2:]) > COARSEST:
            self.levels.append(coarsen(self.levels[-1]))
        last = self.levels[-1]
        a = dense(last).double()
        # a system with nothing kept is singular (its right-hand side is 0, so CG never applies this)
        a = a + 1e-9 * torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        self.coarsest_inverse = torch.linalg.inv(a).to(dtype)  # (M, n, n)

    def vcycle(self, r: Tensor, depth: int = 0) -> Tensor:
        """≈ A⁻¹ r on level `depth`, r (M, C, h, w) zero off the unknowns; a fixed symmetric linear map."""
        level = self.levels[depth]
        if depth == len(self.levels) - 1:
            m, c, h, w = r.shape
            x = torch.einsum("mij,mcj->mci", self.coarsest_inverse, r.reshape(m, c, h * w))
            return x.reshape(m, c, h, w) * level.free
        h, w = r.shape[-2:]
        x = JACOBI * r / level.diag
        residual = F.pad(r - level.apply(x), (0, w % 2, 0, h % 2))
        correction = self.vcycle(4.0 * F.avg_pool2d(residual, 2), depth + 1)  # P^T: the children's sum
        up = correction.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)[..., :h, :w]
        x = x + OVERCORRECT * level.free * up
        return x + JACOBI * (r - level.apply(x)) / level.diag


def impute(values: Tensor, keep: Tensor, iters: int, tol: float) -> Tensor:
    """Linear imputation of values (M, C, h, w) where keep (M, 1, h, w) is False, without noise: at most
    `iters` preconditioned CG iterations, each system stopping when its residual is `tol` of its
    right-hand side (so its result does not depend on the systems batched with it). Where nothing is kept
    the result is 0."""
    hierarchy = Hierarchy(keep, values.dtype)
    top = hierarchy.levels[0]
    known = values * keep
    b = top.free * neighbours(known)  # the kept neighbours' pull on each unknown
    x, r = torch.zeros_like(values), b
    z = hierarchy.vcycle(r)
    p, rz = z, (r * z).sum((1, 2, 3), keepdim=True)
    b_norm = b.pow(2).sum((1, 2, 3), keepdim=True).sqrt()
    for _ in range(iters):
        active = r.pow(2).sum((1, 2, 3), keepdim=True).sqrt() > tol * b_norm  # (M, 1, 1, 1)
        if not bool(active.any()):
            break
        ap = top.apply(p)
        alpha = active * rz / (p * ap).sum((1, 2, 3), keepdim=True).clamp_min(1e-30)
        x = x + alpha * p
        r = r - alpha * ap
        z = hierarchy.vcycle(r)
        rz_new = (r * z).sum((1, 2, 3), keepdim=True)
        p = torch.where(active, z + (rz_new / rz.clamp_min(1e-30)) * p, p)
        rz = rz_new
    return known + x * top.free
