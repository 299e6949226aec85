"""faithfulness@B against torchcam, side by side in one process: the same model, images, maps, steps and
baselines, scored by camloc (`pipeline.faithfulness`) and by torchcam 0.5's `ClassificationMetric` (AD/IC)
plus `DeletionInsertionMetric` (deletion/insertion); prints images × methods per second of each, the
ratio, and the largest difference of every metric (equal results: ≤ 1e-5).

    python benchmarks/bench_faithfulness.py [--images 8] [--methods 3] [--steps 16] [--threads 1] [--road]
                                            [--device cuda]

Random weights (the cost does not depend on them; the classifier is scaled so the softmax is not flat),
random images at each default backbone's input size, random smooth maps (one set per "method"). Both
sides use torchcam's conventions where they differ from camloc's defaults (insertion from the deletion
baseline, ties in raster order) and the same batch size. camloc shares the map-free passes (clean,
baseline) of an image across methods, as the stage does; torchcam re-runs them for every metric.
`--road` adds camloc's ROAD cost (18 imputations + passes per image × method), which torchcam lacks, and
times ROAD's imputation alone against pytorch-grad-cam's `NoisyLinearImputer` (one sparse LU per system,
noise 0) on the same systems, with the largest difference.
On a busy machine the ratio is the figure to read; report `uptime` beside it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.faithfulness import multigrid as MG  # noqa: E402
from pipeline.faithfulness import road as R  # noqa: E402
from pipeline.faithfulness import scores as F  # noqa: E402
from pipeline.faithfulness.peers import torchcam_scores  # noqa: E402
from pipeline.faithfulness.scorer import Scorer, normalised  # noqa: E402
from pipeline.models import build_backbone  # noqa: E402

BACKBONES = (("tiny_gap_cnn", 128, {}), ("tiny_gap_cnn", 96, {}), ("resnet18", 96, {"output_stride": 16}))
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def smooth_maps(rng, n: int, size: int) -> np.ndarray:
    low = torch.from_numpy(rng.random((n, 1, size // 8, size // 8)).astype(np.float32))
    m = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear").numpy()[:, 0]
    return ((m - m.min((1, 2), keepdims=True)) / np.ptp(m, axis=(1, 2), keepdims=True)).astype(np.float32)


def bench(name, size, opts, n, methods, steps, batch_size, road, rng, device) -> None:
    torch.manual_seed(0)
    model = build_backbone(name, 6, **opts).eval().to(device)
    with torch.no_grad():
        model.classifier.weight.mul_(20.0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 6, n)
    maps = [smooth_maps(rng, n, size) for _ in range(methods)]
    x = normalised(images, MEAN, STD, device)
    idx = [int(v) for v in labels]

    def camloc():
        scorer = Scorer(model, MEAN, STD, batch_size)
        data = F.prepare_images(scorer, images, labels, range(n), 0, insertion_start="baseline", road=False)
        out = [F.summary(data, F.method_faithfulness(scorer, data, m, steps, 0, ties="raster")) for m in maps]
        if road:
            rdata = F.prepare_images(scorer, images, labels, range(n), 0, road=True)
            for m in maps:
                F.method_road(scorer, rdata, m)
        return out

    def torchcam():
        return [torchcam_scores(model, x, idx, torch.from_numpy(m).to(device), steps, batch_size) for m in maps]

    timings = {}
    for label, fn in (("camloc", camloc), ("torchcam", torchcam), ("camloc", camloc), ("torchcam", torchcam)):
        t0 = time.perf_counter()
        res = fn()
        timings.setdefault(label, []).append(time.perf_counter() - t0)
        if label == "camloc":
            ours = res
        else:
            ref = res
    best = {k: min(v) for k, v in timings.items()}  # the faster of two rounds each, interleaved
    rate = {k: n * methods / v for k, v in best.items()}
    diff = {
        "avg_drop": max(abs(o["avg_drop"] / 100 - r["avg_drop"]) for o, r in zip(ours, ref, strict=True)),
        "ic": max(abs(o["increase_in_confidence"] / 100 - r["conf_increase"]) for o, r in zip(ours, ref, strict=True)),
        "deletion": max(abs(o["deletion_auc"] - r["deletion_auc"]) for o, r in zip(ours, ref, strict=True)),
        "insertion": max(abs(o["insertion_auc"] - r["insertion_auc"]) for o, r in zip(ours, ref, strict=True)),
    }
    equal = all(v <= 1e-5 for v in diff.values())
    print(f"{name}@{size} on {device}: camloc {rate['camloc']:.2f} img×method/s{' (with ROAD)' if road else ''}, torchcam "
          f"{rate['torchcam']:.2f} → {rate['camloc'] / rate['torchcam']:.2f}× torchcam; camloc "
          f"{best['camloc'] / (n * methods):.3f} s per image × method; max |Δ| "
          + ", ".join(f"{k} {v:.1e}" for k, v in diff.items()) + f" → {'equal' if equal else 'NOT EQUAL'}")
    if road:
        bench_imputation(x, maps)


def bench_imputation(x, maps, systems: int = 36) -> None:
    """ROAD's imputation alone: camloc's compiled multigrid CG (the stage's iterations and threads) vs
    pytorch-grad-cam's sparse LU per system, on the first `systems` (image, order, percentile) systems."""
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    keep = R.keep_masks(torch.from_numpy(maps[0])).reshape(-1, *x.shape[-2:])[:systems].cpu()  # (M, s, s)
    values = x.cpu()[torch.arange(len(keep)) // (2 * len(R.ROAD_PERCENTILES))]  # (M, 3, s, s)
    MG.impute(values[:1].numpy(), keep[:1].numpy(), R.ROAD_ITERS, R.ROAD_TOL)  # load the compiled code
    t0 = time.perf_counter()
    ours = MG.impute(values.numpy(), keep.numpy(), R.ROAD_ITERS, R.ROAD_TOL, torch.get_num_threads())
    t_ours = time.perf_counter() - t0
    lu = NoisyLinearImputer(noise=0.0)
    t0 = time.perf_counter()
    ref = torch.stack([lu(values[i], keep[i].float()) for i in range(len(keep))])
    t_ref = time.perf_counter() - t0
    print(f"  ROAD imputation, {len(keep)} systems: camloc {t_ours / len(keep) * 1e3:.2f} ms a system, "
          f"pytorch-grad-cam's sparse LU {t_ref / len(keep) * 1e3:.1f} ms → {t_ref / t_ours:.1f}×; "
          f"max |Δ| {float((torch.from_numpy(ours) - ref).abs().max()):.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--methods", type=int, default=3)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--road", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (both sides score on it)")
    ap.add_argument("--backbones", default="all", help="comma-separated name@size of " +
                    ", ".join(f"{b}@{s}" for b, s, _ in BACKBONES))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    for name, size, opts in BACKBONES:
        if args.backbones == "all" or f"{name}@{size}" in args.backbones.split(","):
            bench(name, size, opts, args.images, args.methods, args.steps, args.batch_size, args.road, rng,
                  torch.device(args.device))


if __name__ == "__main__":
    main()
