"""The cost of the protocol profiles in evaluate@B: one backbone's evaluate stage with the default
`evaluate.protocols` against the same stage with `choe2020` alone (which reuses evaluate's own IoUs, so it
costs no scoring pass), in one process, on the outputs of a `dvc repro` already run in `--project`.

Prints the wall time of each (best of `--repeat`) and their ratio; absolute times on a shared machine are
noise, the ratio is the figure. Writes under a temporary folder, never into the project.

Usage: python benchmarks/bench_protocols.py --project DIR [--backbone tiny_gap_cnn] [--repeat 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

from pipeline import contracts as C
from pipeline.catalog.protocols import BASELINE
from pipeline.params import load_params
from pipeline.stages import evaluate


def _time(params, paths: C.Paths, backbone: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        evaluate.run(params, paths, backbone)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, required=True, help="a project folder after `dvc repro`")
    ap.add_argument("--backbone", default=None, help="backbone key (default: the first of params.yaml)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    os.chdir(args.project)  # the prepared samples name their trimaps relative to the project root
    args.project = Path(".")
    params = load_params("params.yaml")
    backbone = args.backbone or next(iter(params.backbones))
    alone = dataclasses.replace(params, evaluate=dataclasses.replace(params.evaluate, protocols=(BASELINE,),
                                                                     pseudo_boxes=None))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        paths = C.Paths(prepared=args.project / "data" / "prepared", cams=args.project / "data" / "cams",
                        eval=out / "eval", metrics=out / "metrics", curves=out / "curves")
        base = _time(alone, paths, backbone, args.repeat)
        full = _time(params, paths, backbone, args.repeat)
    print(f"evaluate@{backbone}: protocols {list(params.evaluate.protocols)} {full:.2f} s vs "
          f"[{BASELINE}] alone {base:.2f} s: ratio {full / base:.2f}x (best of {args.repeat})")


if __name__ == "__main__":
    main()
