"""What does the few-shot baseline (fsl) cost to train, against the plain CAM training of the same arch?

Runs the real train stage for two backbone entries of a params file in one process, into a temporary
models folder: BASELINE (default `tiny_gap_cnn`, CAM training on the train split) and FSL (default
`tiny_gap_cnn_fsl`: k fold runs + the final run on the val split), alternating over --rounds so machine
load hits both alike. Prints wall and process CPU seconds of each (medians) and RATIO = fsl / baseline.

  python benchmarks/bench_fsl.py [--params params.yaml] [--prepared data/prepared] [--rounds 1]

Needs a prepared dir (`dvc repro prepare`).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pipeline.contracts import Paths
from pipeline.params import load_params
from pipeline.stages import train


def _timed(params, prepared: Path, key: str, models: Path) -> tuple[float, float, str]:
    wall, cpu = time.perf_counter(), time.process_time()
    summary = train.run(params, Paths(prepared=prepared, models=models), key)
    return time.perf_counter() - wall, time.process_time() - cpu, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--prepared", default="data/prepared")
    ap.add_argument("--baseline", default="tiny_gap_cnn")
    ap.add_argument("--fsl", default="tiny_gap_cnn_fsl")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    params, prepared = load_params(args.params), Path(args.prepared)
    times: dict[str, list[tuple[float, float]]] = {args.baseline: [], args.fsl: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for key in (args.baseline, args.fsl) if r % 2 == 0 else (args.fsl, args.baseline):
                wall, cpu, summary = _timed(params, prepared, key, Path(tmp) / f"round{r}")
                times[key].append((wall, cpu))
                print(f"{key}: {wall:.1f} s wall, {cpu:.1f} s CPU — {summary}")
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
    for k, (w, c) in med.items():
        print(f"{k:24s} wall {w:7.1f} s   CPU {c:7.1f} s")
    print(f"RATIO fsl / baseline: wall {med[args.fsl][0] / med[args.baseline][0]:.2f}×, "
          f"CPU {med[args.fsl][1] / med[args.baseline][1]:.2f}×")


if __name__ == "__main__":
    main()
