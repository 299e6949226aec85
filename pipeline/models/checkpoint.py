"""Trained-model folders (docs/contracts.md `data/models/<B>/`): the one writer every trainer uses (train@B's
epoch loop and fsl's own loop), `model.pt` (a state dict) + `meta.json` + `history.csv` + `metrics.json`,
and the readers of its files. Rebuilding the model from a folder (its WSOL heads included) is
`pipeline.wsol.rebuild`, one layer up, since it needs the WSOL methods.

Loading never unpickles code (models.weights). A corrupt file, a pickle carrying code, or weights that do
not fit the backbone named in meta.json stop with a CamlocError naming the file.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from pipeline.atomic import atomic_path, write_json
from pipeline.catalog.wsol import DEFAULT_METHOD
from pipeline.contracts import HISTORY_COLUMNS
from pipeline.errors import CamlocError
from pipeline.models.weights import read_weights

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
META_FILE = "meta.json"
META_KEYS = ("arch", "num_classes", "image_size", "mean", "std")
# A few-shot (fsl) checkpoint also holds its out-of-fold models, `folds.<f>.<name>`, beside the main
# model's keys (pipeline/wsol/fsl.py); meta.json's "fsl" entry says how many.
FOLDS_PREFIX = "folds."


def save_model(folder: str | Path, model: nn.Module, meta: dict) -> None:
    """Write `model.pt` (CPU state dict) and `meta.json` into `folder`, each atomically."""
    folder = Path(folder)
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"meta lacks {missing}")
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    # Serialise through memory: torch.save names the zip records after the file it writes, and a
    # temporary file's random name would make identical weights give different bytes.
    buf = io.BytesIO()
    torch.save(state, buf)
    with atomic_path(folder / MODEL_FILE, suffix=".pt") as tmp:
        tmp.write_bytes(buf.getvalue())
    write_json(folder / META_FILE, meta)


def read_meta(folder: str | Path) -> dict:
    """meta.json of a model folder, checked for the keys needed to rebuild the model."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise CamlocError(f"{path} is missing; train the model first (`python -m pipeline train <backbone>`)")
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise CamlocError(f"{path} is not valid JSON ({e}); retrain or restore the model folder") from None
    missing = [k for k in META_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise CamlocError(f"{path} lacks keys {missing}; it was not written by `camloc train`")
    return meta


def write_model_folder(out_dir: str | Path, model: nn.Module, meta: dict, history: list[dict],
                       extra_metrics: dict | None = None, fill: Callable[[Path], None] | None = None) -> None:
    """The whole model folder in a temporary sibling, renamed into place at once: model.pt, meta.json,
    metrics.json (the last history row's scores, `extra_metrics` after them; a non-finite value is left
    out) and history.csv (no timings: it is a DVC plot and must be byte-identical across reruns).
    `fill(tmp)` adds the trainer's own files (its dvclive logs) before the rename.

    An empty `history` is a checkpoint scored without training (epochs: 0): history.csv is its header
    only, and metrics.json holds `epochs: 0` and `extra_metrics` (no training loss exists)."""
    final = history[-1] if history else {"epoch": 0}
    metrics = {k: round(float(final[k]), 4) for k in ("val_acc", "val_loss", "train_acc", "train_loss")
               if k in final and math.isfinite(float(final[k]))}
    metrics["epochs"] = int(final["epoch"])
    metrics |= {k: v for k, v in (extra_metrics or {}).items()
                if not (isinstance(v, float) and not math.isfinite(v))}
    with atomic_path(Path(out_dir), kind="dir") as tmp:
        save_model(tmp, model, meta)
        write_json(tmp / "metrics.json", metrics)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in history:
            writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k]) for k in HISTORY_COLUMNS})
        (tmp / "history.csv").write_text(buf.getvalue())
        if fill is not None:
            fill(tmp)


def load_state(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """A plain tensor state dict from `path`, refusing pickled code and reporting corruption."""
    path = Path(path)
    state = read_weights(path, "train the model first (`python -m pipeline train <backbone>`)", "retrain the model",
                         device)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CamlocError(f"{path} holds a {type(state).__name__}, not a state dict of tensors; retrain the model")
    return state


def main_state(state: dict[str, torch.Tensor], meta: dict) -> dict[str, torch.Tensor]:
    """The main model's keys of a folder's state (an fsl folder also holds its fold models)."""
    return {k: v for k, v in state.items() if not k.startswith(FOLDS_PREFIX)} if "fsl" in meta else state


def fold_count(meta: dict, folder: Path) -> int:
    """How many out-of-fold models an fsl folder holds (its meta.json's "fsl" entry)."""
    folds = int(meta.get("fsl", {}).get("folds", 0))
    if folds < 1:
        raise CamlocError(f"{folder / META_FILE} describes no fold models (no 'fsl' entry); retrain the fsl model")
    return folds


def fold_states(state: dict[str, torch.Tensor], folds: int) -> list[dict[str, torch.Tensor]]:
    """The out-of-fold models' states of an fsl folder's state, fold f at index f."""
    prefixes = [f"{FOLDS_PREFIX}{f}." for f in range(folds)]
    return [{k[len(p):]: v for k, v in state.items() if k.startswith(p)} for p in prefixes]


def load_into(model: nn.Module, state: dict, folder: Path, meta: dict) -> None:
    """`model.load_state_dict(state, strict=True)`, a mismatch named as the folder's two files disagreeing."""
    wsol = meta.get("wsol") or {"method": DEFAULT_METHOD}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = " ".join(str(e).split())[:300]
        raise CamlocError(
            f"{folder / MODEL_FILE} does not match backbone {meta['arch']} with {meta['num_classes']} classes "
            f"(WSOL method {wsol.get('method')}) "
            f"described in {folder / META_FILE} ({first}); the two files come from different runs, retrain"
        ) from None
