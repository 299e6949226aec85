"""`fsl`, the few-shot fully supervised baseline of Choe et al., "Evaluating Weakly Supervised Object
Localization Methods Right" (CVPR 2020): instead of only choosing τ on the few boxed val images, learn
from them. The same backbone (trunk + the 1×1 linear layer of a GapNet with one output) is trained as a
foreground-map predictor: its logit map `s(x, y) = w·f(x, y) + b`, upsampled bilinearly to the input
size, is fitted pixel by pixel (binary cross-entropy) to the val images' boxes of the scored kind
(`folds.target_kind`: the box kind the dataset's test split scores, from layout.json; Pets' head box). No image label, no train image and no test image or box is used.

Honest selection (the paper's protocol forbids choosing anything on the images a model learnt from):
- the val images are dealt into `fsl_folds` folds (stratified by class); fold model f is trained on
  the other folds, and its maps of fold f are "out of fold";
- the training length is chosen by cross-validation: among `folds.cv_epochs(epochs)` the one with the
  best out-of-fold MaxBoxAccV2 (pooled over the folds, δ 0.3/0.5/0.7, τ grid 0.01);
- the final model is trained on every val image for that many epochs (same schedule);
- cams@B dumps val maps from the fold models (out of fold, `pipeline.wsol.oof`) and every other split
  from the final model, so evaluate@B's τ chosen on val is chosen on maps of images the model that
  drew them never saw, as for every other backbone; test is touched by nothing before scoring.

The checkpoint is an ordinary GapNet with `num_classes` outputs whose rows all hold the foreground
row, so every map method applies unchanged: `cam` of any class is `s − b`, the foreground score map
(min–max normalisation removes `b`); Grad-CAM, XGrad-CAM and HiResCAM equal it up to a factor (GAP +
linear); Grad-CAM++, LayerCAM and Eigen-CAM are their usual functions of the same features. The model
does not classify: its logits tie, so the predicted class is always class 0 (cls top-1 and Top-1/5 Loc
are chance by construction; compare it on GT-known metrics, MaxBoxAccV2 and PxAP, as the paper does).
The fold models are stored in the same `model.pt` under `folds.<f>.` (`models.checkpoint`).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline import metrics as M
from pipeline.atomic import clean_own_tmp
from pipeline.contracts import HOLDOUT, Paths, read_boxes, read_classes, read_layout, read_samples
from pipeline.datasets import loader
from pipeline.errors import CamlocError
from pipeline.models.backbones import build_backbone
from pipeline.models.checkpoint import FOLDS_PREFIX, write_model_folder
from pipeline.params import Params, arch_of, to_dict
from pipeline.training import live
from pipeline.training.loop import make_optimizer, make_scheduler, setup_determinism
from pipeline.wsol.folds import assign_folds, box_target, cv_epochs, target_kind
from pipeline.wsol.method import WsolMethod

log = logging.getLogger(__name__)

CV_INTERVAL = 0.01  # τ grid of the cross-validation criterion (evaluate.interval's default)


class FoldCheckpoint(nn.Module):
    """What model.pt holds for fsl: the final model (`features`, `classifier`) and the fold models."""

    def __init__(self, main: nn.Module, folds: list[nn.Module]):
        super().__init__()
        self.features, self.classifier = main.features, main.classifier
        setattr(self, FOLDS_PREFIX.rstrip("."), nn.ModuleList(folds))


def foreground_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, h, w) foreground logit map `w·f(x, y) + b` of a one-output GapNet."""
    feats = model.features(x)  # (N, C, h, w)
    return torch.einsum("c,nchw->nhw", model.classifier.weight[0], feats) + model.classifier.bias[0]


class FslDataset(torch.utils.data.Dataset):
    """Item `(epoch, i)` → (uint8 (3, s, s) image, float (s, s) target), image and target cropped and
    flipped together; the augmentation depends only on (seed, epoch, i), as `loader.TrainDataset`."""

    def __init__(self, images: np.ndarray, targets: np.ndarray, image_size: int, augment, seed: int):
        self.images, self.targets = images, targets  # (N, S, S, 3) uint8, (N, S, S) float32
        self.image_size, self.augment, self.seed = image_size, augment, seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = key
        rng = np.random.default_rng([self.seed, epoch, i])
        y, x, h, w = loader.crop_box(rng, self.images[i].shape[0], self.augment.scale_min)
        image = loader.resize_uint8(self.images[i][y : y + h, x : x + w], self.image_size)  # (s, s, 3)
        target = cv2_resize(self.targets[i][y : y + h, x : x + w], self.image_size)  # (s, s)
        if self.augment.hflip and rng.random() < 0.5:
            image, target = image[:, ::-1], target[:, ::-1]
        return (torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1),
                torch.from_numpy(np.ascontiguousarray(target)))


def cv2_resize(target: np.ndarray, size: int) -> np.ndarray:
    """A float target crop to (size, size), bilinear: box edges that fall between pixels stay soft."""
    if target.shape == (size, size):
        return np.array(target)
    return cv2.resize(np.ascontiguousarray(target), (size, size), interpolation=cv2.INTER_LINEAR)


# --------------------------------------------------------------------------------------------------
# One training run


def fit(model, images, targets, bp, seed: int, device, epochs: int, on_epoch: Callable | None = None) -> None:
    """Train the one-output `model` on (images, targets) for `epochs` epochs of a schedule that spans
    `bp.epochs` (so a run stopped early is the same run as the long one up to there)."""
    cuda = device.type == "cuda"
    dataset = FslDataset(images, targets, bp.image_size, bp.augment, seed)
    batches, sampler = loader.make_train_loader(dataset, bp.batch_size, bp.workers, cuda)
    optimizer = make_optimizer(model, bp)
    scheduler = make_scheduler(optimizer, bp, len(batches))
    for epoch in range(epochs):
        model.train()
        sampler.set_epoch(epoch)
        torch.manual_seed(seed * 100_003 + epoch)
        lr = optimizer.param_groups[0]["lr"]
        loss_sum, correct, pixels = 0.0, 0, 0
        for x, t in batches:
            x = loader.normalize(x.to(device, non_blocking=True), loader.IMAGENET_MEAN, loader.IMAGENET_STD,
                                 channels_last=cuda)
            t = t.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                logits = upsample(foreground_logits(model, x), t.shape[-1])
            loss = F.binary_cross_entropy_with_logits(logits.float(), t)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach()) * t.numel()
            correct += int(((logits > 0) == (t >= 0.5)).sum())
            pixels += t.numel()
        if on_epoch is not None:
            on_epoch(epoch + 1, lr, loss_sum / pixels, 100.0 * correct / pixels)


def upsample(logits: torch.Tensor, size: int) -> torch.Tensor:
    """(N, h, w) → (N, size, size), bilinear."""
    return F.interpolate(logits[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0]


@torch.no_grad()
def predict(model, images: np.ndarray, image_size: int, device, batch_size: int = 64) -> np.ndarray:
    """(N, h, w) float32 raw foreground logit maps (evaluation input: straight resize, no crop)."""
    model.eval()
    out = [foreground_logits(model, x).float().cpu().numpy()
           for x in loader.iter_eval_batches(images, image_size, batch_size, device=device)]
    return np.concatenate(out)


def pixel_scores(maps: np.ndarray, targets: np.ndarray) -> tuple[float, int, int]:
    """(BCE sum, correct pixels, pixels) of raw (N, h, w) logit maps against (N, s, s) targets."""
    logits = upsample(torch.from_numpy(maps), targets.shape[-1])
    t = torch.from_numpy(targets)
    bce = float(F.binary_cross_entropy_with_logits(logits, t, reduction="sum"))
    return bce, int(((logits > 0) == (t >= 0.5)).sum()), t.numel()


def maxboxacc_v2(maps: np.ndarray, boxes: list[np.ndarray], size: int) -> float:
    """MaxBoxAccV2 (%) of raw maps against boxes already in the size×size frame (all-contours mode)."""
    grid = M.taus(CV_INTERVAL)
    ious = np.stack([M.best_ious(M.normalize_map(m, (size, size)), b, grid)[1] for m, b in zip(maps, boxes, strict=True)])
    return M.max_box_acc_v2(ious, M.DELTAS)["v2"]


# --------------------------------------------------------------------------------------------------
# The stage body (called by train@B for a box-supervised method)


def train_fsl(params: Params, paths: Paths, backbone_key: str, resume_from: str | Path | None = None,
              on_epoch_end: Callable[[int, dict], None] | None = None) -> str:
    """Train the fsl baseline of backbone entry `backbone_key` into `paths.model_dir(B)`; returns a summary.

    Reads only the val split's images and boxes. `resume_from` is accepted for the train stage's
    signature and unused (fsl runs are short); `on_epoch_end(epoch, history_row)` follows the final model.
    """
    bp = params.backbone(backbone_key)
    arch, folds_n = arch_of(backbone_key, bp), int(bp.wsol["fsl_folds"])
    out_dir, prepared_dir, s = paths.model_dir(backbone_key), paths.prepared, bp.image_size
    if bp.resume:
        log.info("%s: fsl trains on the val images only; resume checkpoints are not written", backbone_key)
    clean_own_tmp(out_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    threads = setup_determinism(params.seed, device)
    started = time.perf_counter()

    rows, images = loader.load_split(prepared_dir, HOLDOUT)
    class_names = read_classes(prepared_dir)
    kind = target_kind(read_layout(prepared_dir), str(Path(prepared_dir) / "layout.json"))
    boxes, wh = val_boxes(prepared_dir, rows["image_id"].astype(str).tolist(), kind)
    cache = images.shape[1]
    train_targets = np.stack([box_target(b, w_h, cache) for b, w_h in zip(boxes, wh, strict=True)])
    eval_targets = np.stack([box_target(b, w_h, s) for b, w_h in zip(boxes, wh, strict=True)])
    eval_boxes = [M.rescale_boxes(b, w_h, (s, s)) for b, w_h in zip(boxes, wh, strict=True)]
    fold_of = assign_folds(rows["label"].to_numpy(), folds_n, params.seed, f"backbones.{backbone_key}.wsol.fsl_folds")
    candidates = cv_epochs(bp.epochs)
    options = {"output_stride": bp.output_stride}

    def fresh() -> nn.Module:
        torch.manual_seed(params.seed)  # every run starts from the same weights
        return build_backbone(arch, 1, pretrained=bp.pretrained, weights=bp.weights,
                              weights_strict=bp.weights_strict, **options).to(device)

    oof, oof_maps, snapshots = cross_validate(fresh, images, train_targets, eval_targets, fold_of, candidates,
                                              bp, params.seed, device, backbone_key)
    cv = {e: maxboxacc_v2(oof_maps[e], eval_boxes, s) for e in candidates}
    chosen = max(candidates, key=lambda e: (cv[e], -e))  # the shortest of the best
    log.info("fsl %s: out-of-fold MaxBoxAccV2 by epochs %s → %d epochs", backbone_key,
             {e: round(v, 2) for e, v in cv.items()}, chosen)

    # the final model on every val image, for the chosen length
    history: list[dict] = []
    final = fresh()

    def record(epoch, lr, loss, acc):
        bce, correct, px = (sum(v) for v in zip(*oof[epoch], strict=True))
        row = {"epoch": epoch, "lr": lr, "train_loss": loss, "train_acc": acc,
               "val_loss": bce / px, "val_acc": 100.0 * correct / px}
        history.append(row)
        if on_epoch_end:
            on_epoch_end(epoch, row)

    fit(final, images, train_targets, bp, params.seed, device, chosen, record)

    fold_models = []
    for state in snapshots[chosen]:
        m = fresh()
        m.load_state_dict(state)
        fold_models.append(tied(m, len(class_names)))
    meta = _meta(backbone_key, arch, bp, params, class_names, options, len(rows), threads, device)
    meta["fsl"] = {"target_kind": kind, "folds": folds_n, "epochs": chosen,
                   "fold_of": {str(i): int(f) for i, f in zip(rows["image_id"], fold_of, strict=True)},
                   "cv_criterion": f"out-of-fold MaxBoxAccV2 ({kind}, delta 0.3/0.5/0.7, tau grid {CV_INTERVAL})",
                   "cv": {str(e): round(v, 4) for e, v in cv.items()}}
    metrics = {f"cv_maxboxacc_v2_{kind}": round(cv[chosen], 4)}
    # history's val columns are out of fold: pooled over the fold models' held-out images at that epoch
    write_model_folder(out_dir, FoldCheckpoint(tied(final, len(class_names)), fold_models), meta, history, metrics,
                       fill=lambda tmp: live.finish(live.start(tmp, True, history)))  # the same curves as dvclive files
    return (f"{backbone_key}: fsl on {len(rows)} val images ({folds_n} folds): {chosen} of {bp.epochs} epochs "
            f"chosen by out-of-fold MaxBoxAccV2 {kind} {cv[chosen]:.1f}% "
            f"({time.perf_counter() - started:.0f} s on {device.type}) → {out_dir}")


def cross_validate(fresh, images, train_targets, eval_targets, fold_of, candidates, bp, seed, device, name):
    """The k fold runs. Returns per epoch the held-out pixel scores of every val image (BCE, correct,
    pixels), at each candidate length the out-of-fold raw maps (N, h, w), and the fold models' weights."""
    n, s = len(images), bp.image_size
    oof: dict[int, list] = {e: [None] * n for e in range(1, bp.epochs + 1)}
    oof_maps: dict[int, np.ndarray] = {}
    snapshots: dict[int, list[dict]] = {e: [] for e in candidates}
    for f in range(int(fold_of.max()) + 1):
        model, held = fresh(), np.flatnonzero(fold_of == f)

        def after_epoch(epoch, lr, loss, acc, model=model, held=held):
            maps = predict(model, images[held], s, device)  # (n_held, h, w)
            for j, i in enumerate(held):
                oof[epoch][i] = pixel_scores(maps[j : j + 1], eval_targets[i : i + 1])
            if epoch in snapshots:
                snapshots[epoch].append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
                oof_maps.setdefault(epoch, np.zeros((n, *maps.shape[1:]), dtype=np.float32))[held] = maps

        fit(model, images[fold_of != f], train_targets[fold_of != f], bp, seed, device, bp.epochs, after_epoch)
        log.info("fsl %s: fold %d/%d trained on %d val images", name, f + 1, int(fold_of.max()) + 1,
                 int((fold_of != f).sum()))
    return oof, oof_maps, snapshots


def val_boxes(prepared_dir: Path, image_ids: list[str], kind: str) -> tuple[list[np.ndarray], list[tuple]]:
    """Per val image its (G, 4) boxes of `kind` and its (W, H); every val image must have one."""
    table = read_boxes(prepared_dir)
    table = table[(table["kind"] == kind) & table["image_id"].isin(image_ids)]  # val rows only
    by_id = {str(i): g[["x0", "y0", "x1", "y1"]].to_numpy(np.int64) for i, g in table.groupby("image_id")}
    missing = [i for i in image_ids if i not in by_id]
    if missing:
        raise CamlocError(f"{Path(prepared_dir) / 'boxes.parquet'}: val images {missing[:3]} have no {kind} box, "
                          f"but fsl learns from the val boxes; re-run `dvc repro prepare`")
    samples = read_samples(prepared_dir, ("image_id", "width", "height")).set_index("image_id")
    sizes = samples.loc[image_ids, ["width", "height"]].to_numpy(np.int64)
    return [by_id[i] for i in image_ids], [tuple(int(v) for v in r) for r in sizes]


def tied(model: nn.Module, num_classes: int) -> nn.Module:
    """A copy of one-output `model` with `num_classes` classifier rows, each the foreground row."""
    out = copy.deepcopy(model).cpu()
    w, b = out.classifier.weight.detach(), out.classifier.bias.detach()  # (1, C), (1,)
    head = nn.Linear(w.shape[1], num_classes)
    with torch.no_grad():
        head.weight.copy_(w.expand(num_classes, -1))
        head.bias.copy_(b.expand(num_classes))
    out.classifier = head
    return out


def _meta(key, arch, bp, params, class_names, options, n_val, threads, device) -> dict:
    import platform

    import torchvision

    return {
        "backbone": key, "arch": arch, "num_classes": len(class_names), "class_names": class_names,
        "image_size": bp.image_size, "mean": list(loader.IMAGENET_MEAN), "std": list(loader.IMAGENET_STD),
        "options": {k: v for k, v in options.items() if v is not None}, "params": to_dict(bp),
        "wsol": bp.wsol.as_flat(), "seed": params.seed, "train_images": 0, "val_images": n_val,
        "device": device.type, "threads": threads,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "numpy": np.__version__},
    }


class FewShot(WsolMethod):
    """fsl: the model is the plain GapNet (rebuilt as is); training is its own loop, `train_fsl`."""

    def loss(self, model, images, labels, hp):
        raise CamlocError("WSOL method fsl does not train from image labels (its card's trainer is train_fsl)")


METHOD = FewShot()
