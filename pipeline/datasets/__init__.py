"""Datasets: each registered name fetches (or generates) a raw tree in the Oxford-IIIT Pet layout.

`DATASETS.get(name)(params, out_dir, archives)` writes `out_dir` and returns a one-line summary; the
same `prepare` stage then reads any of them. Heavy modules are imported only when a dataset is used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from pipeline.params import Params
from pipeline.registry import Registry

Fetch = Callable[[Params, Path, Path | None], str]
DATASETS: Registry[Fetch] = Registry("dataset")


@DATASETS.register("synthpets")
def fetch_synthpets(params: Params, out_dir: Path, archives: Path | None = None) -> str:
    """Generate the synthetic twin (offline, seeded); `archives` does not apply."""
    from pipeline.datasets.synthpets import generate

    if archives is not None:
        logging.getLogger(__name__).warning("archives %s ignored: they apply to dataset.name=pets only", archives)
    c = generate(params.synthpets, out_dir)
    return (f"synthpets: generated {c['images']} images of {c['classes']} classes "
            f"({c['trainval']} trainval, {c['test']} test) into {out_dir}")


@DATASETS.register("pets")
def fetch_pets(params: Params, out_dir: Path, archives: Path | None = None) -> str:
    """Oxford-IIIT Pet: download (or take from `archives`), verify MD5s, extract safely."""
    from pipeline.datasets.download import fetch_pets as fetch

    return fetch(params, out_dir, archives)
