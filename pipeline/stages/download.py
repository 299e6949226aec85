"""The `download` stage: the raw tree of `dataset.name` into `data/raw/` (DVC out), through the dataset
registry: Oxford-IIIT Pet downloaded and verified (`datasets.archives`), or `synthpets` generated."""

from __future__ import annotations

from pathlib import Path

from pipeline.catalog.datasets import DATASETS
from pipeline.contracts import Paths
from pipeline.params import Params
from pipeline.stages import bar


def run(params: Params, paths: Paths, archives: str | Path | None = None) -> str:
    """Write the raw tree of `params.dataset.name` to `paths.raw`; returns a one-line summary.
    `archives` (a folder of the dataset's archives) overrides `dataset.archives`."""
    chosen = archives if archives is not None else params.dataset.archives
    fetch = DATASETS.load(params.dataset.name)
    return fetch(params, Path(paths.raw), Path(chosen) if chosen else None, bar=bar)
