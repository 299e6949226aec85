"""Strict weights loading, one small self-contained function every weights loader calls.

A weights file for a model must fit it: only the head (the classifier whose shape follows the number of
classes) may differ in shape. A trunk tensor that is missing, unexpected, of another shape or not finite
is an error listing the first few keys, unless the entry sets ``weights_strict: false``: then the tensors
that do not fit are dropped (left as initialised) and a WARNING gives their count.
"""

from __future__ import annotations

import logging

import torch

from pipeline.errors import CamlocError

log = logging.getLogger(__name__)


def fit_state(own: dict[str, torch.Tensor], state: dict, head: tuple[str, ...], source: str, strict: bool = True,
              fix: str = "fix backbones.<B>.weights") -> dict[str, torch.Tensor]:
    """The tensors of ``state`` to load into a model whose state dict is ``own``.

    ``head``: key prefixes of the class-dependent layers (e.g. ``("fc",)``), whose tensors may have another
    shape (they are dropped, INFO). Anything else that does not fit raises a one-line CamlocError naming
    ``source`` and the first keys, or with ``strict=False`` is dropped with a WARNING and its count.
    """
    def in_head(k: str) -> bool:
        return any(k == h or k.startswith(h + ".") for h in head)

    not_tensor = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if not_tensor:
        raise CamlocError(f"{source}: {len(not_tensor)} entries are not tensors ({', '.join(not_tensor[:3])}); "
                          f"a weights file is a state dict of tensors: {fix}")
    nonfinite = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if nonfinite:
        raise CamlocError(f"{source}: {len(nonfinite)} tensor(s) hold NaN or inf values ({', '.join(nonfinite[:3])}"
                          f"{', ...' if len(nonfinite) > 3 else ''}); the file is damaged: {fix}")
    shaped = sorted(k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape))
    missing = sorted(k for k in own if k not in state and not in_head(k))
    unexpected = sorted(k for k in state if k not in own)
    trunk = [k for k in shaped if not in_head(k)]
    if trunk or missing or unexpected:
        parts = [f"{what} {len(keys)} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
                 for what, keys in (("other shape", [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                                                     for k in trunk]),
                                    ("missing", missing), ("unexpected", unexpected)) if keys]
        n = len(trunk) + len(missing) + len(unexpected)
        if strict:
            raise CamlocError(f"{source}: {n} trunk tensor(s) do not fit the model, only the head "
                              f"({', '.join(head)}) may differ: {'; '.join(parts)}; {fix}, or set "
                              "weights_strict: false to train what does not fit from scratch")
        log.warning("%s: weights_strict is false: %d trunk tensor(s) that do not fit were dropped and start "
                    "from scratch (%s)", source, n, "; ".join(parts))
    dropped_head = [k for k in shaped if in_head(k)]
    if dropped_head:
        log.info("%s: %d head tensor(s) of another shape dropped (%s)", source, len(dropped_head), dropped_head[:2])
    return {k: v for k, v in state.items() if k in own and k not in shaped}


def head_of(model: torch.nn.Module) -> tuple[str, ...]:
    """The key prefix of a torchvision model's class-dependent layer: its last ``nn.Linear``."""
    linears = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    return (linears[-1],) if linears else ()
