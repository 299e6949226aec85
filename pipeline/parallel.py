"""Worker processes that are safe to fork (the synthpets generator, prepare, evaluate, evaluate-maps).

OpenCV keeps a thread pool whose mutexes a forked child inherits in whatever state they were in; a
child that then touches the pool (cv2.setNumThreads, or a parallel cv2 call) can deadlock. So the
parent drops to one OpenCV thread before it forks: no pool exists to inherit, and the processes are
the parallelism anyway.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool

import cv2


def fork_safe_opencv() -> None:
    """Call in the parent before forking workers that use OpenCV."""
    cv2.setNumThreads(1)


def fork_pool(workers: int) -> multiprocessing.pool.Pool:
    """A fork-context process pool whose workers may use OpenCV."""
    fork_safe_opencv()
    return multiprocessing.get_context("fork").Pool(workers)
