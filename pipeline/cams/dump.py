"""Batched map dumping (torch), the core of cams@B and `camloc cams --images`: one forward pass per batch
feeds every method, for the ground-truth class and for the top-1 predicted class (the latter computed
only for misclassified rows; the rest are copies), plus the top-5 predictions.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from pipeline.cams.compute import maps_for_batch
from pipeline.cams.hooks import eval_mode
from pipeline.cams.layers import at_layer
from pipeline.cams.methods import Batch, forward_batch
from pipeline.camsparams import LAST_LAYER, MapJob
from pipeline.catalog.methods import METHODS
from pipeline.datasets import loader
from pipeline.errors import CamlocError
from pipeline.progress import Bar, no_bar


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def method_opts(method: str, scorecam_chunk: int) -> dict:
    """Per-method keyword options taken from params."""
    return {"chunk": scorecam_chunk} if method == "scorecam" else {}


def as_jobs(methods) -> list[MapJob]:
    """Method names (each at the last layer) or MapJobs (`CamsParams.jobs`), as MapJobs."""
    return [m if isinstance(m, MapJob) else MapJob(m, m) for m in methods]


def load_checkpoint(model_dir: str | Path, device: torch.device, backbone: str | None = None):
    """`load_model` plus the checks the cams stage needs; returns (model, meta)."""
    from pipeline.wsol.rebuild import load_model

    model_dir = Path(model_dir)
    if not (model_dir / "model.pt").is_file():
        hint = f"`python -m pipeline train {backbone}`" if backbone else "a folder written by `camloc train`"
        raise CamlocError(f"{model_dir / 'model.pt'} is missing; expected {hint}")
    model, meta = load_model(model_dir, device)
    if backbone is not None and meta.get("backbone", backbone) != backbone:
        raise CamlocError(
            f"{model_dir / 'meta.json'} is a checkpoint of backbone {meta.get('backbone')!r}, not {backbone!r}; "
            f"point --models at the folder holding {backbone}/ (default data/models) or retrain it"
        )
    for key in ("image_size", "num_classes"):
        if key not in meta:
            raise CamlocError(f"{model_dir / 'meta.json'} lacks {key!r}; retrain with `camloc train`")
    return model, meta


def predictions(logits: torch.Tensor, k: int = 5) -> dict[str, np.ndarray]:
    """Top-1 and top-k classes with softmax probabilities from (N, K) logits."""
    probs = torch.softmax(logits.float(), dim=1)
    p, c = probs.topk(min(k, probs.shape[1]), dim=1)  # (N, k)
    return {"pred": c[:, 0].cpu().numpy(), "top5": c.cpu().numpy(), "top5_prob": p.cpu().numpy()}


def _subset(batch: Batch, rows: torch.Tensor, with_images: bool) -> Batch:
    images = batch.images[rows] if with_images else batch.images[:0]  # (n, 3, H, W) only when used
    attention = None if batch.attention is None else batch.attention[:, rows]
    return Batch(batch.model, images, batch.features[rows], batch.logits[rows], batch.layer, attention)


def _job_maps(batch: Batch, classes: torch.Tensor, job: MapJob, chunk: int, layered: dict) -> torch.Tensor:
    """Raw maps of one job: at its layer (features computed once per layer and batch, in `layered`)."""
    opts = method_opts(job.method, chunk) | ({"layers": job.layers} if job.layers else {})
    if job.layer not in layered:
        layered[job.layer] = at_layer(batch, job.layer)
    return maps_for_batch(layered[job.layer], classes, job.method, **opts)


def batch_maps(batch: Batch, labels: torch.Tensor, pred: torch.Tensor, methods, chunk: int) -> dict:
    """{(name, kind): (N, h, w) float32 numpy} for the GT and the predicted class of one batch;
    `methods`: names or MapJobs (a method at an inner layer: stored as `<method>@<layer>`)."""
    jobs = as_jobs(methods)
    wrong = (pred != labels).nonzero().view(-1)
    images = any(METHODS.get(j.method).needs_images or j.layer != LAST_LAYER or j.layers for j in jobs)
    sub = _subset(batch, wrong, images) if len(wrong) else None
    out, at_full, at_sub = {}, {}, {}
    for j in jobs:
        gt = _job_maps(batch, labels, j, chunk, at_full)
        pr = gt.clone()
        if sub is not None:
            pr[wrong] = _job_maps(sub, pred[wrong], j, chunk, at_sub)
        out[(j.name, "gt")], out[(j.name, "pred")] = gt.cpu().numpy(), pr.cpu().numpy()
    return out


def dump_split(model, meta, images: np.ndarray, labels: np.ndarray, methods, params_cams, desc: str,
               bar: Bar = no_bar):
    """Run one split; returns ({(method, kind): (N, h, w) float32}, predictions dict, images/s)."""
    device = next(model.parameters()).device
    n, bs = len(images), params_cams.batch_size
    mean, std = loader.model_normalisation(meta)
    maps: dict = {}
    preds: dict[str, list] = {"pred": [], "top5": [], "top5_prob": []}
    start = time.perf_counter()
    with eval_mode(model), bar(total=n, desc=desc, unit="img") as progress:
        batches = loader.iter_eval_batches(images, meta["image_size"], bs, mean, std, device)
        for i, x in enumerate(batches):
            y = torch.as_tensor(labels[i * bs : i * bs + len(x)], dtype=torch.long, device=device)
            batch = forward_batch(model, x)
            pr = predictions(batch.logits)
            for k, v in pr.items():
                preds[k].append(v)
            got = batch_maps(batch, y, torch.as_tensor(pr["pred"], device=device), methods,
                             params_cams.scorecam_chunk)
            for key, arr in got.items():
                if key not in maps:
                    maps[key] = np.empty((n, *arr.shape[1:]), dtype=np.float32)
                maps[key][i * bs : i * bs + len(x)] = arr
            progress.update(len(x))
    rate = n / max(time.perf_counter() - start, 1e-9)
    return maps, {k: np.concatenate(v) for k, v in preds.items()}, rate


def probe_map_size(model, meta) -> tuple[int, int]:
    """(h, w) of the feature map at the model's image size, from one blank image."""
    s = int(meta["image_size"])
    device = next(model.parameters()).device
    with eval_mode(model), torch.no_grad():
        f = model.features(torch.zeros(1, 3, s, s, device=device))
    return int(f.shape[-2]), int(f.shape[-1])
