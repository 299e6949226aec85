"""Map-dumping performance, as ratios measured side by side in one process (issue 4).

1. `cam` costs nothing beyond inference: the cams stage's per-split loop (`cams.dump.dump_split`, CAM for the
   GT and predicted class, predictions, copy to host) vs plain `model(x)` over the same uint8 images,
   same batch, same device, same input preprocessing. Goal: ratio >= 0.9. Run at 90% top-1 accuracy
   (a trained model: predicted-class maps are computed only for misclassified rows) and at 0% (worst
   case: every row needs a second map).
2. Gradient methods are batched: `compute_maps(..., "gradcam")` on a batch of 64 vs 64 calls on single
   images. Goal: >= 10x faster per image.
3. pytorch-grad-cam's methods (`pgc.*`, issue 24): each one's images/s through the same dump loop, as a ratio
   to plain inference, beside camloc's own method of the same name where there is one (`--pgc`, with
   `--pgc-methods` to choose; scorecam and ablationcam run the model once per channel).
4. Attention map methods on a transformer backbone (issue 21; `deit_small_patch16`, `vit_cpu_p8`): the dump
   loop of cls_attention, attention_rollout and tscam (which also record every block's attention) vs
   plain `model(x)` of the same model, side by side. Goal: ratio >= 0.8. The model's blocks run timm's
   unfused attention (the weights must exist to be read); the same plain inference with timm's fused
   attention is printed too, as what a user would otherwise run.
5. Disk: 3,669 images (Oxford-IIIT Pet official test) × 8 methods × (gt + pred) at float16, per map size,
   and the map size each registered backbone gives at 224 px.

    python benchmarks/bench_cams.py [--backbones tiny_gap_cnn resnet18] [--size 128] [--device cpu]
    python benchmarks/bench_cams.py --backbones vit_cpu_p8 --size 64      # attention methods (4.), CPU
    python benchmarks/bench_cams.py --backbones deit_small_patch16 --size 224   # attention methods, GPU

Timings take the best of `--repeats` interleaved runs (the machine is shared, noise is one-sided).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pipeline.cams import compute_maps
from pipeline.cams.dump import dump_split
from pipeline.cams.store import disk_bytes, human_bytes
from pipeline.datasets import loader as imagecache
from pipeline.models import BACKBONES, build_backbone
from pipeline.params import CamsParams


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_cam_vs_inference(model, meta, images, labels, batch: int, repeats: int) -> tuple[float, float]:
    """images/s of plain inference and of the CAM dump loop over the same uint8 images."""
    device = next(model.parameters()).device
    params = CamsParams(methods=("cam",), batch_size=batch)

    def plain():
        with torch.no_grad():
            for x in imagecache.iter_eval_batches(images, meta["image_size"], batch, device=device):
                model(x).cpu()

    def cams():
        dump_split(model, meta, images, labels, ("cam",), params, "bench")

    plain(), cams()  # warm-up (allocator, cudnn autotune)
    t_plain, t_cam = [], []
    for _ in range(repeats):  # interleaved, so load changes hit both alike
        t_plain.append(_best(plain, 1))
        t_cam.append(_best(cams, 1))
    return len(images) / min(t_plain), len(images) / min(t_cam)


def bench_batched_gradcam(model, size: int, n: int, repeats: int) -> tuple[float, float, float]:
    """Seconds per image of gradcam on one batch of n vs n single-image calls, and the ceiling: how much
    faster plain `model(x)` is per image on the batch than on single images (gradcam can't beat it)."""
    device = next(model.parameters()).device
    x = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    classes = torch.arange(n) % model.classifier.out_features
    compute_maps(model, x[:2], classes[:2], "gradcam")  # warm-up
    batched = _best(lambda: compute_maps(model, x, classes, "gradcam"), repeats) / n
    single = _best(lambda: [compute_maps(model, x[i : i + 1], classes[i : i + 1], "gradcam")
                            for i in range(n)], repeats) / n
    with torch.no_grad():
        plain_b = _best(lambda: model(x), repeats)
        plain_s = _best(lambda: [model(x[i : i + 1]) for i in range(n)], repeats)
    return batched, single, plain_s / plain_b


PGC_DEFAULT = ("gradcam", "gradcampp", "xgradcam", "layercam", "hirescam", "eigencam", "gradcamelementwise",
               "eigengradcam", "kpcacam", "fem", "randomcam", "finercam", "shapleycam", "fullgrad", "ablationcam")


def bench_pgc(model, meta, images, labels, batch: int, repeats: int, names) -> None:
    """images/s of each pgc.<name> and camloc's <name> (when registered) through `dump_split`, as ratios
    to plain inference measured interleaved in the same process."""
    from pipeline.catalog.methods import METHODS

    device = next(model.parameters()).device

    def plain():
        with torch.no_grad():
            for x in imagecache.iter_eval_batches(images, meta["image_size"], batch, device=device):
                model(x).cpu()

    def rate(method) -> float:
        params = CamsParams(methods=(method,), batch_size=batch)
        t = _best(lambda: dump_split(model, meta, images, labels, (method,), params, "bench"), repeats)
        return len(images) / t

    plain()
    for name in names:
        base = len(images) / _best(plain, repeats)
        theirs = rate(f"pgc.{name}")
        ours = rate(name) if name in METHODS else None
        base = max(base, len(images) / _best(plain, 1))  # plain again, after: the best of both
        line = f"  pgc.{name:20s} {theirs:8.1f} images/s, {theirs / base:.3f}x inference"
        if ours is not None:
            line += f"   camloc {name:10s} {ours:8.1f} images/s, {ours / base:.3f}x"
        print(line + f"   (plain {base:.1f} images/s)")


ATTENTION_METHODS = ("cam", "cls_attention", "attention_rollout", "tscam")


def _set_fused(model, fused: bool) -> None:
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = fused


def bench_attention(model, meta, images, labels, batch: int, repeats: int) -> None:
    """images/s of each attention method's dump loop, as ratios to plain inference of the same model
    (unfused attention, as built) measured interleaved in the same process; plus fused plain inference."""
    device = next(model.parameters()).device

    def plain():
        with torch.no_grad():
            for x in imagecache.iter_eval_batches(images, meta["image_size"], batch, device=device):
                model(x).cpu()

    def fused():
        _set_fused(model, True)
        try:
            plain()
        finally:
            _set_fused(model, False)

    def dump(method):
        return lambda: dump_split(model, meta, images, labels, (method,), CamsParams(methods=(method,), batch_size=batch),
                                  "bench")

    plain(), fused()  # warm-up
    times = {"plain": [], "fused": [], **{m: [] for m in ATTENTION_METHODS}}
    for _ in range(repeats):  # interleaved, so load changes hit all alike
        times["plain"].append(_best(plain, 1))
        times["fused"].append(_best(fused, 1))
        for m in ATTENTION_METHODS:
            times[m].append(_best(dump(m), 1))
    rate = {k: len(images) / min(v) for k, v in times.items()}
    print(f"  plain model(x) {rate['plain']:8.1f} images/s (unfused attention; fused: {rate['fused']:.1f} images/s)")
    for m in ATTENTION_METHODS:
        print(f"  {m:18s} dump {rate[m]:8.1f} images/s, ratio {rate[m] / rate['plain']:.3f} to plain "
              f"(goal >= 0.8), {rate[m] / rate['fused']:.3f} to fused plain")


def _labels(model, images, size: int, accuracy: float, rng) -> np.ndarray:
    """Labels that the (random-init) model gets right for `accuracy` of the images, like a trained one:
    the cams stage computes predicted-class maps only for the misclassified rows."""
    device = next(model.parameters()).device
    with torch.no_grad():
        pred = torch.cat([model(x).argmax(1).cpu() for x in imagecache.iter_eval_batches(
            images, size, 64, device=device)]).numpy()
    wrong = rng.random(len(images)) >= accuracy
    return np.where(wrong, (pred + 1) % model.classifier.out_features, pred)


def disk_table() -> None:
    print("\ndisk for 3,669 images × 8 methods × (gt + pred), float16:")
    for side in (7, 14, 28):
        need = disk_bytes(3669, 8, (side, side), "float16")
        print(f"  {side:2d}×{side:<2d} maps: {human_bytes(need):>10s}  (goal for 14×14: < 2 GB)")
    print("map size at 224 px per registered backbone:")
    for name in BACKBONES.names():
        spec = BACKBONES.get(name)
        strides = [spec.size_divisor] + ([16, 8] if "output_stride" in spec.options else [])
        for s in strides:
            side = 224 // s
            label = f"{name}" + (f" (output_stride {s})" if s != spec.size_divisor else "")
            print(f"  {label:34s} {side:2d}×{side:<2d} → {human_bytes(disk_bytes(3669, 8, (side, side), 'float16'))}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", nargs="+", default=["tiny_gap_cnn", "resnet18"])
    ap.add_argument("--size", type=int, default=128, help="model input size")
    ap.add_argument("--images", type=int, default=256, help="images in the dump-vs-inference run")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pgc", action="store_true", help="time pytorch-grad-cam's methods (pgc.*) too")
    ap.add_argument("--pgc-methods", nargs="+", default=list(PGC_DEFAULT))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)
    print(f"device {args.device}, {torch.get_num_threads()} threads, {args.images} images {args.size}px, "
          f"batch {args.batch}")
    for name in args.backbones:
        torch.manual_seed(0)
        model = build_backbone(name, 37).to(args.device).eval()
        meta = {"image_size": args.size, "num_classes": 37}
        for acc in (0.9, 0.0):
            labels = _labels(model, images, args.size, acc, rng)
            plain, cam = bench_cam_vs_inference(model, meta, images, labels, args.batch, args.repeats)
            print(f"{name} (top-1 accuracy {acc:.0%}): plain model(x) {plain:8.1f} images/s, cam dump "
                  f"{cam:8.1f} images/s, ratio {cam / plain:.3f} (goal >= 0.9)")
        batched, single, ceiling = bench_batched_gradcam(model, args.size, args.batch, args.repeats)
        print(f"{name}: gradcam batch of {args.batch}: {1e3 * batched:.2f} ms/image, single calls "
              f"{1e3 * single:.2f} ms/image, speed-up {single / batched:.1f}x (goal >= 10x; plain model(x) "
              f"batched vs single on this device: {ceiling:.1f}x, the ceiling)")
        if BACKBONES.get(name).attention:
            print(f"{name}: attention map methods (GT + predicted class, 90% top-1 accuracy) vs plain inference:")
            bench_attention(model, meta, images, _labels(model, images, args.size, 0.9, rng), args.batch,
                            args.repeats)
        if args.pgc:
            print(f"{name}: pytorch-grad-cam methods vs camloc's (GT + predicted class, 90% top-1 accuracy):")
            bench_pgc(model, meta, images, _labels(model, images, args.size, 0.9, rng), args.batch,
                      args.repeats, args.pgc_methods)
    disk_table()


if __name__ == "__main__":
    main()
