"""ROAD's imputation solver (`faithfulness.multigrid`): its coarse levels are exactly Galerkin's, at the
stage's iteration count it solves a large hole to well under ROAD's noise (checked against an independent
sparse direct solve), and a system's result is its own whatever the threads or batch."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as sla
import torch

from pipeline.faithfulness import multigrid as MG
from pipeline.faithfulness import road as R


def _system(keep: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """(A on the removed pixels, W from kept to removed pixels, removed mask) of ROAD's system, built from
    its definition (1/6 direct, 1/12 diagonal in-image neighbours) for one (h, w) keep mask."""
    h, w = keep.shape
    n = h * w
    yy, xx = np.divmod(np.arange(n), w)
    rows, cols, vals = [], [], []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                ty, tx = yy + dy, xx + dx
                ok = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
                rows.append(np.arange(n)[ok])
                cols.append((ty * w + tx)[ok])
                vals.append(np.full(ok.sum(), 1 / 12 if dy and dx else 1 / 6))
    weights = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    free = ~keep.reshape(-1)
    a = sp.diags(np.asarray(weights.sum(axis=1)).ravel()) - weights
    return a[free][:, free].tocsc(), weights[free][:, ~free], free


def _dense(free: np.ndarray, diag: np.ndarray, w: np.ndarray) -> np.ndarray:
    """A coarse level's matrix on its unknowns, from the solver's (free, diag, w) arrays."""
    h, wd = free.shape
    a = np.diag(diag.reshape(-1).astype(np.float64))
    for d, (dy, dx) in enumerate(MG.DIRECTIONS):
        for y in range(h):
            for x in range(wd):
                if 0 <= y + dy < h and 0 <= x + dx < wd:
                    a[y * wd + x, (y + dy) * wd + x + dx] -= w[d, y, x]
    unknown = free.reshape(-1) > 0
    return a[np.ix_(unknown, unknown)]


def _prolongation(free: np.ndarray, coarse_shape: tuple[int, int]) -> np.ndarray:
    """P from a level's unknowns to its 2 × 2 aggregates' (all cells): an aggregate's value to its children."""
    ys, xs = np.nonzero(free > 0)
    p = np.zeros((len(ys), coarse_shape[0] * coarse_shape[1]))
    p[np.arange(len(ys)), (ys // 2) * coarse_shape[1] + xs // 2] = 1.0
    return p


def test_coarse_levels_are_p_transpose_a_p():
    rng = np.random.default_rng(0)
    keep = rng.random((27, 29)) < 0.3  # odd sides, so each coarse grid gains a half-filled edge
    levels = MG.hierarchy(keep)
    assert [lv[0].shape for lv in levels] == [(27, 29), (14, 15), (7, 8)]
    fine = _system(keep)[0].toarray()  # the pixel grid's A, from ROAD's definition
    for (free, _, _), (coarse_free, coarse_diag, coarse_w) in pairwise(levels):
        p = _prolongation(free, coarse_free.shape)
        galerkin = p.T @ fine @ p
        unknown = coarse_free.reshape(-1) > 0
        np.testing.assert_allclose(_dense(coarse_free, coarse_diag, coarse_w), galerkin[np.ix_(unknown, unknown)],
                                   rtol=1e-6, atol=1e-7)
        assert np.all(galerkin[~unknown] == 0)  # an aggregate with no removed child has no unknown
        fine = galerkin[np.ix_(unknown, unknown)]


def _holes(s: int = 96) -> tuple[np.ndarray, np.ndarray]:
    g = torch.Generator().manual_seed(0)
    values = torch.randn(2, 3, s, s, generator=g).numpy()
    keep = np.zeros((2, s, s), dtype=bool)
    keep[0, 60:90, 40:64] = True  # one kept blob: 92% of the image removed around it
    keep[1, 80:, :] = torch.rand(16, s, generator=g).numpy() < 0.5  # kept pixels along the bottom only
    return values, keep


def test_the_stages_iterations_fill_a_large_hole_as_a_direct_solve_does():
    values, keep = _holes()
    ours = MG.impute(values, keep, R.ROAD_ITERS, R.ROAD_TOL)
    for m in range(2):
        a, w_kept, free = _system(keep[m])
        flat = values[m].reshape(3, -1).astype(np.float64)
        solved = sla.spsolve(a, (w_kept @ flat[:, ~free].T))  # (unknowns, 3)
        ref = flat.copy()
        ref[:, free] = solved.T
        # the coarse-to-fine CG this replaced (32 iterations a level) was off by 0.23 here
        np.testing.assert_allclose(ours[m].reshape(3, -1), ref, atol=1e-3)


def test_a_systems_result_does_not_depend_on_threads_or_its_batch():
    rng = np.random.default_rng(3)
    values = rng.standard_normal((10, 3, 40, 36)).astype(np.float32)
    keep = rng.random((10, 40, 36)) < np.linspace(0.02, 0.95, 10)[:, None, None]  # 3 tasks of up to 4
    alone = np.stack([MG.impute(values[i:i + 1], keep[i:i + 1], R.ROAD_ITERS, R.ROAD_TOL)[0] for i in range(10)])
    np.testing.assert_array_equal(MG.impute(values, keep, R.ROAD_ITERS, R.ROAD_TOL, threads=2), alone)
    kept = np.broadcast_to(keep[:, None], values.shape)
    np.testing.assert_array_equal(alone[kept], values[kept])


def test_nothing_kept_gives_the_normalised_zero_and_nothing_removed_the_image():
    values = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    none_kept = MG.impute(values, np.zeros((1, 16, 16), dtype=bool), R.ROAD_ITERS, R.ROAD_TOL)
    all_kept = MG.impute(values, np.ones((1, 16, 16), dtype=bool), R.ROAD_ITERS, R.ROAD_TOL)
    assert np.array_equal(none_kept, np.zeros_like(values))
    assert np.array_equal(all_kept, values)


def test_shapes_that_do_not_match_are_refused():
    with pytest.raises(ValueError, match=r"keep \(M, h, w\)"):
        MG.impute(np.zeros((2, 3, 8, 8), np.float32), np.zeros((2, 1, 8, 8), bool), 1, 1e-6)
