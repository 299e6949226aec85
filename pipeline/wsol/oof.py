"""Out-of-fold maps of the few-shot baseline (torch), for cams@B: each val image's maps come from the
fold model that did not learn from it (pipeline/wsol/fsl.py), so evaluate@B chooses τ on val honestly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.cams.dump import dump_split
from pipeline.errors import CamlocError
from pipeline.progress import Bar, no_bar
from pipeline.wsol.rebuild import load_fold_models


def has_folds(meta: dict) -> bool:
    """Whether a model's meta.json describes fsl fold models (whose val maps must be out of fold)."""
    return "fsl" in meta


def dump_out_of_fold(model_dir: str | Path, meta: dict, rows: pd.DataFrame, images: np.ndarray, methods, cp,
                     desc: str, bar: Bar = no_bar, device=None):
    """`cams.dump.dump_split` for the val split of an fsl model, each image through its held-out fold's
    model; same return value: ({(method, kind): (N, h, w)}, predictions, images/s)."""
    fold_of = meta["fsl"]["fold_of"]
    ids = rows["image_id"].astype(str).tolist()
    unknown = [i for i in ids if i not in fold_of]
    if unknown:
        raise CamlocError(f"{Path(model_dir) / 'meta.json'}: val images {unknown[:3]} were not in the fsl model's "
                          f"folds; the model was trained on another split: re-run `dvc repro train@{meta['backbone']}`")
    folds = np.array([fold_of[i] for i in ids], dtype=np.int64)
    labels = rows["label"].to_numpy(dtype=np.int64, copy=True)
    models = load_fold_models(model_dir, device or "cpu")
    maps: dict = {}
    preds: dict[str, np.ndarray] = {}
    seconds = 0.0
    for f, model in enumerate(models):
        held = np.flatnonzero(folds == f)
        if not len(held):
            continue
        got, pr, rate = dump_split(model, meta, images[held], labels[held], methods, cp, f"{desc} fold {f}", bar)
        seconds += len(held) / rate
        for key, arr in got.items():
            maps.setdefault(key, np.empty((len(ids), *arr.shape[1:]), dtype=np.float32))[held] = arr
        for key, arr in pr.items():
            preds.setdefault(key, np.empty((len(ids), *arr.shape[1:]), dtype=arr.dtype))[held] = arr
    return maps, preds, len(ids) / max(seconds, 1e-9)
