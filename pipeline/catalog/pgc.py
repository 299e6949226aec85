"""pytorch-grad-cam's map methods as camloc cards `pgc.<name>`, torch-free.

With the `grad-cam` distribution installed, every method of its `pytorch_grad_cam` package that makes a
map of a classifier for one target class (or a class-free map of its features, like camloc's eigencam)
is registered as `pgc.<name>`; `camloc methods` names the library and its version. Importing
`pytorch_grad_cam` imports torch, so presence and version come from `importlib.metadata` and the class
names from the checked list below; `tests/cams/test_pgc.py` holds the list against the real package
(every public class is listed here or in `EXCLUDED`, with the reason). The implementation, run through
the library's own API, is `pipeline/cams/pgc.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

DISTRIBUTION = "grad-cam"  # PyPI name; the import package is pytorch_grad_cam
PREFIX = "pgc."


@dataclass(frozen=True)
class PgcMethod:
    name: str  # camloc name without the prefix
    cls: str  # attribute of the pytorch_grad_cam package
    summary: str
    class_free: bool = False  # the map ignores the target class
    input_resolution: bool = False  # the library builds the map at the input size, from no single layer


PGC_METHODS: tuple[PgcMethod, ...] = (
    PgcMethod("gradcam", "GradCAM", "Grad-CAM"),
    PgcMethod("gradcampp", "GradCAMPlusPlus", "Grad-CAM++"),
    PgcMethod("xgradcam", "XGradCAM", "XGrad-CAM"),
    PgcMethod("layercam", "LayerCAM", "LayerCAM"),
    PgcMethod("hirescam", "HiResCAM", "HiResCAM"),
    PgcMethod("gradcamelementwise", "GradCAMElementWise", "Grad-CAM element-wise: ReLU(grads × acts)"),
    PgcMethod("scorecam", "ScoreCAM", "Score-CAM: one masked forward pass per channel"),
    PgcMethod("ablationcam", "AblationCAM", "Ablation-CAM: score drop when each channel is zeroed"),
    PgcMethod("eigencam", "EigenCAM", "Eigen-CAM, class-free", class_free=True),
    PgcMethod("eigengradcam", "EigenGradCAM", "Eigen-Grad-CAM: 1st principal axis of grads × acts"),
    PgcMethod("kpcacam", "KPCA_CAM", "KPCA-CAM: kernel PCA of the activations, class-free", class_free=True),
    PgcMethod("fem", "FEM", "FEM: channels above k σ, class-free", class_free=True),
    PgcMethod("randomcam", "RandomCAM", "Random-CAM baseline: random channel weights, seeded"),
    PgcMethod("fullgrad", "FullGrad", "FullGrad: input and conv/BN bias gradients, input size",
              input_resolution=True),
    PgcMethod("finercam", "FinerCAM", "Finer-CAM: target logit minus its nearest classes'"),
    PgcMethod("shapleycam", "ShapleyCAM", "ShapleyCAM: gradient minus ½ Hessian-vector product"),
)

# Public names of pytorch_grad_cam that are not a class map of a classifier, and why.
EXCLUDED: dict[str, str] = {
    "AblationLayer": "a helper layer of AblationCAM",
    "AblationLayerVit": "a helper layer of AblationCAM (transformers)",
    "AblationLayerFasterRCNN": "a helper layer of AblationCAM (detectors)",
    "ActivationsAndGradients": "the library's hook helper",
    "GuidedBackpropReLUModel": "a gradient image, not a class activation map",
    "SegEigenCAM": "for segmentation models",
    "RefineCAM": "a meta-method aggregating several layers; camloc's layer axis is cams.layers",
    "SESS": "a meta-method over image patches at several scales, one image at a time",
    "DeepFeatureFactorization": "concept maps of a factorisation, not one class's map",
    "run_dff_on_image": "a DeepFeatureFactorization helper function",
}


def version() -> str | None:
    """The installed grad-cam version, or None when it is not installed (no import of torch)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


def cards(info_cls) -> list:
    """MethodInfo cards for the installed library (none when grad-cam is absent)."""
    v = version()
    if v is None:
        return []
    out = []
    for m in PGC_METHODS:
        what = f"{m.summary} (pytorch-grad-cam {v} {m.cls}; its ReLU, min-max)"
        out.append(info_cls(PREFIX + m.name, what, needs_images=True, impl=f"pipeline.cams.pgc:{m.name}",
                            layered=not m.input_resolution, library=f"{DISTRIBUTION} {v}"))
    return out


def spec(name: str) -> PgcMethod:
    """The PgcMethod of a camloc name (`pgc.gradcam` or `gradcam`)."""
    short = name.removeprefix(PREFIX)
    for m in PGC_METHODS:
        if m.name == short:
            return m
    raise KeyError(name)
