"""prepare throughput: images/s of the real stage vs a single-process plain-PIL decode baseline.

Generates a synthpets tree (default params: 6 classes × 360 images, 112–176 px; `--pets-like` draws
300–500 px images like the real photos), then times, in this same process and on the same files:
  baseline  — one process: PIL open + convert("RGB") + np.asarray for every listed image (no resize,
              no trimaps, no boxes, nothing written);
  prepare   — `pipeline.stages.prepare.run` with prepare.workers processes (decode, resize to the
              cache, trimaps, xmls, splits, parquet + images.npy written atomically).
The goal is >= 200 images/s for prepare on 2 cores; the ratio says what the workers buy on this
machine (noisy when shared). Also prints the synthpets generation time (goal < 30 s on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from pipeline.contracts import Paths
from pipeline.datasets import pets
from pipeline.datasets.synthpets import generate
from pipeline.params import Params, PrepareParams, SynthPetsParams
from pipeline.stages.prepare import run


def baseline(raw: Path) -> int:
    n = 0
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # the planted truncated JPEG; reset for prepare below
    try:
        for split in ("trainval", "test"):
            for e in pets.read_list(raw / "annotations" / f"{split}.txt"):
                with Image.open(raw / "images" / f"{e.image_id}.jpg") as im:
                    np.asarray(im.convert("RGB"))
                n += 1
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pets-like", action="store_true", help="300-500 px images, like the real photos")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache-size", type=int, default=128)
    args = ap.parse_args()
    sp = SynthPetsParams(workers=args.workers)
    if args.pets_like:
        sp = SynthPetsParams(trainval_per_class=150, test_per_class=30, min_size=300, max_size=500,
                             workers=args.workers)
    params = Params(synthpets=sp, prepare=PrepareParams(cache_size=args.cache_size, workers=args.workers))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        t = time.perf_counter()
        c = generate(sp, raw)
        gen_s = time.perf_counter() - t
        print(f"synthpets generate: {c['images']} images {sp.min_size}-{sp.max_size} px in {gen_s:.1f} s "
              f"({args.workers} workers; goal < 30 s for the defaults)")
        baseline(raw)  # warm the page cache so neither side pays for the first read
        t = time.perf_counter()
        n = baseline(raw)
        base_s = time.perf_counter() - t
        t = time.perf_counter()
        run(params, Paths(raw=raw, prepared=Path(tmp) / "prepared"))
        prep_s = time.perf_counter() - t
    print(f"baseline  (1 process, plain PIL decode): {n / base_s:8.1f} images/s")
    print(f"prepare   ({args.workers} workers, full stage):     {n / prep_s:8.1f} images/s  (goal >= 200)")
    print(f"ratio prepare / baseline: {base_s / prep_s:.2f}")


if __name__ == "__main__":
    main()
