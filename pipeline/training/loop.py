"""The training loop of train@B (torch): determinism, optimiser and schedule, one epoch, validation."""

from __future__ import annotations

import math
import os
import time

import numpy as np
import torch
from torch import nn

from pipeline.datasets import loader
from pipeline.params import BackboneParams
from pipeline.progress import Bar, no_bar


def setup_determinism(seed: int, device: torch.device) -> int:
    """Seeds, deterministic kernels on CPU, and a fixed thread count; returns the thread count."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(threads)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        # GPU runs favour speed: cuDNN autotuning picks kernels whose sums may differ in the last bits.
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return threads


def make_optimizer(model: nn.Module, bp: BackboneParams) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov off) or AdamW; the heads (the linear classifier and any WSOL head or
    branch, i.e. everything outside the trunk) get lr × head_lr_mult (the reference's ratio)."""
    trunk = {id(p) for p in model.features.parameters()}
    groups = [
        {"params": list(model.features.parameters()), "lr": bp.lr},
        {"params": [p for p in model.parameters() if id(p) not in trunk], "lr": bp.lr * bp.head_lr_mult},
    ]
    if bp.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=bp.lr, weight_decay=bp.weight_decay)
    return torch.optim.SGD(groups, lr=bp.lr, momentum=bp.momentum, weight_decay=bp.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, bp: BackboneParams, steps_per_epoch: int):
    """Per-step multiplier: cosine to 0 over all steps, ×0.1 every `step_epochs`, or constant."""
    total = max(1, bp.epochs * steps_per_epoch)
    if bp.schedule == "cosine":
        def factor(step: int) -> float:
            return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    elif bp.schedule == "step":
        def factor(step: int) -> float:
            return 0.1 ** (step // (bp.step_epochs * steps_per_epoch))
    else:
        def factor(step: int) -> float:
            return 1.0
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_epoch(model, batches, optimizer, scheduler, device: torch.device, desc: str,
                bar: Bar = no_bar, loss_fn=None) -> tuple[float, float, float]:
    """One pass over `batches` (a DataLoader); returns (mean loss, accuracy %, images/s including loading).

    `loss_fn(model, x, y) -> (loss, logits)` is the WSOL method's step (pipeline.wsol.build.training_loss);
    None is plain cross-entropy.
    """
    model.train()
    cuda = device.type == "cuda"
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    with bar(total=len(batches), desc=desc, unit="batch") as progress:
        for images, labels in batches:
            x = loader.normalize(images.to(device, non_blocking=True), loader.IMAGENET_MEAN,
                                 loader.IMAGENET_STD, channels_last=cuda)
            y = labels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                if loss_fn is None:
                    logits = model(x)
                    loss = nn.functional.cross_entropy(logits.float(), y)
                else:
                    loss, logits = loss_fn(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            progress.update(1)
            if hasattr(progress, "set_postfix"):  # a tqdm bar: show the running loss and speed
                progress.set_postfix(loss=f"{loss_sum / seen:.3f}", img_s=f"{seen / (time.perf_counter() - start):.0f}")
    if cuda:
        torch.cuda.synchronize()
    return loss_sum / seen, 100.0 * correct / seen, seen / (time.perf_counter() - start)


@torch.no_grad()
def evaluate(model, images: np.ndarray, labels: torch.Tensor, image_size: int, batch_size: int,
             device: torch.device) -> tuple[float, float]:
    """Classification on cached images (straight resize, no crop): (mean loss, accuracy %)."""
    model.eval()
    loss_sum, correct, start = 0.0, 0, 0
    for x in loader.iter_eval_batches(images, image_size, batch_size, device=device):
        y = labels[start : start + len(x)].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x).float()
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        start += len(x)
    return loss_sum / start, 100.0 * correct / start
