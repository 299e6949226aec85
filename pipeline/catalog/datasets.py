"""The dataset registry, torch-free: what params validation, `camloc datasets`, the download and the
prepare stage need to know of a dataset. Each card's `impl` names its fetch function,
`(params, out_dir, archives, bar) -> one-line summary`, which writes the raw tree that `prepare` reads;
`raw_layout` says which reader `prepare` uses on it:
- `pets_tree`: the Oxford-IIIT Pet layout (images/, annotations/{list,trainval,test}.txt, xmls, trimaps);
- `cub_tree`: the official CUB_200_2011/ tree (val carved from train);
- `reference_metadata`: the reference's metadata layout (pipeline/datasets/wsol.py, `fetch_wsol` writes it),
  the easiest target for an adapter of another layout (docs/plugins.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.catalog.registry import Registry

RawLayout = Literal["pets_tree", "cub_tree", "reference_metadata"]


@dataclass(frozen=True)
class DatasetCard:
    name: str
    summary: str  # one line for `camloc datasets`
    impl: str  # "module:function" (params, out_dir, archives, bar) -> summary
    raw_layout: RawLayout = "pets_tree"  # what the fetch writes, so what prepare reads
    requires: tuple[str, ...] = ()  # params keys under `dataset.` that must be set, e.g. "wsol.root"


DATASETS: Registry[DatasetCard] = Registry("dataset")

for _card in (
    DatasetCard("synthpets", "the synthetic twin of Oxford-IIIT Pet (offline, seeded; the default)",
                "pipeline.datasets:fetch_synthpets"),
    DatasetCard("pets", "Oxford-IIIT Pet with its head boxes (download, MD5-checked, or dataset.archives)",
                "pipeline.datasets:fetch_pets"),
    DatasetCard("cub", "CUB-200-2011 (official archive, MD5-checked, or dataset.archives)",
                "pipeline.datasets:fetch_cub", "cub_tree"),
    DatasetCard("wsol", "any dataset in the reference's metadata layout (CUB, ImageNet, OpenImages masks)",
                "pipeline.datasets:fetch_wsol", "reference_metadata", ("wsol.metadata", "wsol.root")),
):
    DATASETS.add(_card.name, _card)
