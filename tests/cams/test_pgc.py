"""pytorch-grad-cam's methods as pgc.*: the torch-free list against the real package, the agreement of
camloc's own methods with the library's after the same post-processing, and what the adapter stores."""

from __future__ import annotations

import ast
import copy
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.cams import compute_maps
from pipeline.catalog import pgc as card
from pipeline.catalog.methods import METHODS
from pipeline.models import build_backbone
from pipeline.models.gap import GapNet

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.image import scale_cam_image  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

SIZE = 64
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(1)  # a small random CNN: 8×8 maps at 64 px
    return build_backbone("tiny_gap_cnn", 6, pretrained=False).eval()


@pytest.fixture(scope="module")
def data():
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))
    return x, [5, 0, 3]


def library_maps(model, x, classes, cls) -> np.ndarray:
    """The library's own end-to-end call: (N, SIZE, SIZE), ReLU'd, upsampled, min-max'd."""
    cam = getattr(pgc, cls)(model, target_layers=[model.features])
    try:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    finally:
        cam.activations_and_grads.release()


def library_post(raw: np.ndarray) -> np.ndarray:
    """The library's post-processing of one layer's maps (BaseCAM.compute_cam_per_layer, then
    aggregate_multi_layers): ReLU, min-max + bilinear resize to the input size, ReLU, min-max."""
    per_layer = scale_cam_image(np.maximum(raw, 0), (SIZE, SIZE))
    return scale_cam_image(np.maximum(per_layer, 0))


def _public_names() -> set[str]:
    """Names pytorch_grad_cam/__init__.py exports (`from x import A, B`), read without importing it."""
    init = Path(importlib.util.find_spec("pytorch_grad_cam").origin)
    tree = ast.parse(init.read_text())
    return {a.asname or a.name for node in tree.body if isinstance(node, ast.ImportFrom) for a in node.names}


def test_pgc_list_covers_every_public_class_of_the_library():
    listed = {m.cls for m in card.PGC_METHODS}
    assert listed.isdisjoint(card.EXCLUDED)
    assert listed | set(card.EXCLUDED) == _public_names()
    for m in card.PGC_METHODS:  # each listed name is a class of the real package
        assert isinstance(getattr(pgc, m.cls), type), m.cls


def test_pgc_names_are_listed_and_validated_without_importing_torch():
    code = ("import sys; from pipeline.catalog.methods import METHODS; "
            "names = [n for n in METHODS.names() if n.startswith('pgc.')]; "
            "assert 'pgc.ablationcam' in names and 'pgc.finercam' in names, names; "
            "from pipeline.params import load_params; load_params('params.yaml'); "
            "assert 'torch' not in sys.modules and 'pytorch_grad_cam' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_pgc_summary_names_the_library_and_its_version():
    from importlib import metadata

    v = metadata.version("grad-cam")
    for m in card.PGC_METHODS:
        info = METHODS.get(f"pgc.{m.name}")
        assert f"pytorch-grad-cam {v}" in info.summary and info.library == f"grad-cam {v}"
        assert METHODS.origin(f"pgc.{m.name}") == f"grad-cam {v}"


# --- the agreement test: camloc's methods vs the library's, after the same post-processing (1e-5) ---

SAME = [("gradcam", "GradCAM"), ("xgradcam", "XGradCAM"), ("layercam", "LayerCAM"), ("hirescam", "HiResCAM")]


@pytest.mark.parametrize("ours,theirs", SAME)
def test_agreement_same_definition(tiny, data, ours, theirs):
    x, classes = data
    raw = compute_maps(tiny, x, classes, ours).numpy()
    np.testing.assert_allclose(library_post(raw), library_maps(tiny, x, classes, theirs), atol=1e-5)


def test_agreement_gradcampp_differs_by_its_epsilon_only(tiny, data, monkeypatch):
    """Genuine difference: the denominator's ε is 1e-7 in camloc, 1e-6 in the library. With the
    library's ε the maps agree; with camloc's they do not (the denominators here are ~1e-6)."""
    x, classes = data
    theirs = library_maps(tiny, x, classes, "GradCAMPlusPlus")
    assert np.abs(library_post(compute_maps(tiny, x, classes, "gradcampp").numpy()) - theirs).max() > 1e-5
    monkeypatch.setattr("pipeline.cams.methods.EPS", 1e-6)
    np.testing.assert_allclose(library_post(compute_maps(tiny, x, classes, "gradcampp").numpy()), theirs,
                               atol=1e-5)


def test_agreement_scorecam_differs_by_its_mask_upsampling_only(tiny, data, monkeypatch):
    """Genuine difference: the library upsamples the channel masks with UpsamplingBilinear2d
    (align_corners=True), camloc with align_corners=False (as the evaluator's frame convention)."""
    x, classes = data
    theirs = library_maps(tiny, x, classes, "ScoreCAM")
    assert np.abs(library_post(compute_maps(tiny, x, classes, "scorecam").numpy()) - theirs).max() > 1e-5

    class AlignedF:  # camloc's scorecam with the library's corner alignment
        def __getattr__(self, name):
            return getattr(F, name)

        @staticmethod
        def interpolate(t, size, mode, align_corners):
            return F.interpolate(t, size=size, mode=mode, align_corners=True)

    monkeypatch.setattr("pipeline.cams.methods.F", AlignedF())
    np.testing.assert_allclose(library_post(compute_maps(tiny, x, classes, "scorecam").numpy()), theirs,
                               atol=1e-5)


def test_agreement_eigencam_differs_by_its_sign_only(tiny, data):
    """Genuine difference: an SVD's sign is arbitrary; camloc fixes it (the map correlates positively
    with Σ_k f_k), the library keeps numpy's. Each image agrees with camloc's map or its negation, and
    the comparison is not vacuous (the two signs give different maps)."""
    x, classes = data
    raw = compute_maps(tiny, x, classes, "eigencam").numpy()
    theirs = library_maps(tiny, x, classes, "EigenCAM")
    plus, minus = library_post(raw), library_post(-raw)
    for i in range(len(raw)):
        err = min(np.abs(plus[i] - theirs[i]).max(), np.abs(minus[i] - theirs[i]).max())
        assert err < 1e-5 and np.abs(plus[i] - minus[i]).max() > 0.1


# --- the adapter: pgc.* maps are the library's, at feature resolution, and leave the model as found ---

@pytest.mark.parametrize("name,cls", [("gradcam", "GradCAM"), ("ablationcam", "AblationCAM"),
                                      ("kpcacam", "KPCA_CAM"), ("shapleycam", "ShapleyCAM")])
def test_pgc_maps_are_the_library_maps_before_its_upsampling(tiny, data, name, cls):
    x, classes = data
    ours = compute_maps(tiny, x, classes, f"pgc.{name}").numpy()
    assert ours.shape == (3, 8, 8) and ours.min() >= 0 and ours.max() <= 1
    native = library_maps(tiny, x, classes, cls)  # the library upsamples, then min-max again
    np.testing.assert_allclose(scale_cam_image(scale_cam_image(ours, (SIZE, SIZE))), native, atol=1e-5)


def test_pgc_fullgrad_is_stored_at_the_input_size(tiny, data):
    x, classes = data
    ours = compute_maps(tiny, x, classes, "pgc.fullgrad").numpy()
    cam = pgc.FullGrad(tiny, [])
    try:
        native = cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    finally:
        cam.activations_and_grads.release()
    assert ours.shape == (3, SIZE, SIZE)
    np.testing.assert_allclose(ours, native, atol=1e-6)


def test_pgc_follows_the_target_class_and_is_deterministic(tiny, data):
    x, _ = data
    a = compute_maps(tiny, x, [1, 1, 1], "pgc.finercam")
    b = compute_maps(tiny, x, [2, 2, 2], "pgc.finercam")
    assert not torch.allclose(a, b)
    r1, r2 = (compute_maps(tiny, x, [1, 2, 3], "pgc.randomcam") for _ in range(2))
    torch.testing.assert_close(r1, r2)


def test_pgc_leaves_the_model_as_found(data):
    torch.manual_seed(0)
    model = build_backbone("tiny_gap_cnn", 6).train()
    x, classes = data
    marker = [torch.full_like(p, 3.0) for p in model.parameters()]
    for p, g in zip(model.parameters(), marker, strict=True):
        p.grad = g
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for name in ("pgc.gradcam", "pgc.ablationcam", "pgc.shapleycam"):
        compute_maps(model, x, classes, name)
    assert all(m.training for m in model.modules())
    assert all(p.grad is g for p, g in zip(model.parameters(), marker, strict=True))
    assert not any(m._forward_hooks for m in model.modules())
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k])


def test_pgc_fullgrad_leaves_out_bias_layers_inference_never_runs(tiny, data):
    """A module the forward pass never calls (SPG's training-only branches) has no bias gradient: its
    FullGrad term is 0, and the library alone stops on its bias/gradient count assertion."""
    x, classes = data
    plain = compute_maps(tiny, x, classes, "pgc.fullgrad")
    branched = copy.deepcopy(tiny)
    branched.side = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))  # never called
    torch.testing.assert_close(compute_maps(branched, x, classes, "pgc.fullgrad"), plain)
    cam = pgc.FullGrad(branched, [])
    try:
        with pytest.raises(AssertionError):
            cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    finally:
        cam.activations_and_grads.release()


def test_pgc_on_a_transformer_whose_hooked_tokens_are_views():
    """A ViT's feature grid is a view of its tokens. ShapleyCAM keeps its activations in the graph, and the
    library's own release() detaches them in place, which torch refuses for a view; camloc's adapter
    releases without that and leaves no hook behind."""
    torch.manual_seed(0)
    vit = build_backbone("vit_cpu_p8", 6).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    maps = compute_maps(vit, x, [1, 4], "pgc.shapleycam")
    assert maps.shape == (2, 4, 4) and torch.isfinite(maps).all()
    assert not any(m._forward_hooks for m in vit.modules())


class _DefinedLateFirst(torch.nn.Module):
    """Two convolutions defined in the opposite order to the one they run in (as Inception's branches)."""

    def __init__(self, early: torch.nn.Conv2d, late: torch.nn.Conv2d):
        super().__init__()
        self.late, self.early = late, early

    def forward(self, x):
        return self.late(torch.relu(self.early(x)))


def test_pgc_fullgrad_pairs_each_bias_with_its_own_layers_gradient(data):
    x, classes = data
    torch.manual_seed(0)
    early, late = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 16, 3, padding=1)
    in_order = GapNet(torch.nn.Sequential(early, torch.nn.ReLU(), late), 16, 6).eval()
    swapped = GapNet(_DefinedLateFirst(early, late), 16, 6).eval()
    swapped.classifier = in_order.classifier
    cam = pgc.FullGrad(in_order, [])
    try:
        native = cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    finally:
        cam.activations_and_grads.release()
    np.testing.assert_allclose(compute_maps(swapped, x, classes, "pgc.fullgrad").numpy(), native, atol=1e-6)
    cam = pgc.FullGrad(swapped, [])
    try:
        with pytest.raises(ValueError):  # the library alone: the late layer's bias against the early gradient
            cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    finally:
        cam.activations_and_grads.release()
