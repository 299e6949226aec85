"""The map-method name registry, torch-free: what params validation, `camloc methods` and the stages
need to know of a method without running it. Each card's `impl` names its implementation (torch),
imported only when a map is computed (`METHODS.load(name)`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.catalog import pgc as _pgc
from pipeline.catalog.registry import Registry


@dataclass(frozen=True)
class MethodInfo:
    name: str
    summary: str  # one line for `camloc methods`; the formula and paper are in the implementation's docstring
    needs_images: bool = False  # runs the model again on (masked) images, so the batch keeps them
    impl: str = ""  # "module:function" (batch, classes, **opts) -> (N, h, w) raw maps; default cams.methods.<name>
    layered: bool = False  # computable at any trunk layer: `cams.layers` applies (`<method>@<layer>` rows)
    fuses_layers: bool = False  # one map fused from all of `cams.layers` (stored under its plain name)
    library: str = ""  # "distribution version" when the implementation is an outside library's
    requires: str = ""  # "attention": only for backbones whose card says attention=True (transformers)

    def __post_init__(self) -> None:
        if not self.impl:
            object.__setattr__(self, "impl", f"pipeline.cams.methods:{self.name}")

    def runs_on(self, backbone) -> bool:
        """Whether a backbone with this card (catalog.backbones.BackboneInfo) can run the method."""
        return not self.requires or bool(getattr(backbone, self.requires, False))


METHODS: Registry[MethodInfo] = Registry("map method")

for _info in (
    MethodInfo("cam", "CAM: class weights of the linear head times the last feature map (no bias, no ReLU)."),
    MethodInfo("gradcam", "Grad-CAM: channels weighted by their spatially averaged logit gradient.", layered=True),
    MethodInfo("gradcampp", "Grad-CAM++: pixel-weighted positive gradients, closed form of the exponential-score trick.", layered=True),
    MethodInfo("xgradcam", "XGrad-CAM: gradients weighted by each channel's normalised activation.", layered=True),
    MethodInfo("layercam", "LayerCAM: element-wise positive gradients times activations, summed over channels.", layered=True),
    MethodInfo("hirescam", "HiResCAM: element-wise gradients times activations (no averaging), summed over channels.", layered=True),
    MethodInfo("scorecam", "Score-CAM: channels weighted by the class score of the image masked by each channel.",
               needs_images=True, layered=True),
    MethodInfo("eigencam", "Eigen-CAM: projection of the centred features on their first principal component (class-free).", layered=True),
    MethodInfo("layercam_fused", "LayerCAM fused over cams.layers: tanh(2·M/max M) per layer, upsampled, element-wise max.",
               fuses_layers=True, impl="pipeline.cams.layers:layercam_fused"),
    MethodInfo("center", "Center baseline: a centred isotropic Gaussian prior, the same for every image (no model)."),
    MethodInfo("full", "Full-image baseline: ones with a single zero in the top-left cell, so the box is the whole image."),
    MethodInfo("cls_attention", "Class-token attention: the last layer's class -> patch attention, head-averaged (ViTs).",
               impl="pipeline.cams.attention:cls_attention", requires="attention"),
    MethodInfo("attention_rollout", "Attention rollout: product of 0.5·(A + I) row-normalised over layers, class row (ViTs).",
               impl="pipeline.cams.attention:attention_rollout", requires="attention"),
    MethodInfo("tscam", "TS-CAM: class -> patch attention summed over layers, times the class map (ViTs).",
               impl="pipeline.cams.attention:tscam", requires="attention"),
    *_pgc.cards(MethodInfo),  # pytorch-grad-cam's methods, when grad-cam is installed
):
    METHODS.add(_info.name, _info, origin=_info.library or None)
