"""Atomic outputs, used by every stage: write to a temporary sibling, rename into place when whole.

An interrupted stage (SIGKILL included) then never leaves a half-written file under its final name, and
an output folder is replaced only when it holds nothing but what camloc wrote there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipeline.errors import CamlocError

TMP_PREFIX = ".camloc-tmp-"


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `final`; on success rename it over `final`.

    Works for files and folders: whatever the caller creates at the yielded path replaces `final`.
    The suffix keeps extensions that writers sniff (np.save adds `.npy` when it is missing).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX + final.name + ".", suffix=suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj) -> None:
    """Deterministic JSON (sorted keys, fixed indent) so identical results give identical bytes."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_parquet(path: str | os.PathLike, df) -> None:
    with atomic_path(path, suffix=".parquet") as tmp:
        df.to_parquet(tmp, index=False)


def clean_own_tmp(final: str | os.PathLike) -> None:
    """Remove the temporaries a killed earlier run left for this output (`atomic_path`'s siblings of
    `final`, and only those: other outputs in the same folder may be being written right now)."""
    final = Path(final)
    if not final.parent.is_dir():
        return
    for p in final.parent.glob(f"{TMP_PREFIX}{final.name}.*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


@contextlib.contextmanager
def replace_dir(final: str | os.PathLike, owned: Iterable[str]) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces `final` when the block succeeds.

    An existing `final` is replaced only if it holds nothing but entries named in `owned` (what a
    previous run wrote): a user's folder passed by mistake as --out is refused, never deleted.
    """
    final = Path(final)
    if final.exists():
        if not final.is_dir() or final.is_symlink():
            raise CamlocError(f"{final} exists and is not a folder; remove it or choose another --out")
        foreign = sorted(p.name for p in final.iterdir()
                         if p.name not in set(owned) and not p.name.startswith(TMP_PREFIX))
        if foreign:
            raise CamlocError(
                f"{final} holds files camloc did not write ({', '.join(foreign[:5])}); "
                "move them away or choose another --out (nothing was changed)"
            )
    clean_own_tmp(final)  # left by a killed earlier run
    with atomic_path(final) as tmp:
        tmp.mkdir(parents=True)
        yield tmp
