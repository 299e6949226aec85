"""Rebuilding a trained model from its folder (torch), in one place: cams@B, faithfulness@B (through
`cams.dump.load_checkpoint`) and fsl's out-of-fold maps (`wsol.oof`) all read a model this way.

The folder's meta.json names the backbone, the class count, the backbone options and the WSOL training
method (whose heads are rebuilt by `wsol.build.build_model`); model.pt is read by the one safe loader.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.catalog.wsol import DEFAULT_METHOD
from pipeline.models.checkpoint import (
    MODEL_FILE,
    fold_count,
    fold_states,
    load_into,
    load_state,
    main_state,
    read_meta,
)
from pipeline.models.gap import GapNet
from pipeline.wsol.build import build_model


def _fresh(meta: dict) -> GapNet:
    wsol = meta.get("wsol") or {"method": DEFAULT_METHOD}  # the training method's heads; absent (older models): cam
    return build_model(meta["arch"], int(meta["num_classes"]), wsol, pretrained=False, **meta.get("options", {}))


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> tuple[GapNet, dict]:
    """Rebuild the trained model of a `data/models/<B>/` folder, in eval mode on `device`."""
    folder = Path(folder)
    meta = read_meta(folder)
    model = _fresh(meta)
    load_into(model, main_state(load_state(folder / MODEL_FILE), meta), folder, meta)
    return model.to(device).eval(), meta


def load_fold_models(folder: str | Path, device: str | torch.device = "cpu") -> list[GapNet]:
    """The out-of-fold models of a few-shot (fsl) model folder, fold f at index f, in eval mode."""
    folder = Path(folder)
    meta = read_meta(folder)
    folds = fold_count(meta, folder)
    out = []
    for state in fold_states(load_state(folder / MODEL_FILE), folds):
        model = _fresh(meta)
        load_into(model, state, folder, meta)
        out.append(model.to(device).eval())
    return out
