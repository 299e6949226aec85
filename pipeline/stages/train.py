"""The `train@<backbone>` stage: a GAP classifier from image labels only.

Trains on split `train`, measures classification on `val` after every epoch, and writes
`data/models/<B>/{model.pt, meta.json, history.csv, metrics.json}` as one folder renamed into place
(docs/contracts.md). CUDA when present (bf16 autocast, channels_last), else CPU with deterministic
algorithms and a fixed thread count, so two CPU runs give identical weights and metrics.

With `epochs: 0` (and `weights: <file>`) nothing is trained: the file is read in its layout
(models.layouts) and written as the model folder as it is, with the checkpoint's val scores (`_score`).

With `resume: true` a checkpoint is written after each epoch to `data/.resume/<B>/` (outside the DVC
output, which DVC deletes before a stage runs); a killed run restarted with the same params continues
from the last finished epoch and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import shutil
import time
from collections.abc import Callable
from functools import partial
from importlib.metadata import version as _version
from pathlib import Path

import numpy as np
import torch

from pipeline import distributed
from pipeline.atomic import atomic_path, clean_own_tmp
from pipeline.catalog.backbones import BACKBONES
from pipeline.catalog.registry import load_object
from pipeline.catalog.wsol import WSOL_METHODS
from pipeline.contracts import HOLDOUT, Paths, read_classes, resume_dir
from pipeline.datasets import loader
from pipeline.errors import CamlocError
from pipeline.models.checkpoint import write_model_folder
from pipeline.models.layouts import Target, read_checkpoint
from pipeline.models.weights import read_weights
from pipeline.params import BackboneParams, Params, arch_of, to_dict
from pipeline.progress import no_bar
from pipeline.stages import bar
from pipeline.training import ddp, live
from pipeline.training.loop import evaluate, make_optimizer, make_scheduler, setup_determinism, train_epoch
from pipeline.wsol.build import build_model, training_loss

log = logging.getLogger(__name__)

RESUME_FILE = "last.pt"

def run(
    params: Params,
    paths: Paths,
    backbone_key: str,
    resume_from: str | Path | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> str:
    """Train backbone entry `backbone_key` of params.yaml into `paths.model_dir(B)`; returns a summary.

    `resume_from` defaults to `contracts.resume_dir` (data/.resume/<B> for data/models/<B>).
    `on_epoch_end(epoch, history_row)` is called after each epoch (and after its resume checkpoint).

    Under torchrun each process trains its share of every global batch (`training.ddp`) and only rank 0
    writes; a plain process is the one-process case of the same code.
    """
    bp = params.backbone(backbone_key)
    if bp.epochs == 0:  # a released checkpoint, scored as it is (params validation: weights file, one process)
        return _score(params, paths, backbone_key)
    world = distributed.world_from_env()
    method = WSOL_METHODS.get(bp.wsol.method)
    if world.distributed and method.one_process:
        raise CamlocError(f"params.yaml backbones.{backbone_key}.wsol.method = {method.name} trains in one process "
                          f"only ({method.one_process}); "
                          f"set backbones.{backbone_key}.nproc: 1 and run it without torchrun")
    if method.trainer:  # a method with its own loop (fsl: learns from val boxes, not labels)
        own = load_object(method.trainer)
        return own(params, paths, backbone_key, resume_from=resume_from, on_epoch_end=on_epoch_end)
    if bp.batch_size % world.size:
        raise CamlocError(f"params.yaml backbones.{backbone_key}.batch_size = {bp.batch_size} is the global batch "
                          f"and must split evenly over the {world.size} processes; make it a multiple of {world.size}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    world = distributed.init(device.type)
    try:
        return _train(params, paths, backbone_key, world, device, resume_from, on_epoch_end)
    finally:
        distributed.finish(world)


def _train(params, paths, backbone_key, world, device, resume_from, on_epoch_end) -> str:
    bp = params.backbone(backbone_key)
    arch = arch_of(backbone_key, bp)
    out_dir, prepared_dir = paths.model_dir(backbone_key), paths.prepared
    resume_folder = Path(resume_from) if resume_from else resume_dir(out_dir)
    if world.is_root:
        clean_own_tmp(out_dir)
    if device.type == "cuda" and world.distributed:
        device = torch.device("cuda", world.local_rank)
    threads = setup_determinism(params.seed, device)

    train_rows, train_images = loader.load_split(prepared_dir, "train")
    val_rows, val_images = loader.load_split(prepared_dir, HOLDOUT)
    class_names = read_classes(prepared_dir)
    _check_labels(train_rows, val_rows, class_names, prepared_dir)

    torch.manual_seed(params.seed)
    options = {"output_stride": bp.output_stride, "large_feature_map": bp.large_feature_map}
    wsol = bp.wsol.as_flat()
    model = build_model(arch, len(class_names), wsol, pretrained=bp.pretrained, weights=bp.weights,
                        weights_strict=bp.weights_strict, **options)
    model = model.to(device, memory_format=torch.channels_last if device.type == "cuda" else torch.preserve_format)
    dataset = loader.TrainDataset(train_images, train_rows["label"].to_numpy(), bp.image_size, bp.augment,
                                  params.seed, transform=bp.train_transform, resize=bp.train_resize)
    batches, sampler = ddp.make_loader(dataset, bp.batch_size, bp.workers, world, device.type == "cuda")
    optimizer = make_optimizer(model, bp)
    scheduler = make_scheduler(optimizer, bp, len(batches))
    val_labels = torch.tensor(val_rows["label"].to_numpy(), dtype=torch.long)

    fingerprint = _fingerprint(params, backbone_key, arch, prepared_dir)
    history, start = _maybe_resume(bp, resume_folder, fingerprint, model, optimizer, scheduler)
    net = ddp.wrap(model, world, device, bp.sync_bn)  # the module to train; `model` shares its parameters
    progress_bar = bar if world.is_root else no_bar
    logger = live.start(out_dir, world.is_root, history)  # dvclive, rank 0 only (training/live.py)
    started = time.perf_counter()
    for epoch in range(start, bp.epochs):
        sampler.set_epoch(epoch)
        torch.manual_seed(params.seed * 100_003 + epoch)  # stochastic depth etc.: the same on resume
        lr = optimizer.param_groups[0]["lr"]
        loss, acc, ips = train_epoch(net, batches, optimizer, scheduler, device,
                                     f"{backbone_key} {epoch + 1}/{bp.epochs}", progress_bar, world,
                                     loss_fn=partial(training_loss, wsol=wsol))
        ddp.broadcast_buffers(model, world)
        val_loss, val_acc = evaluate(model, val_images, val_labels, bp.image_size, bp.batch_size, device, world)
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": loss, "train_acc": acc,
               "val_loss": val_loss, "val_acc": val_acc, "images_per_s": ips}
        history.append(row)
        live.log_epoch(logger, row)
        log.info("%s epoch %d: loss %.4f acc %.2f%%, val loss %.4f acc %.2f%%, %.0f img/s",
                 backbone_key, epoch + 1, loss, acc, val_loss, val_acc, ips)
        if bp.resume and world.is_root:
            _save_resume(resume_folder, fingerprint, epoch + 1, model, optimizer, scheduler, history)
        distributed.barrier(world)  # no rank starts the next epoch before the checkpoint exists
        if on_epoch_end:
            on_epoch_end(epoch + 1, row)

    meta = _meta(backbone_key, arch, bp, params, class_names, options, len(train_rows), len(val_rows), threads, device)
    meta["processes"] = world.size
    live.finish(logger)
    if world.is_root:
        write_model_folder(out_dir, model, meta, history, fill=partial(live.move_into, out_dir))
        if bp.resume and resume_folder.exists():
            shutil.rmtree(resume_folder)
    final = history[-1]
    ips = np.mean([row["images_per_s"] for row in history[start:]]) if bp.epochs > start else float("nan")
    return (f"{backbone_key}: val accuracy {final['val_acc']:.2f}% after {bp.epochs} epochs "
            f"({time.perf_counter() - started:.0f} s on {world.size} × {device.type}, {ips:.0f} images/s) → {out_dir}")


def _score(params: Params, paths: Paths, backbone_key: str) -> str:
    """`epochs: 0`: the model folder of checkpoint `weights:` as it is, without a single optimisation step.

    The file is read strictly in its layout (models.layouts: detected, or `weights_layout:`) into the model
    the entry describes; meta.json records the file, its sha256, its layout and the key map; metrics.json
    and dvclive's summary hold the val classification of the checkpoint (there is no training loss)."""
    bp = params.backbone(backbone_key)
    arch = arch_of(backbone_key, bp)
    out_dir, prepared_dir = paths.model_dir(backbone_key), paths.prepared
    clean_own_tmp(out_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    threads = setup_determinism(params.seed, device)
    train_rows = loader.load_split(prepared_dir, "train")[0]  # counted in meta.json only: nothing is trained
    val_rows, val_images = loader.load_split(prepared_dir, HOLDOUT)
    class_names = read_classes(prepared_dir)
    _check_labels(train_rows, val_rows, class_names, prepared_dir)
    options = {"output_stride": bp.output_stride, "large_feature_map": bp.large_feature_map}
    model = build_model(arch, len(class_names), bp.wsol.as_flat(), pretrained=False, **options)
    target = Target(BACKBONES.get(arch), model.state_dict(), options, str(bp.weights), backbone_key)
    ckpt = read_checkpoint(bp.weights, target, bp.weights_layout)
    model.load_state_dict(ckpt.state, strict=True)
    model.to(device)
    val_labels = torch.tensor(val_rows["label"].to_numpy(), dtype=torch.long)
    val_loss, val_acc = evaluate(model, val_images, val_labels, bp.image_size, bp.batch_size, device)
    meta = _meta(backbone_key, arch, bp, params, class_names, options, len(train_rows), len(val_rows), threads, device)
    meta["processes"] = 1
    meta["checkpoint"] = {"file": str(bp.weights), "sha256": ckpt.sha256, "layout": ckpt.layout,
                          "keys_mapped": len(ckpt.key_map), "key_map": ckpt.key_map}
    scores = {"val_acc": round(val_acc, 4), "val_loss": round(val_loss, 4)}
    write_model_folder(out_dir, model, meta, [], scores, fill=partial(live.write_summary, values=scores))
    return (f"{backbone_key}: scored checkpoint {bp.weights} as it is, no optimisation step ({ckpt.layout} "
            f"layout, {len(ckpt.key_map)} tensors, sha256 {ckpt.sha256[:12]}): val accuracy {val_acc:.2f}% "
            f"→ {out_dir}")


def _check_labels(train_rows, val_rows, class_names: list[str], prepared_dir: Path) -> None:
    for name, rows in (("train", train_rows), ("val", val_rows)):
        labels = rows["label"].to_numpy()
        if labels.min() < 0 or labels.max() >= len(class_names):
            raise CamlocError(
                f"{prepared_dir / 'samples.parquet'}: {name} labels span {labels.min()}..{labels.max()} but "
                f"classes.json has {len(class_names)} classes; run `python -m pipeline prepare` again"
            )


# --------------------------------------------------------------------------------------------------
# Resume checkpoints (outside the DVC output)


def _fingerprint(params: Params, key: str, arch: str, prepared_dir: Path) -> str:
    """What a resume checkpoint must match: the resolved recipe, seed and the training manifest."""
    h = hashlib.sha256()
    h.update(json.dumps([key, arch, params.seed, to_dict(params.backbone(key))], sort_keys=True).encode())
    h.update((prepared_dir / "samples.parquet").read_bytes())
    return h.hexdigest()


def _save_resume(folder: Path, fingerprint: str, epoch: int, model, optimizer, scheduler, history) -> None:
    state = {
        "fingerprint": fingerprint,
        "epoch": epoch,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": history,
    }
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / RESUME_FILE, suffix=".pt") as tmp:
        torch.save(state, tmp)


def _maybe_resume(bp: BackboneParams, folder: Path, fingerprint: str, model, optimizer, scheduler):
    """(history, first epoch to run): from `folder` when resuming is on and its checkpoint fits."""
    path = folder / RESUME_FILE
    if not bp.resume or not path.is_file():
        return [], 0
    try:
        state = read_weights(path, "", "it is ignored")
    except CamlocError as e:  # a checkpoint killed mid-write cannot exist (atomic), but disks fail
        log.warning("ignoring unreadable resume checkpoint (%s); training from epoch 1", e)
        return [], 0
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        log.warning("ignoring resume checkpoint %s: it was written for other params or data", path)
        return [], 0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    log.info("resuming from %s after epoch %d", path, state["epoch"])
    return list(state["history"]), int(state["epoch"])


# --------------------------------------------------------------------------------------------------
# Outputs


def _meta(key, arch, bp, params, class_names, options, n_train, n_val, threads, device) -> dict:
    return {
        "backbone": key,
        "arch": arch,
        "num_classes": len(class_names),
        "class_names": class_names,
        "image_size": bp.image_size,
        "mean": list(loader.IMAGENET_MEAN),
        "std": list(loader.IMAGENET_STD),
        "options": {k: v for k, v in options.items() if v is not None},
        "wsol": bp.wsol.as_flat(),  # the training method: cams@B rebuilds its heads (pipeline/wsol/build.py)
        "params": to_dict(bp),
        "seed": params.seed,
        "train_images": n_train,
        "val_images": n_val,
        "device": device.type,
        "threads": threads,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torchvision": _version("torchvision"), "numpy": np.__version__},
    }
