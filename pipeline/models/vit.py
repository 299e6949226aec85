"""Vision transformers on the GAP contract (torch + timm): DeiT-T/S and a CPU-sized ViT, for train@B and cams@B.

A timm `VisionTransformer` becomes a `GapNet` whose features are its patch tokens after the final norm,
without the class token, reshaped to the token grid (N, D, h, w) (h = H / patch), and whose classifier is
`nn.Linear(D, K)` on their spatial mean. So `cam` and every gradient method run unchanged on the grid,
and their gradient is non-zero there: the head reads the patch tokens themselves (a class-token head
would give the last block's patch tokens zero gradient, pytorch-grad-cam's tutorials/vision_transformers.md;
that is why it hooks `blocks[-1].norm1`, and why camloc's head sits on the patch tokens).

Attention weights: timm's fused attention (`F.scaled_dot_product_attention`) never materialises them, so
every block is built with `attn.fused_attn = False`; timm then computes softmax(q·kᵀ·scale) and passes
it through `attn.attn_drop` (timm/layers/attention.py, `Attention.forward`). `TokenGrid.record_attention()`
hooks that module and keeps each layer's head-averaged weights (the only form the attention map methods
use), so a forward pass yields (L, N, T, T) with T = prefix tokens + h·w.

Pretrained weights (DeiT, Touvron et al. 2021) come from timm's pretrained-config URL, read from the torch
hub cache (`models.weights.ensure_cached`: nothing is downloaded silently; a missing file is one error
naming the file and the folder). `weights: path.pth` loads a local file: timm/DeiT layout (`model`
wrapper), or TS-CAM's / SCM's released checkpoints (`models.vit_layouts`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import timm
from torch import Tensor, nn

from pipeline.catalog.backbones import BackboneInfo
from pipeline.errors import CamlocError
from pipeline.models import vit_layouts
from pipeline.models.gap import GapNet
from pipeline.models.weights import ensure_cached, looks_like_path, read_weights
from pipeline.models.weights_fit import fit_state

log = logging.getLogger(__name__)

# card name → (timm model name, VisionTransformer keyword arguments); a None timm name builds
# timm.models.vision_transformer.VisionTransformer(**kwargs) directly (no pretrained weights).
VIT_CONFIGS: dict[str, tuple[str | None, dict]] = {
    "deit_tiny_patch16": ("deit_tiny_patch16_224", {}),
    "deit_small_patch16": ("deit_small_patch16_224", {}),
    # 0.33 M parameters: patch 8 at 64 px (8×8 tokens; other sizes resample the position embedding), 4 blocks
    # of width 96, 3 heads of 32, MLP ratio 2.
    "vit_cpu_p8": (None, {"img_size": 64, "patch_size": 8, "embed_dim": 96, "depth": 4, "num_heads": 3,
                          "mlp_ratio": 2.0, "qkv_bias": True}),
}
HEAD_KEYS = ("head", "head_dist", "fc_norm")  # timm/DeiT classifier tensors: class-dependent, never loaded


class TokenGrid(nn.Module):
    """A timm VisionTransformer (no head) → its final-norm patch tokens as a grid (N, D, h, w)."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        self.vit = vit
        self.patch = int(vit.patch_embed.patch_size[0])
        self.prefix = int(vit.num_prefix_tokens)
        for block in vit.blocks:
            block.attn.fused_attn = False  # the weights must exist to be read (module docstring)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.vit.forward_features(x)  # (N, T, D), after the final norm
        n, _, d = tokens.shape
        h, w = x.shape[-2] // self.patch, x.shape[-1] // self.patch
        return tokens[:, self.prefix :].transpose(1, 2).reshape(n, d, h, w)

    @contextlib.contextmanager
    def record_attention(self) -> Iterator[list[Tensor]]:
        """Yield a list that each forward pass fills with one (N, T, T) head-averaged attention per block."""
        seen: list[Tensor] = []
        hooks = [b.attn.attn_drop.register_forward_hook(lambda _m, _i, out: seen.append(out.detach().mean(1)))
                 for b in self.vit.blocks]
        try:
            yield seen
        finally:
            for h in hooks:
                h.remove()


class VitGapNet(GapNet):
    """A GapNet over a `TokenGrid`; `released_head` holds a released checkpoint's conv head when one was
    loaded (TS-CAM's), for the tscam WSOL method to start from (pipeline/wsol/tscam.py)."""

    released_head: dict[str, Tensor] | None = None


def _timm_vit(name: str) -> nn.Module:
    timm_name, kwargs = VIT_CONFIGS[name]
    common = {"num_classes": 0, "dynamic_img_size": True}  # no head; any multiple of the patch size
    if timm_name is None:
        from timm.models.vision_transformer import VisionTransformer

        return VisionTransformer(**kwargs, **common)
    return timm.create_model(timm_name, pretrained=False, **kwargs, **common)


def _pretrained_file(spec: BackboneInfo, weights: str | None) -> Path:
    timm_name = VIT_CONFIGS[spec.name][0]
    if timm_name is None:
        raise CamlocError(f"backbone {spec.name} has no pretrained weights; set pretrained: false, weights: null")
    tag = weights if weights and weights != "DEFAULT" else None
    full = f"{timm_name}.{tag}" if tag else timm_name
    try:
        cfg = timm.models.get_pretrained_cfg(full)
    except (RuntimeError, KeyError, ValueError):
        cfg = None
    if cfg is None or not getattr(cfg, "url", None):
        raise CamlocError(f"unknown weights {weights!r} for {spec.name} (timm {timm_name}); use DEFAULT, a timm "
                          f"tag such as fb_in1k, or a local file path")
    return ensure_cached(cfg.url)  # the torch hub cache; one error naming the file and folder when absent


def load_vit_weights(model: VitGapNet, path: Path, strict: bool = True) -> None:
    """Load a timm/DeiT or TS-CAM/SCM-layout file into the trunk (strictly: only heads may differ)."""
    state = vit_layouts.unwrap(read_weights(path, "fix backbones.<name>.weights in params.yaml",
                                            "fix backbones.<name>.weights"), f"weights file {path}")
    if vit_layouts.detect_tscam(state):
        mapped = vit_layouts.map_tscam(state)
        trunk = {k.removeprefix("features.0.vit."): v for k, v in mapped.items() if k.startswith("features.0.vit.")}
        head = {k.removeprefix("features.1."): v for k, v in mapped.items() if k.startswith("features.1.")}
        model.released_head = head  # used by the tscam WSOL method when its class count fits
        log.info("weights file %s: TS-CAM layout (conv head %s kept for wsol tscam)", path,
                 tuple(head["weight"].shape))
    else:
        trunk = {k: v for k, v in state.items() if not k.startswith(tuple(h + "." for h in HEAD_KEYS))}
    own = model.features.vit.state_dict()
    fitting = fit_state(own, trunk, (), f"weights file {path}", strict)
    model.features.vit.load_state_dict(fitting, strict=False)


def build_vit(spec: BackboneInfo, num_classes: int, pretrained: bool = False, weights: str | None = None,
              weights_strict: bool = True, **options) -> VitGapNet:
    """The builder of the transformer cards (`BackboneInfo.impl`): a TokenGrid GapNet, weights loaded."""
    vit = _timm_vit(spec.name)
    model = VitGapNet(TokenGrid(vit), int(vit.embed_dim), num_classes)
    if weights and looks_like_path(weights):
        load_vit_weights(model, Path(weights), weights_strict)
    elif pretrained or weights:
        path = _pretrained_file(spec, weights)
        load_vit_weights(model, path, strict=True)
    return model
