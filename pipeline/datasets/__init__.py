"""Dataset code (numpy / PIL / OpenCV; `loader.py` is its only torch module): raw files → manifest.

The fetch functions named by the dataset cards (`pipeline.catalog.datasets`):
`fetch(params, out_dir, archives, bar)` writes a raw tree to `out_dir` and returns a one-line summary (the download stage): the Oxford-IIIT Pet layout (pets, synthpets), the
official CUB_200_2011/ tree (cub) or a copy of a reference-layout metadata folder (wsol); the prepare
stage then reads it. Heavy modules are imported only when a dataset is used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from pipeline.params import Params
from pipeline.progress import Bar, no_bar

Fetch = Callable[..., str]  # (params, out_dir, archives, bar) -> summary


def fetch_synthpets(params: Params, out_dir: Path, archives: Path | None = None, bar: Bar = no_bar) -> str:
    """Generate the synthetic twin (offline, seeded); `archives` does not apply."""
    from pipeline.datasets.synthpets import generate

    if archives is not None:
        logging.getLogger(__name__).warning("archives %s ignored: they apply to dataset.name=pets only", archives)
    c = generate(params.synthpets, out_dir, bar=bar)
    return (f"synthpets: generated {c['images']} images of {c['classes']} classes "
            f"({c['trainval']} trainval, {c['test']} test) into {out_dir}")


def fetch_pets(params: Params, out_dir: Path, archives: Path | None = None, bar: Bar = no_bar) -> str:
    """Oxford-IIIT Pet: download (or take from `archives`), verify MD5s, extract safely."""
    from pipeline.datasets.archives import fetch_pets as fetch

    return fetch(params, out_dir, archives, bar=bar)


def fetch_cub(params: Params, out_dir: Path, archives: Path | None = None, bar: Bar = no_bar) -> str:
    """CUB-200-2011: download CUB_200_2011.tgz (or take it from `archives`), verify its MD5, extract safely."""
    from pipeline.datasets.archives import fetch_cub as fetch

    return fetch(params, out_dir, archives, bar=bar)


def fetch_wsol(params: Params, out_dir: Path, archives: Path | None = None, bar: Bar = no_bar) -> str:
    """A dataset in the reference's metadata layout (ImageNet, OpenImages, CUB...): the metadata is checked
    and copied; the images stay where `dataset.wsol.root` says (no download)."""
    from pipeline.datasets.wsol import fetch_wsol as fetch

    if archives is not None:
        logging.getLogger(__name__).warning("archives %s ignored: dataset.name=wsol reads dataset.wsol.root", archives)
    w = params.dataset.wsol
    return fetch(Path(w.metadata), Path(w.root), Path(w.mask_root) if w.mask_root else None, out_dir)
