"""Bootstrap confidence intervals and a paired bootstrap test for the report stage, vectorised over resamples.

A resample of N images is a row of counts (how often each image was drawn), so a batch of B resamples
is a (B, N) weight matrix W. The metric functions of `pipeline.metrics.boxacc` take W and score every
resample at once (MaxBoxAcc re-chooses τ inside each resample: PROTOCOL §4, one τ per split, never per
image); this module draws W and turns the (B,) scores into intervals and a paired test.

Every row of the leaderboard is scored on the same W (same images resampled), so CIs of different rows
are comparable and the paired test between two rows is just the distribution of their difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALPHA = 0.05  # 95% intervals


def resample_weights(n: int, b: int, seed: int) -> np.ndarray:
    """(B, N) float32 counts of B bootstrap resamples of N images (with replacement), seeded."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(b, n))  # (B, N) image indices
    flat = draws + (np.arange(b)[:, None] * n)  # offset each row so one bincount counts all rows
    return np.bincount(flat.ravel(), minlength=b * n).reshape(b, n).astype(np.float32)  # (B, N)


def percentile_ci(samples: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of bootstrap samples (B,)."""
    lo, hi = np.percentile(samples, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return float(lo), float(hi)


@dataclass(frozen=True)
class PairedResult:
    """Paired bootstrap of row A − row B on the same resampled images."""

    diff: float  # point estimate, percentage points
    ci_low: float
    ci_high: float
    p_value: float  # two-sided
    resamples: int
    significant: bool


def paired_test(point_a: float, point_b: float, samples_a: np.ndarray, samples_b: np.ndarray) -> PairedResult:
    """Two-sided paired bootstrap test of H0: no difference, from per-resample scores of A and B.

    The p-value is twice the smaller share of resampled differences on either side of zero, with the
    +1 correction so it is never exactly 0 with finitely many resamples.
    """
    d = samples_a - samples_b  # (B,)
    b = d.shape[0]
    below = (np.count_nonzero(d <= 0) + 1) / (b + 1)
    above = (np.count_nonzero(d >= 0) + 1) / (b + 1)
    p = min(1.0, 2.0 * min(below, above))
    lo, hi = percentile_ci(d)
    return PairedResult(point_a - point_b, lo, hi, p, b, p < ALPHA)


def describe(result: PairedResult, name_a: str, name_b: str, metric: str) -> str:
    """One sentence a reader can paste: who leads, by how much, and whether it is significant."""
    verdict = (
        "the lead is significant at the 5% level"
        if result.significant
        else "the lead is not significant at the 5% level (the two rows are statistically tied)"
    )
    return (
        f"{name_a} leads {name_b} on {metric} by {result.diff:.2f} points "
        f"(paired bootstrap over the same resampled images, {result.resamples} resamples: "
        f"95% CI of the difference [{round(result.ci_low, 2) + 0.0:.2f}, {round(result.ci_high, 2) + 0.0:.2f}], "
        f"p = {result.p_value:.3g}); "
        f"{verdict}."
    )
