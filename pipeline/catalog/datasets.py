"""The dataset registry, torch-free: what params validation, `camloc datasets` and the download stage
need to know of a dataset. Each card's `impl` names its fetch function,
`(params, out_dir, archives, bar) -> one-line summary`, which writes the raw tree that `prepare` reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.catalog.registry import Registry


@dataclass(frozen=True)
class DatasetCard:
    name: str
    summary: str  # one line for `camloc datasets`
    impl: str  # "module:function" (params, out_dir, archives, bar) -> summary


DATASETS: Registry[DatasetCard] = Registry("dataset")

for _card in (
    DatasetCard("synthpets", "the synthetic twin of Oxford-IIIT Pet (offline, seeded; the default)",
                "pipeline.datasets:fetch_synthpets"),
    DatasetCard("pets", "Oxford-IIIT Pet with its head boxes (download, MD5-checked, or dataset.archives)",
                "pipeline.datasets:fetch_pets"),
    DatasetCard("cub", "CUB-200-2011 (official archive, MD5-checked, or dataset.archives)",
                "pipeline.datasets:fetch_cub"),
    DatasetCard("wsol", "any dataset in the reference's metadata layout (CUB, ImageNet, OpenImages masks)",
                "pipeline.datasets:fetch_wsol"),
):
    DATASETS.add(_card.name, _card)
