"""The training loop of train@B (torch): determinism, optimiser and schedule, one epoch, validation."""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from pipeline.datasets import loader
from pipeline.distributed import SINGLE, World, all_reduce_sum, shard
from pipeline.params import BackboneParams
from pipeline.progress import Bar, no_bar
from pipeline.training.ddp import IGNORE, global_mean_loss


def setup_determinism(seed: int, device: torch.device) -> int:
    """Seeds and deterministic kernels on CPU; returns the thread count the one thread policy set
    (`pipeline.threads`, applied by the CLI; two CPU runs with the same count give identical weights)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        # GPU runs favour speed: cuDNN autotuning picks kernels whose sums may differ in the last bits.
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return threads


def make_optimizer(model: nn.Module, bp: BackboneParams) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov if asked) or AdamW; the head gets lr × head_lr_mult (the reference's ratio).

    The head is everything outside the trunk (the linear classifier and any WSOL head or branch), or the
    parameters named by the model's `head_prefixes` (the reference's models: its `lr_classifier_ratio`
    also covers ResNet50's layer4, VGG16's conv6 and InceptionV3's SPG_A3 convs).
    """
    prefixes = getattr(model, "head_prefixes", None)
    if prefixes is None:
        in_trunk = {id(p) for p in model.features.parameters()}
        trunk = list(model.features.parameters())
        head = [p for p in model.parameters() if id(p) not in in_trunk]
    else:
        named = list(model.named_parameters())
        trunk = [p for n, p in named if not n.startswith(prefixes)]
        head = [p for n, p in named if n.startswith(prefixes)]
    groups = [{"params": trunk, "lr": bp.lr}, {"params": head, "lr": bp.lr * bp.head_lr_mult}]
    if bp.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=bp.lr, weight_decay=bp.weight_decay)
    return torch.optim.SGD(groups, lr=bp.lr, momentum=bp.momentum, weight_decay=bp.weight_decay,
                           nesterov=bp.nesterov)


def make_scheduler(optimizer: torch.optim.Optimizer, bp: BackboneParams, steps_per_epoch: int):
    """Per-step multiplier: cosine to 0 over all steps, ×0.1 every `step_epochs` (reference_step: one
    epoch earlier, as the reference's `adjust_learning_rate`), or constant."""
    total = max(1, bp.epochs * steps_per_epoch)
    if bp.schedule == "cosine":
        def factor(step: int) -> float:
            return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    elif bp.schedule == "step":
        def factor(step: int) -> float:
            return 0.1 ** (step // (bp.step_epochs * steps_per_epoch))
    elif bp.schedule == "reference_step":  # wsolevaluation decays before 1-based epochs k*step_epochs
        def factor(step: int) -> float:
            return 0.1 ** ((step // steps_per_epoch + 1) // bp.step_epochs)
    else:
        def factor(step: int) -> float:
            return 1.0
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_epoch(model, batches, optimizer, scheduler, device: torch.device, desc: str,
                bar: Bar = no_bar, world: World = SINGLE, loss_fn=None) -> tuple[float, float, float]:
    """One pass over `batches` (this rank's share of each global batch: `training.ddp.make_loader`);
    returns (mean loss, accuracy %, images/s including loading), over all ranks.

    `loss_fn(model, x, y) -> (loss, logits)` is the WSOL method's step (pipeline.wsol.build.training_loss),
    a mean over this rank's images; None is plain cross-entropy. Either is scaled to this rank's share of
    the global-batch mean, so DDP's gradient average is the one-process gradient.
    """
    model.train()
    cuda = device.type == "cuda"
    loss_sum, correct, seen = 0.0, 0, 0
    step_sizes = batches.batch_sampler.step_sizes()
    start = time.perf_counter()
    with bar(total=len(batches), desc=desc, unit="batch") as progress:
        for step, (images, labels) in enumerate(batches):
            x = loader.normalize(images.to(device, non_blocking=True), loader.IMAGENET_MEAN,
                                 loader.IMAGENET_STD, channels_last=cuda)
            y = labels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                if loss_fn is None:
                    logits = model(x)
                    loss = global_mean_loss(logits, y, step_sizes[step], world)
                else:
                    loss, logits = _wsol_step(model, x, y, loss_fn, step_sizes[step], world)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            kept = y != IGNORE  # (n,) False only for a padding image
            loss_sum += loss.item() * step_sizes[step] / world.size
            correct += int((logits.argmax(1) == y)[kept].sum())
            seen += int(kept.sum())
            progress.update(1)
            if hasattr(progress, "set_postfix"):  # a tqdm bar: show the running loss and speed
                progress.set_postfix(loss=f"{loss_sum / seen:.3f}", img_s=f"{seen / (time.perf_counter() - start):.0f}")
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], world)
    return loss_sum / seen, 100.0 * correct / seen, seen / elapsed


def _wsol_step(model, x, y, loss_fn, step_size: int, world: World):
    """A WSOL method's (loss, logits) as this rank's share of the global-batch mean: its mean loss over
    the rank's real images × their count × N / step size. A padding image (label IGNORE, only in a last
    step with fewer images than ranks) is left out of the loss."""
    keep = y != IGNORE  # (n,)
    if bool(keep.all()):
        loss, logits = loss_fn(model, x, y)
        return loss * (len(y) * world.size / step_size), logits
    logits = model(x)
    if not bool(keep.any()):  # this rank has only padding: a zero loss that still reaches every weight
        return logits.float().sum() * 0.0, logits
    loss, _ = loss_fn(model, x[keep], y[keep])
    return loss * (int(keep.sum()) * world.size / step_size), logits


@torch.no_grad()
def evaluate(model, images: np.ndarray, labels: torch.Tensor, image_size: int, batch_size: int,
             device: torch.device, world: World = SINGLE) -> tuple[float, float]:
    """Classification on cached images (straight resize, no crop): (mean loss, accuracy %); each rank
    scores its exact shard and the sums are reduced over the ranks."""
    model.eval()
    mine = shard(len(images), world)
    images, labels = images[mine.start : mine.stop], labels[mine.start : mine.stop]
    loss_sum, correct, start = 0.0, 0, 0
    for x in loader.iter_eval_batches(images, image_size, batch_size, device=device):
        y = labels[start : start + len(x)].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x).float()
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        start += len(x)
    loss_sum, correct, start = all_reduce_sum([loss_sum, correct, start], world)
    return loss_sum / start, 100.0 * correct / start
