"""prepare throughput on a CUB-sized twin: images/s of the real stage (`dataset.name: cub`) vs a
single-process plain-PIL decode baseline, in this same process and on the same files.

Generates the official CUB_200_2011/ tree with tests/twins.py (200 classes, 30 train + 29 test images
per class = 11,800 images, about CUB's 11,788; 500×375 JPEGs at quality 90, a textured background with
one object each), then times:
  baseline  — one process: PIL open + convert("RGB") + np.asarray for every image (nothing else);
  prepare   — `pipeline.stages.prepare.run` with prepare.workers processes: the CUB files parsed, val
              carved, every image decoded and resized to the cache, parquet + images.npy written.
Goal: prepare >= 200 images/s on 2 cores. The machine may be shared: the load average measured
before and after is printed beside the numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from twins import make_cub_tree  # noqa: E402

from pipeline.contracts import Paths  # noqa: E402
from pipeline.params import CubParams, DatasetParams, Params, PrepareParams  # noqa: E402
from pipeline.stages.prepare import run  # noqa: E402


def baseline(tree: Path) -> int:
    n = 0
    for line in (tree / "images.txt").read_text().splitlines():
        with Image.open(tree / "images" / line.split()[1]) as im:
            np.asarray(im.convert("RGB"))
        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=200)
    ap.add_argument("--train-per-class", type=int, default=30)
    ap.add_argument("--test-per-class", type=int, default=29)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache-size", type=int, default=224)
    args = ap.parse_args()
    params = Params(dataset=DatasetParams(name="cub", cub=CubParams(val_per_class=5)),
                    prepare=PrepareParams(cache_size=args.cache_size, workers=args.workers))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        t = time.perf_counter()
        make_cub_tree(raw, args.classes, args.train_per_class, args.test_per_class,
                      size_range=((500, 500), (375, 375)), n_backgrounds=32)
        print(f"twin: {args.classes * (args.train_per_class + args.test_per_class)} images 500x375 generated "
              f"in {time.perf_counter() - t:.0f} s")
        tree = raw / "CUB_200_2011"
        baseline(tree)  # warm the page cache so neither side pays for the first read
        load_before = os.getloadavg()
        t = time.perf_counter()
        n = baseline(tree)
        base_s = time.perf_counter() - t
        t = time.perf_counter()
        summary = run(params, Paths(raw=raw, prepared=Path(tmp) / "prepared"))
        prep_s = time.perf_counter() - t
        load_after = os.getloadavg()
    print(summary)
    print(f"cpus available: {len(os.sched_getaffinity(0))}; load average (1/5/15 min) before "
          f"{'/'.join(f'{x:.1f}' for x in load_before)}, after {'/'.join(f'{x:.1f}' for x in load_after)}")
    print(f"baseline  (1 process, plain PIL decode):   {n / base_s:8.1f} images/s")
    print(f"prepare   ({args.workers} workers, cub, cache {args.cache_size}): {n / prep_s:8.1f} images/s  "
          "(goal >= 200)")
    print(f"ratio prepare / baseline: {base_s / prep_s:.2f}")


if __name__ == "__main__":
    main()
