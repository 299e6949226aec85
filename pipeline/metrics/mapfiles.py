"""One map or mask file of `camloc evaluate-maps`, read and validated (``metrics.folder`` scores them).

A map is a 2-D numeric ``.npy`` whose header is checked before any data is read; NaN or infinite values
are refused with the count of bad pixels (this path's rule, docs/contracts.md). A mask is a single-channel
8-bit PNG of 0 / 1 / 255. With ``digests``, each file's SHA-256 is computed from the very bytes read for
scoring, so a sharded run proves what it scored at the cost of hashing only (benchmarks/bench_shard_digest.py).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import cv2
import numpy as np

from pipeline.metrics.boxes import normalize_map
from pipeline.metrics.pixels import IGNORE


class BadInput(Exception):
    """One image's input is unusable; the message says why (the caller names the image)."""


def _read_npy(path: Path, digests: dict | None = None) -> np.ndarray:
    """The array in a .npy file, its header checked before any data is read: it must be 2-D, non-empty
    and numeric, and the file must hold all the bytes it claims (so a corrupt header claiming a huge
    shape is reported instead of making np.load allocate it). With ``digests``, the file is read once as
    bytes and ``digests[path.name]`` gets their SHA-256 (what a shard proves it scored)."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            # 3.0 differs from 2.0 only in a UTF-8 header (non-ASCII field names, refused below anyway)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            if len(shape) != 2 or min(shape) < 1 or not (np.issubdtype(dtype, np.floating)
                                                         or np.issubdtype(dtype, np.integer)):
                raise BadInput(f"map {path} must be a non-empty 2-D numeric array, got {dtype} {shape}")
            need, have = math.prod(shape) * dtype.itemsize, os.fstat(f.fileno()).st_size - f.tell()
            if have < need:
                raise BadInput(f"map {path} is truncated or corrupt: its header says {dtype} {shape} "
                               f"({need} bytes of data) but the file holds {have}")
            if digests is None:
                f.seek(0)
                return np.load(f, allow_pickle=False)
            offset = f.tell()
            f.seek(0)
            data = f.read()
        digests[path.name] = hashlib.sha256(data).hexdigest()
        flat = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset)
        return flat.reshape(shape, order="F" if fortran else "C")
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise BadInput(f"map {path} is not a readable .npy ({e})") from e


def load_map(path: Path, raw: bool, wh: tuple[int, int], size: int | None = None,
             digests: dict | None = None) -> np.ndarray:
    """One evaluation-frame map (H, W) float64 in [0, 1], validated.

    ``raw``: post-processed to ``size × size``, else to the image's ``wh``. Not raw with ``size``: the map
    must already be ``size × size``.
    """
    if not path.is_file():
        raise BadInput(f"map {path} is missing")
    m = _read_npy(path, digests)
    if m.ndim != 2 or min(m.shape) < 1 or not (np.issubdtype(m.dtype, np.floating)
                                                 or np.issubdtype(m.dtype, np.integer)):
        raise BadInput(f"map {path} must be a non-empty 2-D numeric array, got {m.dtype} {m.shape}")
    m = m.astype(np.float64)
    if not np.isfinite(m).all():  # this path's rule: refused, with the count (docs/contracts.md)
        bad = int((~np.isfinite(m)).sum())
        raise BadInput(f"map {path} has NaN or inf values ({bad} of {m.size} pixels)")
    if raw:
        return normalize_map(m, (size, size) if size is not None else (wh[1], wh[0]))
    if size is not None and m.shape != (size, size):
        raise BadInput(f"map {path} is {m.shape[0]}x{m.shape[1]} (height x width), not the --size "
                       f"{size}x{size} frame; pass --raw to upsample raw maps to it, or drop --size")
    if m.min() < 0 or m.max() > 1:
        raise BadInput(f"map {path} has values in [{m.min():.4g}, {m.max():.4g}], outside [0, 1]; "
                       "normalise it or pass --raw")
    return m


def load_mask(path: Path, shape: tuple[int, int], digests: dict | None = None) -> np.ndarray:
    """(H, W) uint8 mask in {0, 1, 255}, nearest-neighbour resized to ``shape`` when needed."""
    if not path.is_file():
        raise BadInput(f"mask {path} is missing")
    data = np.fromfile(path, np.uint8)
    if digests is not None:
        digests[path.name] = hashlib.sha256(data).hexdigest()
    mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if mask is None or mask.ndim != 2 or mask.dtype != np.uint8:
        raise BadInput(f"mask {path} must be a single-channel 8-bit PNG")
    bad = np.setdiff1d(np.unique(mask), [0, 1, IGNORE])
    if bad.size:
        raise BadInput(f"mask {path} has values {bad.tolist()[:5]}; use 0 background, 1 foreground, 255 ignore")
    if mask.shape != shape:
        mask = cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return mask
