"""Map methods: shapes on every backbone, batching, model state left alone, formulas checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.cams import METHODS, compute_maps
from pipeline.cams.hooks import capture_output
from pipeline.catalog.pgc import PREFIX
from pipeline.catalog.pgc import spec as pgc_spec
from pipeline.errors import CamlocError
from pipeline.models import BACKBONES, build_backbone

EXPECTED = {"cam", "gradcam", "gradcampp", "xgradcam", "layercam", "hirescam", "scorecam", "eigencam",
            "center", "full"}
GRADIENT = ("gradcam", "gradcampp", "xgradcam", "layercam", "hirescam")
DEFAULT_BACKBONES = ("tiny_gap_cnn", "resnet18")  # the big ones run with -m slow


def _model(name: str, classes: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    kwargs = {"output_stride": 16} if name == "resnet18" else {}
    return build_backbone(name, classes, pretrained=False, **kwargs).eval()


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny():
    return _model("tiny_gap_cnn")


def test_registry_has_every_method_with_a_summary_and_a_paper():
    assert EXPECTED <= set(METHODS.names())
    for name in METHODS.names():
        info = METHODS.get(name)
        assert info.name == name
        assert info.summary and "\n" not in info.summary and len(info.summary) < 110, name  # `camloc methods`
        doc = (METHODS.load(name).__doc__ or "").strip().splitlines()
        assert len(doc) >= 3, f"{name}: docstring needs a formula and a reference"


def test_catalog_and_implementations_never_drift():
    """The torch-free catalog and the implementations list the same names, and each implementation's
    docstring starts with the catalog's summary (so `camloc methods` describes what runs)."""
    for name in METHODS.names():
        doc = (METHODS.load(name).__doc__ or "").strip().splitlines()
        assert doc and doc[0].strip() == METHODS.get(name).summary, name


def test_methods_not_flagged_needs_images_ignore_the_images(tiny):
    """cams.dump drops the images from a batch when no method in it `needs_images`: the flag must be right."""
    from pipeline.cams import forward_batch, maps_for_batch
    from pipeline.cams.methods import Batch

    batch = forward_batch(tiny, _images(2, 32, seed=6))
    no_images = Batch(batch.model, batch.images[:0], batch.features, batch.logits)
    for name in METHODS.names():
        if not METHODS.get(name).needs_images and not METHODS.get(name).requires:  # attention: tests/models/test_vit.py
            torch.testing.assert_close(maps_for_batch(no_images, [1, 2], name),
                                       maps_for_batch(batch, [1, 2], name), msg=name)


def test_unknown_method_lists_choices(tiny):
    with pytest.raises(CamlocError, match="valid choices: .*gradcam"):
        compute_maps(tiny, _images(1, 32), [0], "grad_cam")


@pytest.mark.parametrize("backbone", [
    *DEFAULT_BACKBONES,
    *[pytest.param(b, marks=pytest.mark.slow) for b in BACKBONES.names() if b not in DEFAULT_BACKBONES],
])
def test_every_method_on_every_backbone_is_finite_and_feature_sized(backbone):
    model = _model(backbone)
    size = max(32, 2 * BACKBONES.get(backbone).size_divisor)
    x = _images(2, size)
    with torch.no_grad():
        h, w = model.features(x).shape[-2:]
    for method in METHODS.names():
        if not METHODS.get(method).runs_on(BACKBONES.get(backbone)):
            continue  # attention methods on a CNN: refused (tests/models/test_vit.py)
        maps = compute_maps(model, x, [1, 3], method, **({"chunk": 256} if method == "scorecam" else {}))
        at_input = method.startswith(PREFIX) and pgc_spec(method).input_resolution  # pgc.fullgrad
        assert maps.shape == ((2, size, size) if at_input else (2, h, w)) and maps.dtype == torch.float32, method
        assert torch.isfinite(maps).all(), method
        # pytorch-grad-cam's maps and fused LayerCAM's are ReLU'd: on a random model's 2 x 2 features they can be
        # all zero by definition (FEM keeps values above mean + 2 std per channel, which 4 values never reach)
        clamped = method.startswith(PREFIX) or METHODS.get(method).fuses_layers
        assert not clamped or (maps >= 0).all(), method
        if not clamped or backbone in DEFAULT_BACKBONES:
            assert maps.abs().sum() > 0, method


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_a_batch_equals_its_images_one_at_a_time(tiny, method):
    x, classes = _images(3, 32, seed=1), [4, 0, 2]
    batched = compute_maps(tiny, x, classes, method)
    single = torch.cat([compute_maps(tiny, x[i : i + 1], classes[i : i + 1], method) for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-6)


def test_class_dependent_methods_change_with_the_class(tiny):
    x = _images(1, 32)
    for method in ("cam", "gradcam", "gradcampp", "xgradcam", "layercam", "hirescam", "scorecam"):
        assert not torch.allclose(compute_maps(tiny, x, [0], method), compute_maps(tiny, x, [1], method)), method


def test_gradient_methods_leave_parameters_grads_buffers_and_modes_alone():
    model = _model("tiny_gap_cnn").train()
    model.features[1].eval()  # a mixed-mode model must come back mixed
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    for method in (m for m in METHODS.names() if not METHODS.get(m).requires):  # a CNN has no attention
        compute_maps(model, _images(4, 32), [0, 1, 2, 3], method)
    assert [m.training for m in model.modules()] == modes
    for k, v in model.state_dict().items():  # BN running stats included: eval mode was used
        assert torch.equal(v, before[k]), k
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())


def test_maps_run_in_eval_mode_even_for_a_model_in_train_mode():
    model = _model("tiny_gap_cnn")
    x = _images(2, 32)
    expected = compute_maps(model, x, [0, 1], "cam")
    model.train()
    torch.testing.assert_close(compute_maps(model, x, [0, 1], "cam"), expected)


def test_hooks_are_removed_even_when_the_body_raises(tiny):
    with pytest.raises(RuntimeError), capture_output(tiny.features) as outs:
        tiny(_images(1, 32))
        assert len(outs) == 1
        raise RuntimeError("boom")
    assert not tiny.features._forward_hooks


@pytest.mark.parametrize("classes", [[0], [0, 5], [-1, 0]])
def test_bad_target_classes_are_refused(tiny, classes):
    with pytest.raises(ValueError, match="classes"):
        compute_maps(tiny, _images(2, 32), classes, "cam")


def test_gradcampp_matches_its_formula_by_hand(tiny):
    x, c = _images(2, 32, seed=3), torch.tensor([1, 2])
    f = tiny.features(x).detach().double().numpy()  # (N, C, h, w)
    w = tiny.classifier.weight.detach().double().numpy()  # (K, C)
    hw = f.shape[2] * f.shape[3]
    expected = []
    for i in range(2):
        g = np.broadcast_to((w[c[i]] / hw)[:, None, None], f[i].shape)  # dy/df on a GAP head
        a = g**2 / (2 * g**2 + f[i].sum((1, 2), keepdims=True) * g**3 + 1e-7)
        alpha = (a * np.maximum(g, 0)).sum((1, 2))
        expected.append(np.tensordot(alpha, f[i], axes=1))
    got = compute_maps(tiny, x, c, "gradcampp").double().numpy()
    np.testing.assert_allclose(got, np.stack(expected), rtol=1e-4, atol=1e-8)


def test_scorecam_is_chunk_invariant_and_matches_a_plain_loop(tiny):
    x, c = _images(2, 32, seed=4), torch.tensor([3, 1])
    maps = [compute_maps(tiny, x, c, "scorecam", chunk=k) for k in (1, 7, 10_000)]
    torch.testing.assert_close(maps[0], maps[1])
    torch.testing.assert_close(maps[0], maps[2])
    f = tiny.features(x).detach()  # (N, C, h, w)
    expected = []
    with torch.no_grad():
        for i in range(2):
            scores = []
            for k in range(f.shape[1]):
                up = nn.functional.interpolate(f[i, k][None, None], size=(32, 32), mode="bilinear")[0, 0]
                span = up.max() - up.min()
                mask = (up - up.min()) / span if span > 0 else torch.zeros_like(up)
                scores.append(tiny(x[i : i + 1] * mask)[0, c[i]])
            alpha = torch.softmax(torch.stack(scores), 0)
            expected.append(torch.einsum("c,chw->hw", alpha, f[i]))
    torch.testing.assert_close(maps[0], torch.stack(expected), rtol=1e-4, atol=1e-6)


def test_eigencam_is_the_first_principal_component_with_a_fixed_sign(tiny):
    x = _images(2, 32, seed=5)
    got = compute_maps(tiny, x, [0, 0], "eigencam").numpy()
    f = tiny.features(x).detach().double().numpy()
    for i in range(2):
        flat = f[i].reshape(f.shape[1], -1).T  # (hw, C)
        flat = flat - flat.mean(0)
        v = np.linalg.svd(flat, full_matrices=False)[2][0]
        proj = (flat @ v).reshape(f.shape[2:])
        total = f[i].sum(0)
        if (proj * (total - total.mean())).sum() < 0:
            proj = -proj
        np.testing.assert_allclose(got[i], proj, rtol=1e-4, atol=1e-5)


def test_eigencam_recovers_a_rank_one_pattern():
    class RankOne(nn.Module):
        def __init__(self):
            super().__init__()
            self.pattern = torch.linspace(0, 1, 16).view(1, 1, 4, 4)
            self.scale = nn.Parameter(torch.arange(1.0, 9.0).view(1, 8, 1, 1))
            self.classifier = nn.Linear(8, 2)

        def features(self, x):
            return self.scale * self.pattern * x.mean((1, 2, 3)).view(-1, 1, 1, 1).abs()

    got = compute_maps(RankOne(), torch.ones(1, 3, 8, 8), [0], "eigencam")[0]
    pattern = RankOne().pattern[0, 0]
    corr = torch.corrcoef(torch.stack([got.flatten(), pattern.flatten()]))[0, 1]
    assert corr > 0.9999


def test_center_and_full_baselines(tiny):
    x = _images(2, 64)
    centre = compute_maps(tiny, x, [0, 1], "center")
    h, w = centre.shape[1:]
    assert torch.equal(centre[0], centre[1])
    torch.testing.assert_close(centre[0], centre[0].flip(0).flip(1))  # symmetric about the centre
    assert centre[0, h // 2, w // 2] > centre[0, 0, 0] > 0
    full = compute_maps(tiny, x, [0, 1], "full")
    expected = torch.ones(2, h, w)
    expected[:, 0, 0] = 0
    assert torch.equal(full, expected)


@pytest.mark.parametrize("map_side", [3, 7, 14])
def test_full_baseline_scores_as_the_whole_image(map_side):
    """Through the evaluation protocol (bicubic, min-max, uint8, strict threshold), `full` gives the
    whole-frame box at every tau of the default grid below 0.9."""
    from pipeline import metrics as localize
    from pipeline.cams.methods import Batch

    batch = Batch(model=None, images=None, features=torch.zeros(1, 1, map_side, map_side), logits=None)
    raw = METHODS.load("full")(batch, None)[0].numpy()
    smap = localize.normalize_map(raw, (96, 96))
    taus = localize.taus(0.01)
    for tau, boxes in zip(taus, localize.boxes_at_taus(smap, taus, "all"), strict=True):
        if tau < 0.9:
            assert [0, 0, 95, 95] in boxes.tolist(), tau
