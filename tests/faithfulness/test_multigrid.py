"""ROAD's imputation solver (`faithfulness.multigrid`): its coarse levels are exactly Galerkin's, and at the
stage's iteration count it solves a large hole to well under ROAD's noise, checked against an independent
sparse direct solve."""

from __future__ import annotations

import numpy as np
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


def test_coarse_level_is_p_transpose_a_p():
    rng = np.random.default_rng(0)
    keep = torch.tensor(rng.random((2, 1, 7, 9)) < 0.3)  # odd sides: the coarse grid gains a padded edge
    fine = MG.finest(keep, torch.float64)
    coarse = MG.coarsen(fine)
    a_fine, a_coarse = MG.dense(fine), MG.dense(coarse)  # (2, 63, 63), (2, 20, 20)
    for m in range(2):
        free = ~keep[m, 0].numpy()
        p = np.zeros((63, 20))  # P: an aggregate's value to its removed children
        for y, x in zip(*np.nonzero(free), strict=True):
            p[y * 9 + x, (y // 2) * 5 + x // 2] = 1.0
        galerkin = p.T @ a_fine[m].numpy() @ p
        unknown = coarse.free[m].reshape(-1).numpy() > 0
        np.testing.assert_allclose(a_coarse[m].numpy()[np.ix_(unknown, unknown)],
                                   galerkin[np.ix_(unknown, unknown)], atol=1e-12)
        assert np.all(galerkin[~unknown] == 0)  # an aggregate with no removed child has no unknown


def test_the_stages_iterations_fill_a_large_hole_as_a_direct_solve_does():
    g = torch.Generator().manual_seed(0)
    s = 96
    values = torch.randn(2, 3, s, s, generator=g)
    keep = torch.zeros(2, 1, s, s, dtype=torch.bool)
    keep[0, :, 60:90, 40:64] = True  # one kept blob: 92% of the image removed around it
    keep[1, :, 80:, :] = torch.rand(16, s, generator=g) < 0.5  # kept pixels along the bottom only
    ours = MG.impute(values, keep, R.ROAD_ITERS, R.ROAD_TOL)
    for m in range(2):
        a, w_kept, free = _system(keep[m, 0].numpy())
        flat = values[m].reshape(3, -1).double().numpy()
        solved = sla.spsolve(a, (w_kept @ flat[:, ~free].T))  # (unknowns, 3)
        ref = flat.copy()
        ref[:, free] = solved.T
        # the coarse-to-fine CG this replaced (32 iterations a level) was off by 0.23 here
        np.testing.assert_allclose(ours[m].reshape(3, -1).numpy(), ref, atol=1e-3)


def test_nothing_kept_gives_the_normalised_zero_and_nothing_removed_the_image():
    values = torch.randn(1, 3, 16, 16)
    none_kept = MG.impute(values, torch.zeros(1, 1, 16, 16, dtype=torch.bool), R.ROAD_ITERS, R.ROAD_TOL)
    all_kept = MG.impute(values, torch.ones(1, 1, 16, 16, dtype=torch.bool), R.ROAD_ITERS, R.ROAD_TOL)
    assert torch.equal(none_kept, torch.zeros_like(values))
    assert torch.equal(all_kept, values)
