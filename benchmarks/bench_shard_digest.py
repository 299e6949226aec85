"""What the shard's content digests cost (issue 20): scoring with the SHA-256 of every map and mask
computed from the bytes read for scoring, vs scoring without, in one process (goal: < 5% more time).

Prints the ratio (with digests / without), the median of ``--repeats`` alternating runs of
``metrics.folder.score`` on N CAM-like 224×224 float32 maps with masks at ``--interval`` (workers=1),
and what merge-eval's re-hash of the same files costs as a share of that scoring.

Usage: python benchmarks/bench_shard_digest.py [--n 400] [--interval 0.01] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's pipeline/
from pipeline.metrics import normalize_map, taus  # noqa: E402
from pipeline.metrics.folder import read_boxes, score  # noqa: E402
from pipeline.metrics.partial import _sha256  # noqa: E402

S = 224


def make_inputs(folder: Path, n: int, rng) -> None:
    (folder / "maps").mkdir()
    (folder / "masks").mkdir()
    lines = ["image_id,x0,y0,x1,y1,width,height"]
    for i in range(n):
        np.save(folder / "maps" / f"{i:05d}.npy", normalize_map(rng.normal(size=(7, 7)), (S, S)).astype(np.float32))
        cv2.imwrite(str(folder / "masks" / f"{i:05d}.png"), (rng.random((S, S)) > 0.6).astype(np.uint8))
        x0, x1 = sorted(rng.integers(0, S, 2).tolist())
        y0, y1 = sorted(rng.integers(0, S, 2).tolist())
        lines.append(f"{i:05d},{x0},{y0},{x1},{y1},{S},{S}")
    (folder / "boxes.csv").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_inputs(root, args.n, np.random.default_rng(0))
        table, grid = read_boxes(root / "boxes.csv"), taus(args.interval)
        times: dict[bool, list[float]] = {False: [], True: []}
        score(root / "maps", table, root / "masks", grid, False, False, None, 1)  # warm: numba, page cache
        for _ in range(args.repeats):
            for digest in (False, True):
                t0 = time.perf_counter()
                score(root / "maps", table, root / "masks", grid, False, False, None, 1,
                      digests={} if digest else None)
                times[digest].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for folder in ("maps", "masks"):
            for name in os.listdir(root / folder):
                _sha256(root / folder / name)
        rehash = time.perf_counter() - t0
    plain, hashed = statistics.median(times[False]), statistics.median(times[True])
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average, {os.cpu_count()} CPUs)")
    print(f"scoring {args.n} maps + masks at interval {args.interval}: with digests / without = "
          f"{hashed / plain:.3f}x (goal < 1.05x; medians of {args.repeats})")
    print(f"merge-eval's re-hash of the same files: {rehash / plain:.3f} of one scoring pass")


if __name__ == "__main__":
    main()
