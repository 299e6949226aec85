"""Dataset code (numpy / PIL / OpenCV; `loader.py` is its only torch module): raw files → manifest.

The registry: `DATASETS.get(name)(params, out_dir, archives, bar)` writes a raw tree in the
Oxford-IIIT Pet layout to `out_dir` and returns a one-line summary (the download stage); the prepare
stage then reads any of them. Heavy modules are imported only when a dataset is used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from pipeline.params import Params
from pipeline.progress import Bar, no_bar
from pipeline.registry import Registry

Fetch = Callable[..., str]  # (params, out_dir, archives, bar) -> summary
DATASETS: Registry[Fetch] = Registry("dataset")


@DATASETS.register("synthpets")
def fetch_synthpets(params: Params, out_dir: Path, archives: Path | None = None, bar: Bar = no_bar) -> str:
    """Generate the synthetic twin (offline, seeded); `archives` does not apply."""
    from pipeline.datasets.synthpets import generate

    if archives is not None:
        logging.getLogger(__name__).warning("archives %s ignored: they apply to dataset.name=pets only", archives)
    c = generate(params.synthpets, out_dir, bar=bar)
    return (f"synthpets: generated {c['images']} images of {c['classes']} classes "
            f"({c['trainval']} trainval, {c['test']} test) into {out_dir}")


@DATASETS.register("pets")
def fetch_pets(params: Params, out_dir: Path, archives: Path | None = None, bar: Bar = no_bar) -> str:
    """Oxford-IIIT Pet: download (or take from `archives`), verify MD5s, extract safely."""
    from pipeline.datasets.archives import fetch_pets as fetch

    return fetch(params, out_dir, archives, bar=bar)
