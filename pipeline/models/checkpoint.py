"""Trained-model folders, written by train@B and read by cams@B: `model.pt` (a state dict) + `meta.json`.

Loading never unpickles code: `torch.load(..., weights_only=True)`. A corrupt file, a pickle carrying
code, or weights that do not fit the backbone named in meta.json stop with a CamlocError naming the file.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
from pathlib import Path

import torch
from torch import nn

from pipeline.atomic import atomic_path, write_json
from pipeline.errors import CamlocError
from pipeline.models.backbones import GapNet
from pipeline.wsol.build import build_model

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


def load_state(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """A plain tensor state dict from `path`, refusing pickled code and reporting corruption."""
    path = Path(path)
    if not path.is_file():
        raise CamlocError(f"{path} is missing; train the model first (`python -m pipeline train <backbone>`)")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        detail = _unpickler_detail(str(e))
        if "global" in detail.lower():
            raise CamlocError(
                f"{path} was refused: it contains pickled Python objects, not only tensors ({detail}); "
                f"weights are loaded with weights_only=True, never load checkpoints from untrusted sources"
            ) from None
        raise CamlocError(f"{path} is corrupt ({detail}); retrain the model") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CamlocError(f"{path} is corrupt or truncated ({str(e).splitlines()[0]}); retrain the model") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CamlocError(f"{path} holds a {type(state).__name__}, not a state dict of tensors; retrain the model")
    return state


def _unpickler_detail(message: str) -> str:
    """The one informative line of torch's long weights_only error (its wording varies by version)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for ln in lines:
        if "GLOBAL" in ln or "Unsupported" in ln:
            return ln.removeprefix("WeightsUnpickler error:").strip()
    return lines[-1][:200] if lines else "unreadable"


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> tuple[GapNet, dict]:
    """Rebuild the trained model of a `data/models/<B>/` folder, in eval mode on `device`."""
    folder = Path(folder)
    meta = read_meta(folder)
    wsol = meta.get("wsol") or {"method": "cam"}  # the training method's heads; absent (older models): cam
    model = build_model(meta["arch"], int(meta["num_classes"]), wsol, pretrained=False, **meta.get("options", {}))
    state = load_state(folder / MODEL_FILE, device="cpu")
    if "fsl" in meta:
        state = {k: v for k, v in state.items() if not k.startswith(FOLDS_PREFIX)}
    _load_into(model, state, folder, meta)
    return model.to(device).eval(), meta


def load_fold_models(folder: str | Path, device: str | torch.device = "cpu") -> list[GapNet]:
    """The out-of-fold models of a few-shot (fsl) model folder, fold f at index f, in eval mode."""
    folder = Path(folder)
    meta = read_meta(folder)
    folds = int(meta.get("fsl", {}).get("folds", 0))
    if folds < 1:
        raise CamlocError(f"{folder / META_FILE} describes no fold models (no 'fsl' entry); retrain the fsl model")
    state = load_state(folder / MODEL_FILE, device="cpu")
    out = []
    for f in range(folds):
        prefix = f"{FOLDS_PREFIX}{f}."
        model = build_model(meta["arch"], int(meta["num_classes"]), meta.get("wsol"), pretrained=False,
                            **meta.get("options", {}))
        _load_into(model, {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, folder, meta)
        out.append(model.to(device).eval())
    return out


def _load_into(model: nn.Module, state: dict, folder: Path, meta: dict) -> None:
    wsol = meta.get("wsol") or {"method": "cam"}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = " ".join(str(e).split())[:300]
        raise CamlocError(
            f"{folder / MODEL_FILE} does not match backbone {meta['arch']} with {meta['num_classes']} classes "
            f"(WSOL method {wsol.get('method')}) "
            f"described in {folder / META_FILE} ({first}); the two files come from different runs, retrain"
        ) from None
