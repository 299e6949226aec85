"""What does torch.distributed cost on this machine? (issue 13; no extra hardware here to gain from.)

Runs the real stages as `python -m pipeline train|cams B`, interleaved in rounds so machine load hits
both sides alike, on a synthetic prepared dir (random pixels: the cost does not depend on them):
  train — 2 DDP processes × 1 thread (backbones.<B>.nproc = 2, relaunched through torchrun) against
          1 process × all cores' threads; images/s of the training loop as the stage reports it
          (loading included, interpreter start-up excluded). RATIO goal >= 0.8.
  cams  — the map dump with nproc 2 against nproc 1 (1 process × all cores' threads); images/s as
          the stage reports it. RATIO goal >= 0.8.
Also shown, for scale: one process pinned to one core (1 thread): what each DDP process has. On a
loaded machine a process with 2 threads can collapse (each parallel region waits for its slowest
thread), which flatters the DDP ratio: read it with the load average printed.

  python benchmarks/bench_ddp.py [--rounds 2] [--arch tiny_gap_cnn] [--size 96] [--train 512]

Prints the load average before and after: on a shared machine, rerun when it is high.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]


def write_prepared(folder: Path, n_train: int, n_test: int, size: int, classes: int = 6) -> Path:
    """A prepared dir per docs/contracts.md (the columns train@/cams@ read), random pixels."""
    rng = np.random.default_rng(0)
    rows = []
    for split, n in (("train", n_train), ("val", 32), ("test", n_test)):
        for i in range(n):
            c = i % classes
            rows.append({"image_id": f"{split}_{i:05d}", "path": "", "label": c, "class_name": f"c{c}",
                         "species": "cat", "split": split, "width": size, "height": size, "trimap_path": None,
                         "cache_index": len(rows)})
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "samples.parquet", index=False)
    np.save(folder / "images.npy", rng.integers(0, 256, (len(rows), size, size, 3), dtype=np.uint8))
    (folder / "classes.json").write_text(json.dumps({"class_names": [f"c{c}" for c in range(classes)],
                                                     "species": ["cat"] * classes}))
    return folder


def params(args, nproc: int) -> dict:
    return {"prepare": {"cache_size": args.size},
            "backbones": {"bench": {"arch": args.arch, "epochs": args.epochs, "batch_size": 32, "lr": 0.05,
                                    "image_size": args.size, "workers": 0, "nproc": nproc}},
            "cams": {"methods": ["cam", "gradcam", "center"], "splits": ["test"], "batch_size": 32}}


def run_stage(work: Path, stage: str, nproc: int, args, one_core: bool = False) -> float:
    """images/s the stage reports in its summary line (`one_core`: nproc 1 pinned to one core)."""
    pfile = work / f"params_{nproc}.yaml"
    pfile.write_text(yaml.safe_dump(params(args, nproc)))
    core = min(os.sched_getaffinity(0))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("OMP_NUM_THREADS", None)  # one process takes every core; torchrun's processes share them
    models = work / "models_1"  # cams always reads the one-process model
    cmd = [sys.executable, "-m", "pipeline", stage, "bench", "--params", str(pfile), "--prepared", str(work / "prepared")]
    tag = f"{nproc}{'c' if one_core else ''}"
    cmd += ["--models", str(work / f"models_{tag}")] if stage == "train" else \
        ["--models", str(models), "--cams", str(work / f"cams_{tag}")]
    pin = (lambda: os.sched_setaffinity(0, {core})) if one_core else None
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, preexec_fn=pin)
    if proc.returncode:
        sys.exit(f"{stage} nproc={nproc} failed:\n{proc.stderr[-3000:]}")
    pattern = r"([\d.]+) images/s\)" if stage == "train" else r"\(([\d.]+)–([\d.]+) images/s\)"
    found = re.search(pattern, proc.stdout)
    if not found:
        sys.exit(f"no images/s in the {stage} summary: {proc.stdout!r}")
    return float(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--arch", default="tiny_gap_cnn")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--train", type=int, default=512, help="training images")
    ap.add_argument("--test", type=int, default=256, help="images dumped")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; cores: {len(os.sched_getaffinity(0))}")
    with tempfile.TemporaryDirectory(prefix="bench_ddp_") as tmp:
        work = Path(tmp)
        write_prepared(work / "prepared", args.train, args.test, args.size)
        rates: dict[tuple[str, str], list[float]] = {}
        sides = [("1", 1, False), ("2", 2, False), ("1c", 1, True)]
        for r in range(args.rounds):
            for stage in ("train", "cams"):
                for tag, nproc, one_core in (sides if r % 2 == 0 else sides[::-1]):
                    t = time.perf_counter()
                    rate = run_stage(work, stage, nproc, args, one_core)
                    rates.setdefault((stage, tag), []).append(rate)
                    print(f"round {r + 1} {stage:5s} nproc={nproc}{' (one core)' if one_core else ''}: "
                          f"{rate:8.1f} images/s ({time.perf_counter() - t:.0f} s with start-up)", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    for stage, what in (("train", "2 DDP × 1 thread"), ("cams", "2 processes")):
        two, one, core = med[(stage, "2")], med[(stage, "1")], med[(stage, "1c")]
        print(f"{stage}: {what} {two:.1f} img/s, 1 process × all threads {one:.1f} img/s → RATIO {two / one:.2f} "
              f"(goal >= 0.8); 1 process on one core {core:.1f} img/s (2 processes: {two / core:.2f}× it)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
