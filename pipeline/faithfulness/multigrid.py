"""ROAD's linear imputation solved by conjugate gradient preconditioned with an aggregation multigrid,
compiled (numba), one system at a time, the systems spread over the stage's threads.

The system (`road`): each removed pixel equals the weighted mean of its in-image neighbours (1/6 for the 4
direct, 1/12 for the 4 diagonal ones), the kept pixels fixed. On the removed pixels that is A x = b with
A = D − W, D the sum of each pixel's in-image neighbour weights and W the weights between removed pixels:
a symmetric positive-definite M-matrix when at least one pixel is kept. The channels share A; CG runs on
all of them at once (one inner product over every channel).

Why multigrid: when most of the image is removed (MoRF/LeRF at 90%, a ReLU'd CAM with many zeros) the far
field of a hole is fixed by a few kept pixels, and a Jacobi-preconditioned CG needs on the order of the
hole's diameter in iterations to move it; its residual is small long before its error is (measured on the
default run's systems: 32 iterations per level of a coarse-to-fine CG left errors up to 0.26 in normalised
units, 26 times ROAD's noise). A V-cycle corrects those smooth errors on coarser grids, so every
preconditioned iteration shrinks the error by a fixed factor whatever the hole (measured on the same
systems: 10 iterations, largest error 1.7e-3, float32's floor).

The multigrid:
- Levels: each level groups the previous one's pixels into 2 × 2 aggregates (a removed-pixel aggregate
  when any child is removed) down to `COARSEST` pixels a side. Prolongation P copies an aggregate's value
  to its removed children; the coarse matrix is P^T A P (Galerkin), a 9-point stencil whose weights are
  the sums of the fine weights between two aggregates — built exactly from the fine weights.
- The coarsest level, the first whose shorter side is ≤ `COARSEST`, is solved exactly (a float64 Cholesky
  factor of its unknowns: at most 12 × 12 = 144 at 96 px).
- A V-cycle: one damped Jacobi sweep, the coarse correction scaled by `OVERCORRECT` (unsmoothed
  aggregation underestimates smooth errors; 1.5 measured best of 1, 1.5, 1.8), one more sweep. Symmetric,
  so it is a valid CG preconditioner.

Why compiled, one system at a time: a system's vectors (3 channels × 98 × 98 float32, padded) fit in a
core's cache, so each loop of an iteration runs from cache; the same algorithm as batched torch operations
streamed every array of a 32-system batch through memory ~75 times an iteration (measured on the default
run's 899 systems: 12.7 ms a system on one core, against ~1.3 ms here, ~0.7 ms on two). Each system's
result depends on nothing but its own inputs, whatever the threads, the batch or the process.

Layout: every grid is stored with a 1-pixel zero border (h + 2, w + 2), so a stencil needs no bounds
checks; vectors are zero off the unknowns; rows with no unknown are skipped (`busy`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np

from pipeline import jitcache

jitcache.by_content(__file__)  # compiled once per machine and source, not once per clone (pipeline/jitcache.py)

_DIRECT, _DIAGONAL = 1.0 / 6.0, 1.0 / 12.0
DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
_DY = np.array([dy for dy, _ in DIRECTIONS], np.int64)
_DX = np.array([dx for _, dx in DIRECTIONS], np.int64)
_WEIGHT = np.array([_DIAGONAL if dy and dx else _DIRECT for dy, dx in DIRECTIONS], np.float32)
COARSEST, JACOBI, OVERCORRECT = 12, 0.7, 1.5
SYSTEMS_PER_TASK = 4  # systems a thread takes at a time: small, as systems differ in cost

# No fastmath: with reassociation or FMA contraction allowed, the rounding depends on the compiler's inlining
# context, so a freshly compiled solver and the one numba loads from its cache gave different results (by
# ~3e-6 in ROAD per image); as IEEE code the results are the same bits in every process.
_jit = nb.njit(cache=True, nogil=True, boundscheck=False)


@_jit
def _busy(free):
    """(h + 2,) bool: the rows that hold an unknown."""
    busy = np.zeros(free.shape[0], np.bool_)
    for y in range(1, free.shape[0] - 1):
        for x in range(1, free.shape[1] - 1):
            if free[y, x] != 0:
                busy[y] = True
                break
    return busy


@_jit
def _apply_finest(free, diag, v, out, busy):
    """out = A v on the pixel grid, whose weights are the constant stencil between unknowns."""
    g, d = np.float32(_DIAGONAL), np.float32(_DIRECT)
    for c in range(v.shape[0]):
        for y in range(1, v.shape[1] - 1):
            if not busy[y]:
                continue
            for x in range(1, v.shape[2] - 1):
                s = (g * (v[c, y - 1, x - 1] + v[c, y - 1, x + 1] + v[c, y + 1, x - 1] + v[c, y + 1, x + 1])
                     + d * (v[c, y - 1, x] + v[c, y + 1, x] + v[c, y, x - 1] + v[c, y, x + 1]))
                out[c, y, x] = free[y, x] * (diag[y, x] * v[c, y, x] - s)


@_jit
def _apply_coarse(w, diag, v, out, busy):
    """out = A v on a coarse grid: w (8, h + 2, w + 2) the off-diagonal −A per direction (0 off the unknowns)."""
    for c in range(v.shape[0]):
        for y in range(1, v.shape[1] - 1):
            if not busy[y]:
                continue
            for x in range(1, v.shape[2] - 1):
                s = (w[0, y, x] * v[c, y - 1, x - 1] + w[1, y, x] * v[c, y - 1, x] + w[2, y, x] * v[c, y - 1, x + 1]
                     + w[3, y, x] * v[c, y, x - 1] + w[4, y, x] * v[c, y, x + 1]
                     + w[5, y, x] * v[c, y + 1, x - 1] + w[6, y, x] * v[c, y + 1, x]
                     + w[7, y, x] * v[c, y + 1, x + 1])
                out[c, y, x] = diag[y, x] * v[c, y, x] - s


@_jit
def _weight(free, w, d, y, x, finest):
    """−A between padded (y, x) and its neighbour in direction d: on the pixel grid the stencil's between
    unknowns (`w` unused), on a coarse grid w[d, y, x]."""
    return _WEIGHT[d] * free[y + _DY[d], x + _DX[d]] if finest else w[d, y, x]


@_jit
def _coarsen(free, ground, w, finest):
    """P^T A P on 2 × 2 aggregates: the coarse (free, ground, w, diag). ground is each unknown's weight to
    the kept pixels (A's row sum), so diag = ground + Σ w is a sum of positive terms: the coarse matrices
    stay diagonally dominant in float32, however large the aggregates (D − internal weights would cancel).
    A grid of odd side gains an aggregate with one row/column of children."""
    h, wd = free.shape[0] - 2, free.shape[1] - 2
    hc, wc = (h + 1) // 2, (wd + 1) // 2
    cfree = np.zeros((hc + 2, wc + 2), np.float32)
    cground = np.zeros((hc + 2, wc + 2), np.float32)
    cw = np.zeros((8, hc + 2, wc + 2), np.float32)
    for y in range(h):
        for x in range(wd):
            if free[y + 1, x + 1] == 0:
                continue
            yc, xc = y // 2 + 1, x // 2 + 1
            cfree[yc, xc] = 1.0
            cground[yc, xc] += ground[y + 1, x + 1]
            for d in range(8):
                oy, ox = (y + _DY[d]) // 2 - y // 2, (x + _DX[d]) // 2 - x // 2
                if oy or ox:  # an edge inside the aggregate drops out of P^T A P
                    k = (oy + 1) * 3 + ox + 1  # 0..8 without the centre 4
                    cw[k if k < 4 else k - 1, yc, xc] += _weight(free, w, d, y + 1, x + 1, finest)
    cdiag = np.ones((hc + 2, wc + 2), np.float32)
    for y in range(1, hc + 1):
        for x in range(1, wc + 1):
            if cfree[y, x] != 0:
                cdiag[y, x] = cground[y, x] + cw[:, y, x].sum()
    return cfree, cground, cw, cdiag


@_jit
def _levels(free, ground, diag):
    """The hierarchy: lists of each level's (free, diag, w), finest first (its w a placeholder)."""
    frees, grounds, diags, ws = [free], [ground], [diag], [np.zeros((8, 1, 1), np.float32)]
    while min(frees[-1].shape[0], frees[-1].shape[1]) - 2 > COARSEST:
        f, g, w, dg = _coarsen(frees[-1], grounds[-1], ws[-1], len(frees) == 1)
        frees.append(f)
        grounds.append(g)
        ws.append(w)
        diags.append(dg)
    return frees, diags, ws


@_jit
def _factor_coarsest(free, diag, w, finest):
    """(at (n, 2) the padded (y, x) of the level's n unknowns, L (n, n) float64 with A = L Lᵀ on them);
    finest: the level is the pixel grid itself (an image of side ≤ COARSEST)."""
    index = -np.ones(free.shape, np.int64)
    n = 0
    for y in range(1, free.shape[0] - 1):
        for x in range(1, free.shape[1] - 1):
            if free[y, x] != 0:
                index[y, x] = n
                n += 1
    at, a = np.empty((n, 2), np.int64), np.zeros((n, n))
    for y in range(1, free.shape[0] - 1):
        for x in range(1, free.shape[1] - 1):
            i = index[y, x]
            if i < 0:
                continue
            at[i, 0], at[i, 1] = y, x
            a[i, i] = diag[y, x]
            for d in range(8):
                j = index[y + _DY[d], x + _DX[d]]
                if j >= 0:
                    a[i, j] -= _weight(free, w, d, y, x, finest)
    for j in range(n):  # Cholesky–Banachiewicz, in place
        s = a[j, j]
        for k in range(j):
            s -= a[j, k] * a[j, k]
        a[j, j] = np.sqrt(s)
        for i in range(j + 1, n):
            s = a[i, j]
            for k in range(j):
                s -= a[i, k] * a[j, k]
            a[i, j] = s / a[j, j]
    return at, a


@_jit
def _solve_coarsest(at, chol, r, out):
    """out = A⁻¹ r on the coarsest level's unknowns (L y = r, then Lᵀ x = y, row by row)."""
    n = len(at)
    t = np.empty(n)
    for c in range(r.shape[0]):
        for i in range(n):
            s = np.float64(r[c, at[i, 0], at[i, 1]])
            for k in range(i):
                s -= chol[i, k] * t[k]
            t[i] = s / chol[i, i]
        for i in range(n - 1, -1, -1):
            t[i] /= chol[i, i]
            for k in range(i):
                t[k] -= chol[i, k] * t[i]
        for i in range(n):
            out[c, at[i, 0], at[i, 1]] = t[i]


@_jit
def _vcycle(frees, diags, jds, ws, busys, at, chol, rs, xs, ts):
    """xs[0] ≈ A⁻¹ rs[0] (zero off the unknowns); rs, xs, ts: every level's residual, iterate, scratch;
    jds: JACOBI / diag per level (a division in these loops costs 5× its multiplication)."""
    top = len(frees) - 1
    over = np.float32(OVERCORRECT)
    for lv in range(top):
        r, x, t, jd, busy = rs[lv], xs[lv], ts[lv], jds[lv], busys[lv]
        for c in range(r.shape[0]):
            for y in range(1, r.shape[1] - 1):
                if busy[y]:
                    for i in range(1, r.shape[2] - 1):
                        x[c, y, i] = jd[y, i] * r[c, y, i]
        if lv == 0:
            _apply_finest(frees[0], diags[0], x, t, busy)
        else:
            _apply_coarse(ws[lv], diags[lv], x, t, busy)
        coarse = rs[lv + 1]
        for c in range(coarse.shape[0]):  # Pᵀ: each aggregate sums its 2 × 2 children's residual
            for y in range(1, coarse.shape[1] - 1):
                for i in range(1, coarse.shape[2] - 1):
                    fy, fx = 2 * y - 1, 2 * i - 1  # (a child in the zero border of an odd side adds 0)
                    coarse[c, y, i] = (r[c, fy, fx] - t[c, fy, fx] + r[c, fy, fx + 1] - t[c, fy, fx + 1]
                                       + r[c, fy + 1, fx] - t[c, fy + 1, fx]
                                       + r[c, fy + 1, fx + 1] - t[c, fy + 1, fx + 1])
    _solve_coarsest(at, chol, rs[top], xs[top])
    for lv in range(top - 1, -1, -1):
        r, x, t, jd, free, busy, up = rs[lv], xs[lv], ts[lv], jds[lv], frees[lv], busys[lv], xs[lv + 1]
        for c in range(r.shape[0]):  # P: each removed child gets its aggregate's correction
            for y in range(1, r.shape[1] - 1):
                if busy[y]:
                    yc = (y + 1) >> 1
                    for i in range(1, up.shape[2] - 1):
                        u = over * up[c, yc, i]
                        x[c, y, 2 * i - 1] += u * free[y, 2 * i - 1]
                        x[c, y, 2 * i] += u * free[y, 2 * i]  # 0 in the border of an odd side
        if lv == 0:
            _apply_finest(free, diags[0], x, t, busy)
        else:
            _apply_coarse(ws[lv], diags[lv], x, t, busy)
        for c in range(r.shape[0]):
            for y in range(1, r.shape[1] - 1):
                if busy[y]:
                    for i in range(1, r.shape[2] - 1):
                        x[c, y, i] += jd[y, i] * (r[c, y, i] - t[c, y, i])


@_jit
def _dot(a, b, busy):
    """Σ a·b over the busy rows (float32 products summed in float64): one partial sum per column, added
    elementwise row after row (vectorised without reassociating, see _jit), then across the columns."""
    acc = np.zeros(a.shape[2])
    for c in range(a.shape[0]):
        for y in range(1, a.shape[1] - 1):
            if busy[y]:
                for x in range(1, a.shape[2] - 1):
                    acc[x] += a[c, y, x] * b[c, y, x]
    return acc.sum()


@_jit
def _finest(keep):
    """The pixel grid, padded: free (1 on unknowns), ground (an unknown's weight to kept pixels), diag (D
    on unknowns, 1 elsewhere); and the unknowns' count."""
    h, wd = keep.shape
    free, ground = np.zeros((h + 2, wd + 2), np.float32), np.zeros((h + 2, wd + 2), np.float32)
    diag = np.ones((h + 2, wd + 2), np.float32)
    n = 0
    for y in range(h):
        for x in range(wd):
            if keep[y, x]:
                continue
            free[y + 1, x + 1] = 1.0
            n += 1
            total, kept = np.float32(0.0), np.float32(0.0)
            for d in range(8):
                ty, tx = y + _DY[d], x + _DX[d]
                if 0 <= ty < h and 0 <= tx < wd:
                    total += _WEIGHT[d]
                    if keep[ty, tx]:
                        kept += _WEIGHT[d]
            diag[y + 1, x + 1], ground[y + 1, x + 1] = total, kept
    return free, ground, diag, n


@_jit
def _solve(values, keep, iters, tol, out):
    """out (C, h, w) = values (C, h, w) imputed where keep (h, w) is False; returns the CG iterations run."""
    channels, h, wd = values.shape
    free, ground, diag, unknowns = _finest(keep)
    if unknowns == 0 or unknowns == h * wd:  # nothing to solve, or nothing kept: the normalised zero
        for c in range(channels):
            for y in range(h):
                for x in range(wd):
                    out[c, y, x] = values[c, y, x] if keep[y, x] else 0.0
        return 0
    frees, diags, ws = _levels(free, ground, diag)
    at, chol = _factor_coarsest(frees[-1], diags[-1], ws[-1], len(frees) == 1)
    busys = [_busy(f) for f in frees]
    jds = [np.float32(JACOBI) / d for d in diags]
    rs = [np.zeros((channels, f.shape[0], f.shape[1]), np.float32) for f in frees]
    xs = [np.zeros_like(v) for v in rs]
    ts = [np.zeros_like(v) for v in rs]
    busy, r, z, ap = busys[0], rs[0], xs[0], ts[0]  # ap shares the V-cycle's scratch: never live together
    for c in range(channels):  # b: the kept neighbours' pull on each unknown
        for y in range(h):
            for x in range(wd):
                if not keep[y, x]:
                    s = np.float32(0.0)
                    for d in range(8):
                        ty, tx = y + _DY[d], x + _DX[d]
                        if 0 <= ty < h and 0 <= tx < wd and keep[ty, tx]:
                            s += _WEIGHT[d] * values[c, ty, tx]
                    r[c, y + 1, x + 1] = s
    rr = _dot(r, r, busy)
    stop = tol * tol * rr
    solution = np.zeros_like(r)
    _vcycle(frees, diags, jds, ws, busys, at, chol, rs, xs, ts)
    p = z.copy()
    rz = _dot(r, z, busy)
    done = 0
    while done < iters and rr > stop:
        done += 1
        _apply_finest(free, diag, p, ap, busy)
        alpha = np.float32(rz / max(_dot(p, ap, busy), 1e-30))
        for c in range(channels):
            for y in range(1, h + 1):
                if busy[y]:
                    for x in range(1, wd + 1):
                        solution[c, y, x] += alpha * p[c, y, x]
                        r[c, y, x] -= alpha * ap[c, y, x]
        rr = _dot(r, r, busy)
        _vcycle(frees, diags, jds, ws, busys, at, chol, rs, xs, ts)
        rz_new = _dot(r, z, busy)
        beta = np.float32(rz_new / max(rz, 1e-30))
        rz = rz_new
        for c in range(channels):
            for y in range(1, h + 1):
                if busy[y]:
                    for x in range(1, wd + 1):
                        p[c, y, x] = z[c, y, x] + beta * p[c, y, x]
    for c in range(channels):
        for y in range(h):
            for x in range(wd):
                out[c, y, x] = values[c, y, x] if keep[y, x] else solution[c, y + 1, x + 1]
    return done


def impute(values: np.ndarray, keep: np.ndarray, iters: int, tol: float, threads: int = 1) -> np.ndarray:
    """Linear imputation of values (M, C, h, w) float32 where keep (M, h, w) bool is False, without noise:
    at most `iters` preconditioned CG iterations a system, fewer once its residual is `tol` of its
    right-hand side; `threads` solve SYSTEMS_PER_TASK systems at a time. Where nothing is kept the result
    is 0."""
    values = np.ascontiguousarray(values, np.float32)
    keep = np.ascontiguousarray(keep, np.bool_)
    if values.ndim != 4 or keep.shape != (values.shape[0], *values.shape[2:]):
        raise ValueError(f"values must be (M, C, h, w) and keep (M, h, w), got {values.shape} and {keep.shape}")
    out = np.empty_like(values)

    def solve(start: int) -> None:  # a Python loop: ~5 µs a call against ~1 ms a system, and less to compile
        for m in range(start, min(start + SYSTEMS_PER_TASK, len(values))):
            _solve(values[m], keep[m], iters, tol, out[m])

    starts = range(0, len(values), SYSTEMS_PER_TASK)
    if threads <= 1 or len(starts) <= 1:
        for start in starts:
            solve(start)
    else:
        with ThreadPoolExecutor(threads) as pool:  # _solve releases the GIL
            list(pool.map(solve, starts))
    return out


def hierarchy(keep: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Each level's (free (h, w) 1 on unknowns, diag (h, w) A's diagonal, w (8, h, w) the off-diagonal −A per
    DIRECTIONS, None on the pixel grid) for one keep mask (h, w), finest first: the solver's own levels."""
    free, ground, diag, _ = _finest(np.ascontiguousarray(keep, np.bool_))
    frees, diags, ws = _levels(free, ground, diag)
    return [(f[1:-1, 1:-1], d[1:-1, 1:-1], None if i == 0 else w[:, 1:-1, 1:-1])
            for i, (f, d, w) in enumerate(zip(frees, diags, ws, strict=True))]
