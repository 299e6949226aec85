"""The `download` stage: dispatch to the dataset registry; Oxford-IIIT Pet fetching (HTTP, MD5, safe
extraction)."""

from __future__ import annotations

from pathlib import Path

from pipeline.datasets import DATASETS
from pipeline.params import Params


def run(params: Params, out_dir: str | Path, archives: str | Path | None = None) -> str:
    """Write the raw tree of `params.dataset.name` to `out_dir`; returns a one-line summary."""
    chosen = archives if archives is not None else params.dataset.archives
    return DATASETS.get(params.dataset.name)(params, Path(out_dir), Path(chosen) if chosen else None)
