"""evaluate-maps throughput against the naive reference loop (tests/reference.py), side by side.

Prints ratios measured in one process run (absolute times on a shared machine are noise):
1. images/s of ``pipeline.metrics.folder.run`` vs the reference loop on N CAM-like 224×224 maps at
   interval 0.001, per core (``workers=1``, issue 15's goal ≥ 20×) and with 2 worker processes (the
   2-core figure), and the largest JSON difference of each (goal 0: identical to the last digit);
2. time of one white-noise map vs one smooth map through the fast path (goal ≤ 20×);
3. PxAP accumulation over 3,669 maps + masks of 224×224 (goal < 10 s).

Usage: python benchmarks/bench_evaluate_maps.py [--n 1000] [--interval 0.001] [--pxap-n 3669]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference import ref_evaluate  # noqa: E402

from pipeline.metrics import PixelAccumulator, best_ious, normalize_map, taus  # noqa: E402
from pipeline.metrics.folder import run  # noqa: E402

S = 224


def make_inputs(folder: Path, n: int, rng) -> None:
    (folder / "maps").mkdir()
    lines = ["image_id,x0,y0,x1,y1,width,height"]
    for i in range(n):
        np.save(folder / "maps" / f"{i:05d}.npy", normalize_map(rng.normal(size=(7, 7)), (S, S)))
        w, h = int(rng.integers(200, 500)), int(rng.integers(200, 500))
        x0, x1 = sorted(rng.integers(0, w, 2).tolist())
        y0, y1 = sorted(rng.integers(0, h, 2).tolist())
        lines.append(f"{i:05d},{x0},{y0},{x1},{y1},{w},{h}")
    (folder / "boxes.csv").write_text("\n".join(lines) + "\n")


def reference_run(folder: Path, interval: float) -> dict:
    """The naive loop, loading and rescaling the same files."""
    import pandas as pd

    df = pd.read_csv(folder / "boxes.csv", dtype={"image_id": str})
    maps, gts = {}, {}
    for image_id, rows in df.groupby("image_id"):
        maps[image_id] = np.load(folder / "maps" / f"{image_id}.npy").astype(np.float64)
        gts[image_id] = [[int(r.x0 * S / r.width), int(r.y0 * S / r.height), int(r.x1 * S / r.width),
                          int(r.y1 * S / r.height)] for r in rows.itertuples()]
    return ref_evaluate(maps, gts, interval)


def max_diff(a: dict, b: dict) -> float:
    return max(max_diff(a[k], b[k]) if isinstance(a[k], dict) else abs(a[k] - b[k]) for k in b)


def bench_throughput(n: int, interval: float, rng) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_inputs(folder, n, rng)
        times, results = {}, {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            results[workers] = run(folder / "maps", folder / "boxes.csv", interval=interval, workers=workers)
            times[workers] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = reference_run(folder, interval)
        t_ref = time.perf_counter() - t0
    print(f"[1] {n} maps {S}x{S} interval {interval}: reference {n / t_ref:.1f} img/s; "
          f"ours per core (workers 1) {n / times[1]:.1f} img/s = {t_ref / times[1]:.2f}x (goal >= 20x), "
          f"2 workers {n / times[2]:.1f} img/s = {t_ref / times[2]:.2f}x; max JSON difference "
          f"{max(max_diff(results[1], ref), max_diff(results[2], ref)):.2e} (goal 0)")


def bench_noise(interval: float, rng) -> None:
    grid = taus(interval)
    gt = np.array([[40, 50, 150, 170]])
    smooth = [normalize_map(rng.normal(size=(7, 7)), (S, S)) for _ in range(10)]
    t0 = time.perf_counter()
    for m in smooth:
        best_ious(m, gt, grid)
    t_smooth = (time.perf_counter() - t0) / len(smooth)
    t0 = time.perf_counter()
    best_ious(rng.uniform(0, 1, (S, S)), gt, grid)
    t_noise = time.perf_counter() - t0
    print(f"[2] white noise {t_noise * 1e3:.0f} ms vs smooth {t_smooth * 1e3:.1f} ms per map: "
          f"{t_noise / t_smooth:.0f}x (goal <= 20x)")


def bench_pxap(n: int, rng) -> None:
    pool = [(rng.uniform(0, 1, (S, S)), rng.choice(np.array([0, 1, 255], np.uint8), size=(S, S)))
            for _ in range(20)]
    acc = PixelAccumulator(taus(0.01))
    t0 = time.perf_counter()
    for i in range(n):
        acc.add(*pool[i % len(pool)])
    value = acc.pxap()
    print(f"[3] PxAP over {n} maps {S}x{S}: {time.perf_counter() - t0:.2f} s (goal < 10 s), PxAP {value:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=0.001)
    ap.add_argument("--pxap-n", type=int, default=3669)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    bench_throughput(args.n, args.interval, rng)
    bench_noise(args.interval, rng)
    bench_pxap(args.pxap_n, rng)


if __name__ == "__main__":
    main()
