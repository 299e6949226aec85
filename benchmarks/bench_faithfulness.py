"""faithfulness@B cost: seconds per image per map method for each default backbone, against the floor of
the same number of bare `model(x)` forward passes (2·steps + 1 inputs per image and method) in one run.

    python benchmarks/bench_faithfulness.py [--images 8] [--steps 32] [--threads 2]

Random weights (the cost does not depend on them), random images at each backbone's default input size.
The ratio says how close the stage's batching comes to the forward passes it cannot avoid. On a busy
machine, `--threads 1` and the CPU seconds give the idle single-core cost.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.faithfulness import scores as F  # noqa: E402
from pipeline.metrics.boxes import normalize_map  # noqa: E402
from pipeline.models import build_backbone  # noqa: E402

BACKBONES = (("tiny_gap_cnn", 128, {}), ("tiny_gap_cnn", 96, {}), ("resnet18", 96, {"output_stride": 16}))
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def bench(name: str, size: int, opts: dict, n: int, steps: int, batch_size: int, rng) -> None:
    torch.manual_seed(0)
    model = build_backbone(name, 6, **opts).eval()
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 6, n)
    maps = np.stack([normalize_map(rng.normal(size=(size // 8, size // 8)), (size, size)) for _ in range(n)])
    scorer = F.Scorer(model, MEAN, STD, batch_size)
    clean = F.clean_scores(scorer, images, labels)
    F.method_faithfulness(scorer, images[:1], labels[:1], maps[:1], clean[:1],
                          F.tie_orders(maps[:1], [0], 0), steps)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    orders = F.tie_orders(maps, range(n), 0)
    F.method_faithfulness(scorer, images, labels, maps, clean, orders, steps)
    ours, cpu = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
    per_image = 2 * steps + 1
    x = torch.randn(min(batch_size, per_image * n), 3, size, size)
    with torch.inference_mode():
        model(x)
        t0 = time.perf_counter()
        for _ in range(3):
            model(x)
        floor = (time.perf_counter() - t0) / 3 / len(x) * per_image
    print(f"{name}@{size}: {ours:.3f} s per image per method, {cpu:.3f} CPU s (floor: {per_image} bare "
          f"forward passes {floor:.3f} s) → {ours / floor:.2f}× the floor")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=260)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    for name, size, opts in BACKBONES:
        bench(name, size, opts, args.images, args.steps, args.batch_size, rng)


if __name__ == "__main__":
    main()
