"""The thread policy (pipeline/threads.py) under sharing, side by side in one run:

1. training with one competing CPU-bound process, against training alone (goal: slowdown ≤ 2.5× on 2
   cores). The competitor is a second training job started the same way (CAMLOC_JOBS=2 tells each job
   that two run at once, as `dvc queue start -j 2` does by itself); the naive case (both on every core, the
   pre-policy rule) is printed beside it.
2. two training jobs as DVC experiments under `dvc queue start -j 2`, against the same two one after
   the other under `-j 1`, the same queue (goal: throughput ≥ 1.0×, never the 10× collapse); the two run
   bare, without DVC, are printed beside it. A throwaway DVC project in a temp folder. A round ends when
   both experiments are collected (their refs exist, what `dvc exp show` reads).

    python benchmarks/bench_threads.py [--steps 300] [--skip-queue]

A job is `steps` SGD steps of tiny_gap_cnn on random 32 × 3 × 96 × 96 batches, its threads set by
`threads.apply()` exactly as every stage's. Every figure is a ratio of runs in this process's session;
on a loaded machine report `uptime` beside them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOB = """
import sys, time, torch
sys.path.insert(0, {root!r})
from pipeline import threads
from pipeline.models import build_backbone
n = threads.apply()
torch.manual_seed(0)
model = build_backbone("tiny_gap_cnn", 6)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(32, 3, 96, 96), torch.randint(0, 6, (32,))
t0 = time.perf_counter()
for _ in range({steps}):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
print(f"threads={{n}} seconds={{time.perf_counter() - t0:.3f}}", flush=True)
"""


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "CAMLOC_THREADS", "CAMLOC_JOBS")}
    return env | {k: str(v) for k, v in extra.items()}


def _job(steps: int, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", JOB.format(root=str(ROOT), steps=steps)], env=_env(**env),
                            stdout=subprocess.PIPE, text=True)


def _seconds(p: subprocess.Popen) -> tuple[int, float]:
    out, _ = p.communicate()
    fields = dict(f.split("=") for f in out.split())
    return int(fields["threads"]), float(fields["seconds"])


def competing(steps: int) -> None:
    alone = _seconds(_job(steps, CAMLOC_JOBS=1))
    a, b = _job(steps, CAMLOC_JOBS=2), _job(steps, CAMLOC_JOBS=2)
    shared = _seconds(a), _seconds(b)
    a, b = _job(steps, CAMLOC_JOBS=1), _job(steps, CAMLOC_JOBS=1)
    naive = _seconds(a), _seconds(b)
    slow, slow_naive = shared[0][1] / alone[1], naive[0][1] / alone[1]
    print(f"training beside one competing job: alone {alone[0]} threads; with the policy {shared[0][0]} "
          f"thread(s) each → slowdown {slow:.2f}× (goal ≤ 2.5×: {'met' if slow <= 2.5 else 'NOT met'}); "
          f"naive ({naive[0][0]} threads each) → {slow_naive:.2f}×")


def _run(cmd: list[str], cwd: Path) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr[-1500:]}")
    return out.stdout


def _finished(tmp: Path, names: tuple[str, ...]) -> set[str]:
    """Which of `names` have their experiment ref, i.e. are run and collected (one `git for-each-ref`: polling
    `dvc queue status` instead costs a second of CPU per poll, taken from the jobs it measures)."""
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=tmp,
                          capture_output=True, text=True, check=True).stdout.split()
    return {n for n in names if any(r.endswith(f"/{n}") for r in refs)}


def _queued(dvc: str, tmp: Path, names: tuple[str, ...], workers: int, timeout: float = 1800) -> tuple[float, int]:
    """Seconds from `dvc queue start -j workers` (worker start-up included) until every one of `names`,
    queued as experiments, is run and collected; and how many of them succeeded."""
    for name in names:
        _run([dvc, "exp", "run", "--queue", "-n", name, "-S", f"job={name}"], tmp)
    t0 = time.perf_counter()
    _run([dvc, "queue", "start", "-j", str(workers)], tmp)
    checked = t0
    while len(_finished(tmp, names)) < len(names) and time.perf_counter() - t0 < timeout:
        if time.perf_counter() - checked > 20:  # a failed experiment never gets its ref
            checked = time.perf_counter()
            if "Failed" in _run([dvc, "queue", "status"], tmp):
                break
        time.sleep(0.5)
    elapsed = time.perf_counter() - t0
    ok = len(_finished(tmp, names))
    while "Running" in (status := _run([dvc, "queue", "status"], tmp)) or "Queued" in status:
        time.sleep(1)  # the workers finish their bookkeeping before the next round starts
    if ok != len(names):
        print(status)
    return elapsed, ok


def queue(steps: int) -> None:
    dvc = str(Path(sys.executable).with_name("dvc"))
    tmp = Path(tempfile.mkdtemp(prefix="bench_threads_"))
    try:
        (tmp / "job.py").write_text(JOB.format(root=str(ROOT), steps=steps).replace(
            'print(f"threads', 'open("out.txt", "w").write(f"threads').replace(", flush=True)", ")"))
        (tmp / "params.yaml").write_text("job: a\n")
        (tmp / "dvc.yaml").write_text("stages:\n  job:\n    cmd: python job.py\n    deps: [job.py]\n"
                                      "    params: [job]\n    outs: [out.txt]\n")
        for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init"]):
            _run(cmd, tmp)
        t0 = time.perf_counter()
        for _ in range(2):
            _seconds(_job(steps, CAMLOC_JOBS=1))
        bare = time.perf_counter() - t0
        one_by_one, ok1 = _queued(dvc, tmp, ("bench-u", "bench-v"), 1)  # the same queue, one worker: the goal's baseline
        parallel, ok = _queued(dvc, tmp, ("bench-x", "bench-y"), 2)
        ratio = one_by_one / parallel
        print(f"two jobs under `dvc queue start -j 2` ({ok} succeeded) against the same two under `-j 1`, one "
              f"after the other ({ok1} succeeded): {parallel:.1f} s vs {one_by_one:.1f} s → throughput {ratio:.2f}× "
              f"(goal ≥ 1.0×: {'met' if ratio >= 1.0 and ok == ok1 == 2 else 'NOT met'}); against the two run bare, "
              f"without DVC ({bare:.1f} s): {bare / parallel:.2f}× (the queue's own start-up included)")
    finally:
        subprocess.run([dvc, "queue", "stop", "--kill"], cwd=tmp, env=_env(), capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)  # ~35 s at 2 threads: a train@ stage's length
    ap.add_argument("--skip-queue", action="store_true")
    ap.add_argument("--skip-competing", action="store_true")
    args = ap.parse_args()
    print(f"cores: {len(os.sched_getaffinity(0))}; load: {os.getloadavg()[0]:.2f}")
    if not args.skip_competing:
        competing(args.steps)
    if not args.skip_queue:
        queue(args.steps)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
