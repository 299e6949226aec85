"""The map store of cams@B: disk budget and the float16 policy of the dumped maps (file names and
readers: `pipeline.contracts`).

`data/cams/<B>/<split>/<method>_{gt,pred}.npy` hold N×h×w raw maps, memory-mappable. float16 halves
the disk; a file whose values would overflow float16 (|x| > 65504) or lose precision is stored as
float32 instead, and meta.json records the dtype of each file.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from pipeline.contracts import MAP_KINDS
from pipeline.errors import CamlocError

log = logging.getLogger(__name__)

FLOAT16_MAX = float(np.finfo(np.float16).max)
PRECISION = 1 / 1024  # largest float16 rounding error tolerated, relative to a map's range


def disk_bytes(n_images: int, n_methods: int, map_size: tuple[int, int], dtype: str) -> int:
    """Bytes the map files take: images × methods × (gt + pred) × h × w × itemsize (+ .npy headers)."""
    h, w = map_size
    header = 128
    return n_images * n_methods * len(MAP_KINDS) * h * w * np.dtype(dtype).itemsize + n_methods * 2 * header


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def free_bytes(path: str | Path) -> int:
    """Free space on the file system that holds `path` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


def check_disk(need: int, out_dir: str | Path, max_disk_gb: float) -> None:
    """Refuse, with the figure, when the maps exceed `cams.max_disk_gb` or the free space."""
    if need > max_disk_gb * 1e9:
        raise CamlocError(
            f"the maps for {out_dir} need {human_bytes(need)}, more than params.yaml cams.max_disk_gb = "
            f"{max_disk_gb}; raise cams.max_disk_gb, dump fewer cams.methods or cams.splits"
        )
    free = free_bytes(out_dir)
    if need > free:
        raise CamlocError(
            f"the maps for {out_dir} need {human_bytes(need)} but only {human_bytes(free)} is free there; "
            f"free some disk, or dump fewer cams.methods or cams.splits"
        )


def storage_dtype(maps: np.ndarray, dtype: str) -> tuple[str, str]:
    """The dtype to store `maps` (N, h, w) in, and why it differs from `dtype` ("" when it does not).

    float16 is refused (float32 used) when a value would overflow to inf, or when rounding would move
    some map by more than 1/1024 of its own range (values deep in the subnormal range, e.g. tiny
    gradients, or a large offset): evaluation min-max normalises each map and bins it to 256 levels.
    """
    if dtype != "float16" or not maps.size:
        return dtype, ""
    flat = maps.reshape(len(maps), -1).astype(np.float64)  # (N, h*w)
    finite = np.where(np.isfinite(flat), flat, 0.0)
    if np.abs(finite).max() > FLOAT16_MAX:
        return "float32", f"values beyond the float16 range (max |x| {np.abs(finite).max():.3g})"
    err = np.abs(finite.astype(np.float16).astype(np.float64) - finite).max(1)  # (N,)
    span = finite.max(1) - finite.min(1)  # (N,)
    worst = np.max(np.where(span > 0, err / np.where(span > 0, span, 1.0), 0.0))
    if worst > PRECISION:
        return "float32", f"float16 rounding moves a map by {worst:.2g} of its range"
    return dtype, ""


def save_maps(path: str | Path, maps: np.ndarray, dtype: str) -> str:
    """Write float32 `maps` (N, h, w) as a .npy in `dtype` (float32 where float16 fails); return it."""
    used, why = storage_dtype(maps, dtype)
    if why:
        log.warning("%s: %s; stored as float32", path, why)
    np.save(path, np.ascontiguousarray(maps, dtype=used), allow_pickle=False)
    return used


def count_nonfinite(maps: np.ndarray) -> int:
    """Number of maps (rows) holding a NaN or inf: evaluation scores them as all-zero maps."""
    if not maps.size:
        return 0
    return int((~np.isfinite(maps.reshape(len(maps), -1))).any(1).sum())
