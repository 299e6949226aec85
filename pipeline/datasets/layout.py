"""Replacing a stage's output folder safely: atomically, and never over files camloc did not write."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipeline.errors import CamlocError
from pipeline.fsutil import TMP_PREFIX, atomic_path, clean_own_tmp

RAW_ENTRIES = ("images", "annotations")
PREPARED_ENTRIES = ("samples.parquet", "boxes.parquet", "classes.json", "report.json", "images.npy")


@contextlib.contextmanager
def replace_dir(final: str | Path, owned: Iterable[str] = RAW_ENTRIES) -> Iterator[Path]:
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
