"""The folder evaluator's additive state: what scoring a set of images leaves behind, mergeable across
workers, ranks and separate jobs (``camloc evaluate-maps --shard K/N`` + ``camloc merge-eval``).

Every metric of the evaluate-maps JSON is computed from a merged ``EvalState`` only, so the JSON is
byte-identical however the images were split: counts are integers (sums do not depend on order),
per-image rows and skipped images are kept sorted by image_id, and ``merge`` is associative and
commutative. Its partial-state file (``metrics.partial``) is documented in docs/contracts.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import CamlocError
from pipeline.metrics.boxacc import DELTAS
from pipeline.metrics.pixels import PixelAccumulator
from pipeline.metrics.pointing import DEFAULT_TOLERANCE, mean_percent

MODES = ("largest", "all")  # row 0 / row 1 of every (2, ...) array, as in metrics.best_ious


@dataclass
class EvalState:
    """Scored images' results, additive. Shapes: T τ, D = len(DELTAS), B pixel bins.

    ``hits`` (2, D, T) int64: images whose best IoU ≥ δ per (contour mode, δ, τ) — what MaxBoxAcc(V2)
    needs. ``ids`` (N,) and ``ious`` (N, 2, T): the per-image rows (per-image CSV, CIs), image_id order.
    ``points`` (N, 2): per image the pointing-game hit (0/1) and energy share, at ``pointing_tolerance``.
    ``pixel_hist`` (2, B) int64 or None: PxAP / PxIoU counts (``PixelAccumulator.hist``).
    ``skipped``: [{"image_id", "reason"}] in image_id order. ``n_unscored``: maps with no CSV row.
    """

    tau_grid: np.ndarray
    hits: np.ndarray
    ids: list[str] = field(default_factory=list)
    ious: list[np.ndarray] = field(default_factory=list)
    points: list[np.ndarray] = field(default_factory=list)
    pointing_tolerance: float = DEFAULT_TOLERANCE
    pixel_hist: np.ndarray | None = None
    skipped: list[dict] = field(default_factory=list)
    n_unscored: int = 0

    @classmethod
    def empty(cls, tau_grid: np.ndarray, pixels: bool, pointing_tolerance: float = DEFAULT_TOLERANCE) -> EvalState:
        grid = np.asarray(tau_grid, dtype=np.float64)
        hist = PixelAccumulator(grid).hist if pixels else None
        return cls(grid, np.zeros((2, len(DELTAS), len(grid)), np.int64), pointing_tolerance=float(pointing_tolerance),
                   pixel_hist=hist)

    def add_image(self, image_id: str, ious: np.ndarray, points: np.ndarray) -> None:
        """One scored image's (2, T) best IoUs (largest, all) and (2,) pointing hit and energy share."""
        self.ids.append(image_id)
        self.ious.append(ious)
        self.points.append(np.asarray(points, dtype=np.float64))
        self.hits += ious[:, None, :] >= np.asarray(DELTAS)[None, :, None]

    def merge(self, other: EvalState) -> EvalState:
        """A new state holding both (same τ grid and pixel setting); rows re-sorted by image_id."""
        if (not np.array_equal(self.tau_grid, other.tau_grid) or (self.pixel_hist is None) != (other.pixel_hist is None)
                or self.pointing_tolerance != other.pointing_tolerance):
            raise CamlocError("cannot merge evaluation states over different τ grids, mask settings or pointing "
                              "tolerances")
        order = sorted(range(len(self.ids) + len(other.ids)), key=(self.ids + other.ids).__getitem__)
        ids, ious, points = self.ids + other.ids, self.ious + other.ious, self.points + other.points
        if len(set(ids)) != len(ids):
            raise CamlocError("cannot merge evaluation states that both scored the same image")
        hist = None if self.pixel_hist is None else self.pixel_hist + other.pixel_hist
        return EvalState(self.tau_grid, self.hits + other.hits, [ids[i] for i in order], [ious[i] for i in order],
                         [points[i] for i in order], self.pointing_tolerance, hist, sorted(self.skipped + other.skipped, key=lambda s: s["image_id"]),
                         self.n_unscored + other.n_unscored)

    def curve(self, mode: str, delta: float) -> np.ndarray:
        """(T,) BoxAcc(τ, δ) in %: the same float operations as ``boxacc.box_acc_curve`` on the rows."""
        hits = self.hits[MODES.index(mode), DELTAS.index(delta)]
        return hits.astype(np.float64) * 100.0 / float(len(self.ids))

    def box_metrics(self) -> tuple[dict, dict]:
        """(max_box_acc, best_tau) of the evaluate-maps JSON; argmax picks the first τ on ties."""
        v1 = self.curve("largest", 0.5)
        k1 = int(np.argmax(v1))
        by, tau = {}, {"v1": float(self.tau_grid[k1])}
        for d in DELTAS:
            c = self.curve("all", d)
            k = int(np.argmax(c))
            by[str(round(d * 100))], tau[str(round(d * 100))] = float(c[k]), float(self.tau_grid[k])
        return {"v1": float(v1[k1]), "v2": float(np.mean(list(by.values()))), "by_iou": by}, tau

    def pointing(self) -> dict:
        """The pointing keys of the evaluate-maps JSON, means over the rows in image_id order."""
        points = np.stack(self.points)  # (N, 2)
        return {"pointing_game": mean_percent(points[:, 0]), "energy_pointing_game": mean_percent(points[:, 1]),
                "pointing_tolerance": float(self.pointing_tolerance)}

    def pixels(self) -> PixelAccumulator | None:
        if self.pixel_hist is None:
            return None
        acc = PixelAccumulator(self.tau_grid)
        acc.hist = self.pixel_hist.copy()
        return acc
