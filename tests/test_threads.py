"""The one thread policy (pipeline/threads.py): allowed cores, capped by CAMLOC_THREADS / OMP_NUM_THREADS,
divided by the processes running at once (torchrun's on this node × DVC queue workers), read back from
`torch.get_num_threads()` in stage processes started by the CLI, alone and under torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import threads

ROOT = Path(__file__).resolve().parents[1]
CORES = len(os.sched_getaffinity(0))
PROBE = """
import os, sys, torch
from pipeline.cli import cli
try:
    cli.main(["faithfulness", "--help"], standalone_mode=False)  # the group callback applies the policy
except SystemExit:
    pass
sys.stderr.write(f"threads={torch.get_num_threads()}\\n")
"""


def _fake_proc(root: Path, workers: list[str]) -> Path:
    """A /proc with one `dvc exp queue-worker <node>` process per entry (a node listed twice: its child)."""
    root.mkdir(parents=True, exist_ok=True)
    for pid, node in enumerate(workers, start=100):
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "cmdline").write_bytes(b"\0".join([b"python", b"dvc", b"exp", b"queue-worker",
                                                               node.encode(), b"--clean"]) + b"\0")
    (root / "1").mkdir()
    (root / "1" / "cmdline").write_bytes(b"python\0-m\0pipeline\0train\0")
    (root / "self").mkdir()
    return root


def test_allowed_cores_are_the_affinity_capped_by_camloc_threads_or_omp(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(8)))
    assert threads.allowed_cores({}) == 8
    assert threads.allowed_cores({"OMP_NUM_THREADS": "3"}) == 3
    assert threads.allowed_cores({"CAMLOC_THREADS": "2", "OMP_NUM_THREADS": "6"}) == 2  # CAMLOC_THREADS first
    assert threads.allowed_cores({"CAMLOC_THREADS": "64"}) == 8  # a cap, never more than the affinity
    assert threads.allowed_cores({"OMP_NUM_THREADS": "zero"}) == 8  # unreadable: ignored


def test_the_cores_are_divided_by_torchrun_processes_times_dvc_queue_workers(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(8)))
    two = _fake_proc(tmp_path / "two", ["dvc-exp-abc-1@localhost", "dvc-exp-abc-2@localhost",
                                        "dvc-exp-abc-2@localhost"])
    none = _fake_proc(tmp_path / "none", [])
    assert threads.queue_workers(two) == 2 and threads.queue_workers(none) == 0
    assert threads.policy_threads({}, none) == 8
    assert threads.policy_threads({}, two) == 4
    assert threads.policy_threads({"LOCAL_WORLD_SIZE": "2"}, two) == 2
    assert threads.policy_threads({"LOCAL_WORLD_SIZE": "4"}, none) == 2
    assert threads.policy_threads({"CAMLOC_JOBS": "3"}, two) == 2  # CAMLOC_JOBS replaces the worker count
    assert threads.policy_threads({"LOCAL_WORLD_SIZE": "16"}, two) == 1  # never 0


def _probe(env: dict, torchrun: int | None) -> list[int]:
    cmd = [sys.executable, "-c", PROBE] if torchrun is None else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={torchrun}",
        "--no-python", sys.executable, "-c", PROBE]
    full = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "CAMLOC_THREADS", "CAMLOC_JOBS")}
    out = subprocess.run(cmd, cwd=ROOT, env=full | env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return sorted(int(line.split("=")[1]) for line in out.stderr.splitlines() if line.startswith("threads="))


def test_a_stage_alone_uses_its_allowed_cores():
    assert _probe({"CAMLOC_JOBS": "1"}, None) == [CORES]
    assert _probe({"CAMLOC_JOBS": "1", "CAMLOC_THREADS": "1"}, None) == [1]


@pytest.mark.parametrize("n", [1, 2])  # n = 1 tells the policy from torchrun's own OMP_NUM_THREADS=1
def test_under_torchrun_with_n_processes_each_stage_uses_cores_over_n_threads(n):
    # torchrun gives its children OMP_NUM_THREADS=1 unless it is set; camloc's own relaunch
    # (distributed.relaunch) passes the parent's cores as CAMLOC_THREADS, as here
    assert _probe({"CAMLOC_JOBS": "1", "CAMLOC_THREADS": str(CORES)}, n) == [max(1, CORES // n)] * n
