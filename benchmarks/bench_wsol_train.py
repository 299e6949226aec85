"""What does each WSOL training method cost on CPU, against vanilla CAM training?

Runs training steps of the same backbone, batch size and resolution for every label-supervised method
(pipeline/wsol/) in one process, interleaved in rounds so machine load hits all alike, and prints
s/batch per method and RATIO = method / cam. Multiply the ratio by the measured cam training time of a
recipe (params.yaml comments) for that method's cost. fsl trains on the val boxes only (its own loop).

  python benchmarks/bench_wsol_train.py [--arch tiny_gap_cnn] [--size 128] [--batch 32]
"""

from __future__ import annotations

import argparse
import time

import torch

from pipeline.catalog.wsol import WSOL_METHODS
from pipeline.wsol.build import build_model, training_loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="tiny_gap_cnn")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=3, help="batches per round and method")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    methods = [m for m in WSOL_METHODS.names() if WSOL_METHODS.get(m).supervision == "labels"]
    images = torch.randn(args.batch, 3, args.size, args.size)
    labels = torch.randint(0, 6, (args.batch,))
    models = {m: build_model(args.arch, 6, {"method": m}).train() for m in methods}
    optims = {m: torch.optim.SGD(models[m].parameters(), lr=0.01, momentum=0.9) for m in methods}
    spent = dict.fromkeys(methods, 0.0)
    for _ in range(args.rounds):
        for m in methods:
            start = time.perf_counter()
            for _ in range(args.batches):
                loss, _ = training_loss(models[m], images, labels, {"method": m})
                optims[m].zero_grad(set_to_none=True)
                loss.backward()
                optims[m].step()
            spent[m] += time.perf_counter() - start
    n = args.rounds * args.batches
    for m in methods:
        print(f"{m:8s} {spent[m] / n:.3f} s/batch  RATIO {spent[m] / spent['cam']:.2f}")


if __name__ == "__main__":
    main()
