"""The one thread policy of every stage: how many intra-op threads torch may use in this process.

    threads = max(1, cores // processes)

- cores: the CPUs this process may run on (`os.sched_getaffinity`, so `taskset` and cgroup cpusets are
  honoured), capped by CAMLOC_THREADS if set, else by OMP_NUM_THREADS if set (a per-process cap: it bounds
  the threads of one process, before the division).
- processes: the camloc processes running at once on these cores: torchrun's processes on this node
  (LOCAL_WORLD_SIZE) times the DVC experiment-queue workers alive on this machine (`dvc queue start -j N`
  starts N; each runs one experiment's stages at a time). CAMLOC_JOBS, if set, replaces the worker count
  (for parallel runs DVC does not know about, e.g. two shells).

Each stage applies it once, at its start (`apply`, called by the CLI for every stage command); the count
is recorded in a trained model's meta.json. Why divide: torch starts one busy-waiting thread per core by
default, so two all-core jobs on the same cores spend their time descheduling each other (measured:
one-process training ~10× slower beside one competing job); with the division they share the cores.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

ENV_THREADS, ENV_JOBS, ENV_LOCAL_WORLD = "CAMLOC_THREADS", "CAMLOC_JOBS", "LOCAL_WORLD_SIZE"
QUEUE_WORKER = "queue-worker"  # `dvc exp queue-worker <node>`: one per `dvc queue start -j N` worker


def _positive_env(name: str, env) -> int | None:
    try:
        v = int(env.get(name, ""))
    except ValueError:
        return None
    return v if v >= 1 else None


def allowed_cores(env=os.environ) -> int:
    """The cores this process may use: its affinity set, capped by CAMLOC_THREADS or OMP_NUM_THREADS."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cap = _positive_env(ENV_THREADS, env) or _positive_env("OMP_NUM_THREADS", env)
    return max(1, min(cores, cap) if cap else cores)


def queue_workers(proc: Path = Path("/proc")) -> int:
    """DVC experiment-queue workers alive on this machine (distinct `dvc exp queue-worker` node names)."""
    nodes = set()
    try:
        entries = [p for p in proc.iterdir() if p.name.isdigit()]
    except OSError:
        return 0
    for p in entries:
        try:
            argv = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if b"exp" in argv and QUEUE_WORKER.encode() in argv:
            i = argv.index(QUEUE_WORKER.encode())
            nodes.add(argv[i + 1] if i + 1 < len(argv) else b"")
    return len(nodes)


def concurrent_processes(env=os.environ, proc: Path = Path("/proc")) -> int:
    """torchrun processes on this node × DVC queue workers (or CAMLOC_JOBS): those sharing the cores."""
    local = _positive_env(ENV_LOCAL_WORLD, env) or 1
    jobs = _positive_env(ENV_JOBS, env) or max(1, queue_workers(proc))
    return local * jobs


def policy_threads(env=os.environ, proc: Path = Path("/proc")) -> int:
    """This process's intra-op threads: its allowed cores divided by the processes running at once."""
    return max(1, allowed_cores(env) // concurrent_processes(env, proc))


def apply(env=os.environ) -> int:
    """Set torch's intra-op threads by the policy; returns the count."""
    import torch

    n = policy_threads(env)
    torch.set_num_threads(n)
    log.debug("threads: %d (cores %d, processes %d)", n, allowed_cores(env), concurrent_processes(env))
    return n
