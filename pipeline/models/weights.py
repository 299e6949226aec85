"""The one safe reader of weights files (torch), and the torch hub cache of pretrained weights.

Every weights file camloc reads (a model folder's `model.pt`, a local `weights:` file, a reference
checkpoint, a cached torchvision file, a resume checkpoint) goes through `read_weights`:
`torch.load(..., weights_only=True)`, so loading never unpickles code, and a refused, corrupt or missing
file is one CamlocError sentence naming the file and the fix. Nothing is downloaded silently: a missing
hub file is fetched with a short network timeout, and when that fails the error names the file and the
folder to put it in.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from pipeline.errors import CamlocError

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 15.0


def read_weights(path: str | Path, missing: str, fix: str, device: str | torch.device = "cpu") -> Any:
    """`torch.load(path, weights_only=True)`; `missing` ends the message of an absent file, `fix` that of a
    corrupt one (e.g. "retrain the model")."""
    path = Path(path)
    if not path.is_file():
        raise CamlocError(f"{path} is missing; {missing}")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        detail = unpickler_detail(str(e))
        if "global" not in detail.lower():  # junk bytes, not a pickled object
            raise CamlocError(f"{path} is corrupt ({detail}); {fix}") from None
        raise CamlocError(
            f"{path} was refused: it holds pickled Python objects, not only tensors and plain values ({detail}); "
            f"weights are read with weights_only=True, never load checkpoints from untrusted sources. If you trust "
            f"the file, re-save its tensors: python -c \"import torch; c = torch.load('{path}', weights_only=False); "
            f"torch.save({{'architecture': c['architecture'], 'state_dict': c['state_dict']}}, 'clean.pth')\" "
            f"(a reference checkpoint; else save c.state_dict()) and use clean.pth") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CamlocError(f"{path} is corrupt or truncated ({str(e).splitlines()[0]}); {fix}") from None


def unpickler_detail(message: str) -> str:
    """The one informative line of torch's long weights_only error (its wording varies by version)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for ln in lines:
        if "GLOBAL" in ln or "Unsupported" in ln:
            return ln.removeprefix("WeightsUnpickler error:").strip()
    return lines[-1][:200] if lines else "unreadable"


def looks_like_path(weights: str) -> bool:
    """Whether a `weights:` value names a local file rather than a torchvision weights name."""
    return os.sep in weights or weights.endswith((".pt", ".pth", ".bin")) or Path(weights).is_file()


def weights_cache_path(url: str) -> Path:
    """Where torch.hub keeps (and looks for) the file of `url`: $TORCH_HOME/hub/checkpoints/<file>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def ensure_cached(url: str) -> Path:
    """The cached weights file of `url`, downloading it (short timeout) only when absent.

    Raises one CamlocError sentence naming the file and the folder to put it in when it cannot be had.
    """
    path = weights_cache_path(url)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", url, path)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        torch.hub.download_url_to_file(url, str(path), progress=False)
    except (OSError, ValueError, RuntimeError) as e:  # URLError and socket timeouts are OSErrors
        raise CamlocError(
            f"pretrained weights {path.name} are not cached and could not be downloaded ({e}); "
            f"download {url} on a machine with internet and put it at {path} "
            f"(set TORCH_HOME to use another cache folder), or set pretrained: false"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return path
