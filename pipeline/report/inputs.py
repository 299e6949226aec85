"""Reading the earlier stages' outputs (docs/contracts.md), with errors that say which stage to re-run.

Nothing here computes a number: it only loads and checks columns, so a contract drift fails loudly at
the boundary instead of giving a silently wrong table.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.cams.store import map_file
from pipeline.errors import CamlocError

log = logging.getLogger(__name__)

PER_IMAGE_COLUMNS = ("image_id", "split", "method", "kind", "mode", "tau_index", "tau", "iou")
CURVE_COLUMNS = ("method", "curve", "x", "y")
HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")


@dataclass(frozen=True)
class InputPaths:
    """Where the report stage reads; every path is relative to the repository root `root`."""

    root: Path = Path(".")

    def metrics(self, backbone: str) -> Path:
        return self.root / "reports" / "metrics" / f"{backbone}.json"

    def curves(self, backbone: str) -> Path:
        return self.root / "reports" / "curves" / f"{backbone}.csv"

    def eval_dir(self, backbone: str) -> Path:
        return self.root / "data" / "eval" / backbone

    def cams_dir(self, backbone: str) -> Path:
        return self.root / "data" / "cams" / backbone

    def model_dir(self, backbone: str) -> Path:
        return self.root / "data" / "models" / backbone

    @property
    def prepared(self) -> Path:
        return self.root / "data" / "prepared"


def _require(path: Path, stage: str) -> None:
    """Raise the 'missing stage output' error unless `path` is a file."""
    if not path.is_file():
        raise _missing(path, stage)


def _missing(path: Path, stage: str) -> CamlocError:
    return CamlocError(f"{path} is missing: run `dvc repro {stage}` first (the report reads stage outputs only)")


def _need_columns(df: pd.DataFrame, columns, path: Path) -> None:
    absent = [c for c in columns if c not in df.columns]
    if absent:
        raise CamlocError(f"{path} lacks columns {absent} (has {list(df.columns)}); it does not follow "
                          "docs/contracts.md — re-run the stage that writes it with the current code")


def load_metrics(paths: InputPaths, backbone: str) -> dict[str, float]:
    """The flat `<method>.<metric>` dict of reports/metrics/<backbone>.json."""
    path = paths.metrics(backbone)
    _require(path, f"evaluate@{backbone}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CamlocError(f"{path} is not valid JSON ({e}): re-run `dvc repro evaluate@{backbone}`") from None
    if not isinstance(data, dict) or not all(isinstance(v, int | float) for v in data.values()):
        raise CamlocError(f"{path} must be a flat JSON object of numbers keyed '<method>.<metric>'")
    return {str(k): float(v) for k, v in data.items()}


def load_curves(paths: InputPaths, backbone: str) -> pd.DataFrame:
    path = paths.curves(backbone)
    _require(path, f"evaluate@{backbone}")
    df = pd.read_csv(path)
    _need_columns(df, CURVE_COLUMNS, path)
    return df


def load_per_image(paths: InputPaths, backbone: str) -> pd.DataFrame:
    path = paths.eval_dir(backbone) / "per_image.parquet"
    _require(path, f"evaluate@{backbone}")
    df = pd.read_parquet(path, columns=list(PER_IMAGE_COLUMNS))
    _need_columns(df, PER_IMAGE_COLUMNS, path)
    return df


def load_chosen(paths: InputPaths, backbone: str) -> dict:
    path = paths.eval_dir(backbone) / "chosen.json"
    _require(path, f"evaluate@{backbone}")
    return json.loads(path.read_text())


def load_history(paths: InputPaths, backbone: str) -> pd.DataFrame | None:
    """Training history, or None for a backbone without training (logged, shown as absent)."""
    path = paths.model_dir(backbone) / "history.csv"
    if not path.is_file():
        log.warning("no training history at %s: the training-curve plot leaves %s out", path, backbone)
        return None
    df = pd.read_csv(path)
    _need_columns(df, HISTORY_COLUMNS, path)
    return df


def load_samples(paths: InputPaths) -> pd.DataFrame:
    path = paths.prepared / "samples.parquet"
    _require(path, "prepare")
    return pd.read_parquet(path)


def load_boxes(paths: InputPaths) -> pd.DataFrame:
    path = paths.prepared / "boxes.parquet"
    _require(path, "prepare")
    return pd.read_parquet(path)


def load_classes(paths: InputPaths) -> list[str]:
    path = paths.prepared / "classes.json"
    _require(path, "prepare")
    return list(json.loads(path.read_text())["class_names"])


def load_image_cache(paths: InputPaths) -> np.ndarray:
    """The uint8 N×S×S×3 cache, memory-mapped (only the gallery's few rows are read)."""
    path = paths.prepared / "images.npy"
    _require(path, "prepare")
    return np.load(path, mmap_mode="r")


def load_cams_index(paths: InputPaths, backbone: str, split: str) -> pd.DataFrame:
    path = paths.cams_dir(backbone) / split / "index.parquet"
    _require(path, f"cams@{backbone}")
    df = pd.read_parquet(path)
    _need_columns(df, ("image_id", "label", "pred"), path)
    return df


def load_cams_meta(paths: InputPaths, backbone: str) -> dict:
    path = paths.cams_dir(backbone) / "meta.json"
    _require(path, f"cams@{backbone}")
    return json.loads(path.read_text())


def load_maps(paths: InputPaths, backbone: str, split: str, method: str) -> np.ndarray:
    """Raw GT-class maps N×h×w of one method, memory-mapped."""
    path = map_file(paths.cams_dir(backbone) / split, method, "gt")
    _require(path, f"cams@{backbone}")
    return np.load(path, mmap_mode="r")
