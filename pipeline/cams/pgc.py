"""pytorch-grad-cam's map methods as camloc map methods `pgc.<name>` (torch; cards: pipeline/catalog/pgc.py).

Each runs batched through the library's own API, `Cls(model, target_layers=[layer])(images, targets)`,
on the same model, target classes (`ClassifierOutputTarget(c)`: the logit of the GT or predicted class)
and layer as camloc's own methods: the trunk's output (`model.features`) by default, the module at a
`cams.layers` path otherwise (`Batch.layer`).

Where the library's defaults differ from camloc's, the stored maps keep the library's values:
- **ReLU**: the library clamps each layer's map at 0 (`np.maximum(cam, 0)`); camloc's own maps are raw,
  before any ReLU (PROTOCOL §1).
- **min–max**: the library scales each map to [0, 1] as `(m − min) / (max − min + 1e-7)`, twice (per layer,
  then after aggregating layers); the evaluator's own min–max (no epsilon) follows and changes the
  ranking of no pixel.
- **upsampling**: the library resizes to the input size with OpenCV bilinear; camloc stores maps at
  feature resolution (docs/contracts.md) and the evaluator upsamples every method alike (bicubic,
  PROTOCOL §1). So the library's target size is set to the layer's own h×w (the library's resize to
  its own size is the identity) and the stored map is the library's map before upsampling. FullGrad is
  the exception: it sums input and bias gradients of every conv/BN layer at the input size, has no single
  layer, and is stored at the model's input size S×S (the evaluator's resize to S is then the identity).
- FinerCAM's comparison classes are the library's rule applied to the given target: the 1st–3rd classes
  whose logits are nearest the target's (`DEFAULT_COMPARISON_CATEGORIES`), alpha 1, base Grad-CAM.
- RandomCAM draws its channel weights from NumPy's global generator: it is seeded (0) for each batch,
  and the generator's state is restored afterwards, so reruns are byte-identical.
The model is left as found: train/eval flags (the caller's `eval_mode`), hooks (released) and every
parameter's `.grad` (the library calls `model.zero_grad()` and `backward()`; `.grad` is restored).
"""

from __future__ import annotations

import contextlib
import functools
import io

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.cams.methods import Batch
from pipeline.catalog.pgc import PREFIX, PgcMethod, spec

PROGRESS_BARS = ("ScoreCAM", "AblationCAM")  # print a tqdm bar per image to stderr: silenced (only the CLI prints)


def layer_module(model: nn.Module, layer: str) -> nn.Module:
    """The trunk module a map is taken at: `model.features` itself for "" (the last layer)."""
    return model.features.get_submodule(layer) if layer else model.features


@functools.cache
def _feature_sized(cls: type) -> type:
    """The library class with its target size set to the hooked layer's own h×w (no upsampling)."""

    def get_target_width_height(self, input_tensor):
        acts = self.activations_and_grads.activations
        if acts:
            return int(acts[-1].shape[-1]), int(acts[-1].shape[-2])  # (w, h), as cv2.resize takes it
        return cls.get_target_width_height(self, input_tensor)

    return type(f"FeatureSized{cls.__name__}", (cls,), {"get_target_width_height": get_target_width_height})


def _finer_targets(logits: Tensor, classes: Tensor) -> list:
    """FinerCAM's targets for given classes, by the library's own rule (targets=None picks the top-1)."""
    from pytorch_grad_cam.finer_cam import DEFAULT_COMPARISON_CATEGORIES
    from pytorch_grad_cam.utils.model_targets import FinerWeightedTarget

    out = logits.detach().float().cpu().numpy()  # (N, K)
    picks = [c for c in DEFAULT_COMPARISON_CATEGORIES if c < out.shape[1]]
    targets = []
    for row, c in zip(out, classes.tolist(), strict=True):
        order = np.argsort(np.abs(row - row[c]), kind="stable")
        order = np.concatenate([[c], order[order != c]])  # the target first, then its nearest classes
        targets.append(FinerWeightedTarget(int(c), [int(order[i]) for i in picks], 1.0))
    return targets


def _build(m: PgcMethod, model: nn.Module, module: nn.Module, images: Tensor):
    import pytorch_grad_cam as pgc

    cls = getattr(pgc, m.cls)
    if m.cls == "FinerCAM":
        return cls(model, [module], base_method=_feature_sized(pgc.GradCAM))
    if m.input_resolution:  # FullGrad picks every bias layer itself (and warns when given a layer)
        return _fullgrad_on_the_forward_path(cls, model, images)
    return _feature_sized(cls)(model, [module])


def _fullgrad_on_the_forward_path(cls: type, model: nn.Module, images: Tensor):
    """FullGrad over the bias layers a forward pass runs, in the order it runs them. The library hooks
    every Conv2d and BatchNorm2d with a bias, in the order the model defines them, and pairs their biases
    with the gradients it collects, in the order the forward pass produced them: a layer inference never
    reaches (SPG's training-only branches) leaves a bias without a gradient (the library stops on an
    assertion), and branches defined in another order than they run (Inception) pair a bias with another
    layer's gradient. An unreached layer's term is 0 by FullGrad's definition (its bias gradient is 0)."""
    from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients

    layers = [la for la in model.modules()
              if type(la) in (nn.Conv2d, nn.BatchNorm2d) and la.bias is not None]  # the library's own rule
    ran: dict[nn.Module, None] = {}  # insertion-ordered: the order of first execution
    probes = [la.register_forward_hook(lambda mod, _i, _o: ran.setdefault(mod)) for la in layers]
    try:
        with torch.no_grad():
            model(images[:1])
    finally:
        for h in probes:
            h.remove()
    cam = cls(model, [])
    if list(ran) == layers:
        return cam
    _release(cam)
    cam.activations_and_grads = ActivationsAndGradients(model, list(ran), cam.reshape_transform)
    cam.bias_data = [cam.get_bias_data(la).cpu().numpy() for la in ran]
    return cam


def _release(cam) -> None:
    """Unhook the library's activation/gradient recorder and drop what it holds. Not the library's own
    `release()`: it detaches each recorded tensor in place, which torch refuses for views (a ViT's
    tokens reshaped to a grid, a hooked module that returns a slice)."""
    rec = (cam.base_cam if hasattr(cam, "base_cam") else cam).activations_and_grads
    rec.activations, rec.gradients = [], []
    for handle in rec.handles:
        handle.remove()
    rec.handles.clear()


def pgc_maps(batch: Batch, classes: Tensor, method: str) -> Tensor:
    """The library's maps (N, h, w) float32 for `classes` at `batch.layer`, on the batch's device."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    m, model = spec(method), batch.model
    if len(classes) == 0:
        return batch.features.new_zeros((0, *batch.features.shape[-2:]))
    grads = [(p, p.grad) for p in model.parameters()]
    rng = np.random.get_state()
    cam = _build(m, model, layer_module(model, batch.layer), batch.images)
    try:
        if m.cls == "FinerCAM":
            targets = _finer_targets(batch.logits, classes)
        else:
            targets = [ClassifierOutputTarget(int(c)) for c in classes.tolist()]
        np.random.seed(0)
        quiet = contextlib.redirect_stderr(io.StringIO()) if m.cls in PROGRESS_BARS else contextlib.nullcontext()
        with torch.enable_grad(), quiet:
            out = cam(input_tensor=batch.images, targets=targets)  # (N, h, w) float32 numpy
    finally:
        _release(cam)
        np.random.set_state(rng)
        for p, g in grads:
            p.grad = g
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).to(batch.features.device)


def __getattr__(name: str):
    """`pipeline.cams.pgc:<name>` (a card's impl) → the method's (batch, classes) -> maps function."""
    try:
        spec(name)
    except KeyError:
        raise AttributeError(f"module 'pipeline.cams.pgc' has no attribute {name!r}") from None
    from pipeline.catalog.methods import METHODS

    fn = functools.partial(pgc_maps, method=name)
    fn.__doc__ = (f"{METHODS.get(PREFIX + name).summary}\n\n"
                  f"pytorch_grad_cam.{spec(name).cls} through the library's own API (its paper is cited in the\n"
                  f"library's README); camloc's differences of post-processing: this module's docstring.")
    return fn
