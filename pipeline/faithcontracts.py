"""The faithfulness stage's on-disk contract (docs/contracts.md), beside `pipeline.contracts`: the files
of data/faithfulness/<B>/, their columns, the metric names of reports/faithfulness/<B>.json, and checked
readers whose error names the missing file and the stage that writes it. Torch-free, as contracts is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import contracts as C
from pipeline.catalog.metrics import computed_by, json_names

if TYPE_CHECKING:
    import pandas as pd

ROAD_NAMES = computed_by("pipeline.faithfulness.road")  # per-image values on ROAD's own subset
FAITHFULNESS_NAMES = json_names("faithfulness", ())
FAITHFULNESS_FILES = ("per_image.parquet", "curves.parquet", "road.parquet")  # data/faithfulness/<B>/
FAITHFULNESS_COLUMNS = ("image_id", "split", "method", "label", "score", "masked_score", "masked_score_pixel",
                        "deletion_auc", "insertion_auc")  # data/faithfulness/<B>/per_image.parquet
ROAD_COLUMNS = ("image_id", "split", "method", *ROAD_NAMES)  # data/faithfulness/<B>/road.parquet (its subset)
FAITHFULNESS_CURVE_COLUMNS = ("method", "curve", "fraction", "score")  # data/faithfulness/<B>/curves.parquet


def _table(faithfulness_dir: str | Path, name: str, columns) -> pd.DataFrame:
    folder = Path(faithfulness_dir)
    return C.checked_parquet(folder / name, C.backbone_stage("faithfulness", folder), columns)


def read_faithfulness(faithfulness_dir: str | Path) -> pd.DataFrame:
    """faithfulness/<B>/per_image.parquet: per image and method, the scores behind AD, IC and the AUCs."""
    return _table(faithfulness_dir, "per_image.parquet", FAITHFULNESS_COLUMNS)


def read_road(faithfulness_dir: str | Path) -> pd.DataFrame:
    """faithfulness/<B>/road.parquet: per image (of the ROAD subset) and method, MoRF, LeRF and combined."""
    return _table(faithfulness_dir, "road.parquet", ROAD_COLUMNS)


def read_faithfulness_curves(faithfulness_dir: str | Path) -> pd.DataFrame:
    """faithfulness/<B>/curves.parquet: each method's mean deletion and insertion curve."""
    return _table(faithfulness_dir, "curves.parquet", FAITHFULNESS_CURVE_COLUMNS)


def read_faithfulness_metrics(path: str | Path) -> dict[str, float]:
    """The flat `<method>.<metric>` dict of reports/faithfulness/<B>.json."""
    return C.read_metrics(path, "faithfulness")
