"""Each WSOL method's training-time mechanism against its definition, on tiny inputs (torch)."""

from __future__ import annotations

import pytest
import torch

from pipeline.catalog.backbones import BACKBONES
from pipeline.catalog.wsol import WSOL_METHODS
from pipeline.errors import CamlocError
from pipeline.wsol.acol import AcolNet, class_map, erase, minmax
from pipeline.wsol.adl import ADL
from pipeline.wsol.augment import cutmix, hide_and_seek, hide_mask
from pipeline.wsol.build import build_model, training_loss
from pipeline.wsol.spg import IGNORE, MIN_SEED_PIXELS, seeds


# ---------------------------------------------------------------------------------------------- HaS
@pytest.mark.parametrize("drop_rate", [0.0, 0.25, 0.5, 1.0])
def test_has_hides_the_stated_fraction_in_expectation(drop_rate):
    g = torch.Generator().manual_seed(0)
    keep = hide_mask(400, 32, 32, 4, drop_rate, generator=g)  # 400 images × 64 cells
    hidden = 1.0 - keep.mean().item()
    assert hidden == pytest.approx(drop_rate, abs=0.01)  # sd of the mean ≈ 0.003 at 0.5


def test_has_hides_whole_cells_including_the_ragged_border():
    keep = hide_mask(50, 10, 10, 4, 0.5, generator=torch.Generator().manual_seed(1))  # cells 4,4,2 wide
    assert set(keep.unique().tolist()) <= {0.0, 1.0}
    for y0, y1 in ((0, 4), (4, 8), (8, 10)):
        for x0, x1 in ((0, 4), (4, 8), (8, 10)):
            cell = keep[:, 0, y0:y1, x0:x1].flatten(1)
            assert torch.equal(cell.amin(1), cell.amax(1)), "a cell is hidden or kept as a whole"


def test_has_sets_hidden_pixels_to_zero_and_keeps_the_rest():
    torch.manual_seed(0)
    images = torch.randn(8, 3, 16, 16)
    out = hide_and_seek(images, 4, 0.5)
    zero = (out == 0).all(1)  # (N, H, W)
    assert 0 < zero.float().mean() < 1
    assert torch.equal(out[:, :, ~zero[0]][0], images[:, :, ~zero[0]][0])


# ---------------------------------------------------------------------------------------------- ADL
@pytest.mark.parametrize("drop_rate", [0.0, 0.75, 1.0])
def test_adl_draws_the_drop_mask_with_the_stated_probability(drop_rate):
    torch.manual_seed(0)
    adl = ADL(drop_rate, 0.9).train()
    x = torch.rand(2, 4, 6, 6) + 0.1
    drop = adl.drop_mask(x.mean(1, keepdim=True))
    trials, dropped = 2000, 0
    for _ in range(trials):
        out = adl(x)
        if torch.equal(out, x * drop):
            dropped += 1
        else:
            assert torch.allclose(out, x * torch.sigmoid(x.mean(1, keepdim=True)))
    assert dropped / trials == pytest.approx(drop_rate, abs=0.03)


def test_adl_drop_mask_hides_exactly_the_positions_at_threshold_times_the_maximum():
    adl = ADL(1.0, 0.5)
    attention = torch.tensor([[[[0.0, 0.49], [0.5, 1.0]]], [[[2.0, 0.9], [1.0, 1.1]]]])
    expected = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]], [[[0.0, 1.0], [0.0, 0.0]]]])
    assert torch.equal(adl.drop_mask(attention), expected)


def test_adl_is_the_identity_in_eval_mode_and_the_model_matches_the_plain_trunk():
    x = torch.randn(3, 8, 5, 5)
    assert torch.equal(ADL(1.0, 0.9).eval()(x), x)
    torch.manual_seed(0)
    plain = build_model("tiny_gap_cnn", 3).eval()
    adl = build_model("tiny_gap_cnn", 3, {"method": "adl"}).eval()
    adl_state = adl.state_dict()
    renamed = {k.replace("features.11.0.", "features.11.").replace("features.17.0.", "features.17."): v
               for k, v in adl_state.items()}
    plain.load_state_dict(renamed)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(adl(images), plain(images))
    assert sum(isinstance(m, ADL) for m in adl.modules()) == len(BACKBONES.get("tiny_gap_cnn").adl_points)


# ------------------------------------------------------------------------------------------- CutMix
def test_cutmix_labels_are_area_weighted_and_sum_to_one():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    n, h, w = 6, 20, 30
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, h, w).clone()
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    mixed, soft = cutmix(images, labels, 3, beta=1.0, prob=1.0, generator=g)
    assert torch.allclose(soft.sum(1), torch.ones(n))
    for i in range(n):
        source = mixed[i, 0]  # pixel value = index of the image it came from
        own = (source == i).float().mean().item()
        expected = torch.zeros(3)
        for j in source.unique().long().tolist():
            expected[labels[j]] += (source == j).float().mean()
        assert torch.allclose(soft[i], expected, atol=1e-6), (i, own)


def test_cutmix_with_probability_zero_is_the_identity():
    images, labels = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 1, 0])
    mixed, soft = cutmix(images, labels, 2, beta=1.0, prob=0.0)
    assert torch.equal(mixed, images) and torch.equal(soft, torch.nn.functional.one_hot(labels, 2).float())


# --------------------------------------------------------------------------------------------- ACoL
def test_acol_erases_exactly_the_positions_at_or_above_the_threshold():
    feats = torch.rand(2, 5, 4, 4) + 1.0
    attention = torch.rand(2, 1, 4, 4)
    attention[0, 0, 0, 0] = 0.7  # on the threshold: erased (>=)
    out = erase(feats, attention, 0.7)
    erased = (out == 0).all(1, keepdim=True)
    assert torch.equal(erased, attention >= 0.7)
    assert torch.equal(out[~erased.expand_as(out)], feats[~erased.expand_as(out)])


def test_acol_attention_is_the_normalised_class_map_of_head_a_and_inference_takes_the_max():
    torch.manual_seed(0)
    model = AcolNet(torch.nn.Identity(), 4, 3, threshold=0.7).eval()
    feats, classes = torch.rand(2, 4, 5, 5), torch.tensor([2, 0])
    map_a = class_map(model.classifier, feats, classes)
    manual = torch.einsum("nc,nchw->nhw", model.classifier.weight[classes], feats) + model.classifier.bias[classes].view(-1, 1, 1)
    assert torch.allclose(map_a.squeeze(1), manual, atol=1e-6)
    norm_a = minmax(map_a)
    assert torch.allclose(norm_a.flatten(1).amax(1), torch.ones(2)) and torch.allclose(norm_a.flatten(1).amin(1), torch.zeros(2))
    erased = erase(feats, norm_a, 0.7)
    expected = torch.maximum(norm_a, minmax(class_map(model.classifier_b, erased, classes))).squeeze(1)
    assert torch.allclose(model.cam_maps(feats, classes), expected)


# ---------------------------------------------------------------------------------------------- SPG
def test_spg_seeds_follow_the_high_and_low_thresholds():
    attention = torch.linspace(0, 1, 100).view(1, 1, 10, 10)
    s = seeds(attention, high=0.6, low=0.2)
    assert torch.equal(s == 1.0, attention > 0.6)
    assert torch.equal(s == 0.0, attention < 0.2)
    assert torch.equal(s == IGNORE, (attention >= 0.2) & (attention <= 0.6))


def test_spg_background_wins_and_too_few_foreground_seeds_fall_back_to_the_maximum():
    assert seeds(torch.full((1, 1, 8, 8), 0.5), high=0.4, low=0.6).eq(0).all(), "bg overrides fg"
    attention = torch.zeros(1, 1, 10, 10)
    attention[0, 0, 0, :5] = torch.tensor([0.3, 0.5, 0.6, 0.65, 0.2])  # no pixel > 0.7 (< MIN_SEED_PIXELS)
    s = seeds(attention, high=0.7, low=0.01)
    assert MIN_SEED_PIXELS > 0 and torch.equal(s == 1.0, attention > 0.7 * 0.65)


# ------------------------------------------------------------------------------------ every method
@pytest.mark.parametrize("method", [m for m in WSOL_METHODS.names() if WSOL_METHODS.get(m).supervision == "labels"])
def test_every_label_method_gives_a_finite_loss_and_gradients(method):
    """On tiny_gap_cnn, or on the CPU ViT for a method that needs attention weights (tscam)."""
    torch.manual_seed(0)
    needs_attention = any(hook == "attention" for hook, _ in WSOL_METHODS.get(method).hooks)
    arch, side = ("vit_cpu_p8", 48) if needs_attention else ("tiny_gap_cnn", 32)
    model = build_model(arch, 3, {"method": method}).train()
    images, labels = torch.randn(4, 3, side, side), torch.tensor([0, 1, 2, 1])
    loss, logits = training_loss(model, images, labels, {"method": method})
    loss.backward()
    assert torch.isfinite(loss) and logits.shape == (4, 3)
    assert all(p.grad is not None for p in model.features.parameters())
    model.eval()
    with torch.no_grad():
        assert model(images).shape == (4, 3)


@pytest.mark.parametrize("arch", ["resnet18", "vgg16_gap", "mobilenet_v3_large", "efficientnet_b0", "densenet121",
                                  "convnext_tiny"])
def test_hooks_exist_for_every_registered_backbone(arch):
    info = BACKBONES.get(arch)
    for method in ("adl", "acol", "spg"):
        model = build_model(arch, 2, {"method": method}).train()
        size = 2 * info.size_divisor
        loss, _ = training_loss(model, torch.randn(2, 3, size, size), torch.tensor([0, 1]), {"method": method})
        assert torch.isfinite(loss), (arch, method)


def test_a_backbone_without_hooks_is_refused_with_the_reason(monkeypatch):
    from pipeline.wsol import adl

    with pytest.raises(CamlocError, match="declares no ADL insertion points"):
        adl.insert_adl(torch.nn.Sequential(), (), 0.5, 0.5, "some_net")
