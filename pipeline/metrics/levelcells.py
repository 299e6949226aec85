"""The lookup tables of the level sweeps (``metrics.leveltree``), computed once at import: per 4-bit code
of a 2×2 cell of pixel centres its twice-area and 4·Euler contribution, and per 8-bit mask of a pixel's
foreground neighbours the groups of mutually 8-connected ones and the cell deltas its arrival makes."""

from __future__ import annotations

import numpy as np

_POP = np.array([bin(c).count("1") for c in range(16)], dtype=np.int64)  # cell code a + 2b + 4c + 8d
_SCORE = np.where(_POP == 4, 2, np.where(_POP == 3, 1, 0)).astype(np.int64)  # 2 × area inside the border
_EULER4 = np.where(_POP == 1, 1, np.where(_POP == 3, -1, 0)).astype(np.int64)  # 4 × Euler contribution
_EULER4[[6, 9]] = -2  # diagonal pairs (8-connected foreground)
_RING = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))  # N NE E SE S SW W NW


def _ring_groups() -> tuple[np.ndarray, np.ndarray]:
    """Per 8-bit mask of foreground neighbours: (256,) number of groups of mutually 8-connected ones
    (they already share a component) and (256, 4) one ring position per group: one find per group."""
    count, rep = np.zeros(256, np.int64), np.zeros((256, 4), np.int64)
    for mask in range(256):
        todo = [b for b in range(8) if mask >> b & 1]
        while todo:
            stack = [todo.pop(0)]
            rep[mask, count[mask]] = stack[0]
            count[mask] += 1
            while stack:
                a = stack.pop()
                for b in list(todo):
                    if max(abs(_RING[a][0] - _RING[b][0]), abs(_RING[a][1] - _RING[b][1])) == 1:
                        todo.remove(b)
                        stack.append(b)
    return count, rep


_GROUPS, _GROUP_REP = _ring_groups()


def _cell_deltas() -> tuple[np.ndarray, np.ndarray]:
    """Per 8-bit mask of foreground neighbours: (256,) change of the cell score and of 4·Euler over the
    four 2×2 cells around a pixel when it arrives (the cells' codes are its neighbours plus itself)."""
    score, euler = np.zeros(256, np.int64), np.zeros(256, np.int64)
    n, ne, e, se, s, sw, w, nw = range(8)
    # per cell: the ring positions at its bits 1, 2, 4, 8 (-1: the arriving pixel)
    cells = ((nw, n, w, -1), (n, ne, -1, e), (w, -1, sw, s), (-1, e, s, se))
    for mask in range(256):
        for cell in cells:
            before = sum(1 << k for k, b in enumerate(cell) if b >= 0 and mask >> b & 1)
            after = before | sum(1 << k for k, b in enumerate(cell) if b < 0)
            score[mask] += _SCORE[after] - _SCORE[before]
            euler[mask] += _EULER4[after] - _EULER4[before]
    return score, euler


_DSCORE, _DEULER4 = _cell_deltas()
