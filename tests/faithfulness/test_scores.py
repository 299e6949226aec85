"""Average Drop / Increase in Confidence and deletion / insertion (PROTOCOL §6) on tiny models whose
scores are known in closed form, plus the properties the definitions imply."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.faithfulness import road as R
from pipeline.faithfulness import scores as F
from pipeline.faithfulness.scorer import Scorer
from pipeline.metrics.faithfulness import trapezoid_auc

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)  # normalised value z = (v − 127.5) / 63.75


class MeanLinear(nn.Module):
    """logits = A · (spatial mean of the normalised input, per channel) + b: linear in the pixels."""

    def __init__(self, a, b):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=torch.float32), requires_grad=False)  # (K, 3)
        self.b = nn.Parameter(torch.tensor(b, dtype=torch.float32), requires_grad=False)  # (K,)

    def forward(self, x):
        return x.mean((2, 3)) @ self.a.T + self.b


class SpatialLinear(nn.Module):
    """Class 0's logit = Σ_p w_p · z_p(channel 0) / P, class 1's = 0: each pixel's contribution is w_p z_p."""

    def __init__(self, w: np.ndarray):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float32), requires_grad=False)  # (s, s)

    def forward(self, x):
        l0 = (x[:, 0] * self.w).mean((1, 2))
        return torch.stack([l0, torch.zeros_like(l0)], dim=1)


def _sigmoid(t):
    return 1.0 / (1.0 + np.exp(-t))


def _constant_images(n: int, s: int, value=(255, 255, 255)) -> np.ndarray:
    return np.broadcast_to(np.array(value, np.uint8), (n, s, s, 3)).copy()


def _small_conv_net() -> nn.Module:
    """A seeded random conv → GAP → linear classifier over 4 classes."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 4)).eval()


def _run(model, images, labels, maps, steps, batch_size=64, seed=0, road=False, **kw):
    scorer = Scorer(model, MEAN, STD, batch_size)
    data = F.prepare_images(scorer, images, labels, range(len(images)), seed, road=road)
    return data, F.method_faithfulness(scorer, data, maps, steps, seed, **kw)


def test_closed_form_linear_model_on_a_constant_image():
    # pixel 255 → z = 2 on every channel; logit0 = z_0, logit1 = 0: Y(label 0) = σ(2), Y(label 1) = 1 − σ(2)
    model = MeanLinear([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [0.0, 0.0])
    s, steps = 5, 4  # P = 25 pixels: steps replace ⌊i·25/4⌋ = 0, 6, 12, 18, 25 of them
    images, labels = _constant_images(2, s), np.array([0, 1])
    maps = np.full((2, s, s), 0.5)
    data, res = _run(model, images, labels, maps, steps)
    clean, y0 = data.clean, _sigmoid(2.0)
    np.testing.assert_allclose(clean, [y0, 1 - y0], rtol=1e-6)
    # torchcam's AD: the map halves the normalised value z = 2 → 1: O = σ(1), 1 − σ(1)
    np.testing.assert_allclose(res.masked_score, [_sigmoid(1.0), 1 - _sigmoid(1.0)], rtol=1e-6)
    # the pixel variant halves the pixel 255 → 127.5 → z = 0 → O = 0.5 for both classes
    np.testing.assert_allclose(res.masked_score_pixel, [0.5, 0.5], rtol=1e-6)
    m = F.summary(data, res)
    # AD: image 0 drops (Y − O)/(Y + 1e-7), image 1 rises (no drop): mean · 100; IC: one of two rises
    assert m["avg_drop"] == pytest.approx(100 * ((y0 - _sigmoid(1.0)) / (y0 + 1e-7)) / 2, rel=1e-5)
    assert m["avg_drop_pixel"] == pytest.approx(100 * ((y0 - 0.5) / (y0 + 1e-7)) / 2, rel=1e-5)
    assert m["increase_in_confidence"] == 50.0 and m["increase_in_confidence_pixel"] == 50.0
    # deletion: a fraction f of the pixels at the mean (z = 0) → logit0 = 2(1 − f)
    f = np.array([0, 6, 12, 18, 25]) / 25
    curve0, curve1 = _sigmoid(2 * (1 - f)), 1 - _sigmoid(2 * (1 - f))
    np.testing.assert_allclose(res.deletion, [curve0, curve1], rtol=1e-5)
    trapezoid = lambda c: (c[0] / 2 + c[1:-1].sum() + c[-1] / 2) / steps  # noqa: E731
    assert m["deletion_auc"] == pytest.approx((trapezoid(curve0) + trapezoid(curve1)) / 2, rel=1e-5)
    # insertion: the blurred copy of a constant image is the image, so the curve stays at Y: AUC = mean Y
    np.testing.assert_allclose(res.insertion, [[y0] * 5, [1 - y0] * 5], rtol=1e-5)
    assert m["insertion_auc"] == pytest.approx(0.5, rel=1e-5)


def test_average_drop_of_an_all_ones_map_is_zero():
    model = _small_conv_net()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 12, 12, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, 6)
    data, res = _run(model, images, labels, np.ones((6, 12, 12)), steps=3, batch_size=5)
    m = F.summary(data, res)
    assert m["avg_drop"] == 0.0 and m["increase_in_confidence"] == 0.0
    assert m["avg_drop_pixel"] == 0.0 and m["increase_in_confidence_pixel"] == 0.0
    # a map of zeros removes the image: the scores move, so AD is no longer 0
    data, res = _run(model, images, labels, np.zeros((6, 12, 12)), steps=3)
    assert F.summary(data, res)["avg_drop"] > 0 and F.summary(data, res)["avg_drop_pixel"] > 0


def test_a_perfect_map_deletes_faster_than_its_reverse():
    rng = np.random.default_rng(1)
    s = 8
    w = rng.random((s, s)) * 40  # per-pixel weight of class 0's logit
    images = rng.integers(128, 256, (4, s, s, 3), dtype=np.uint8)  # channel 0 above the mean: z > 0
    z = (images[..., 0].astype(np.float64) - 127.5) / 63.75
    contribution = w[None] * z  # (N, s, s): each pixel's share of the logit
    perfect = contribution / contribution.max(axis=(1, 2), keepdims=True)
    labels = np.zeros(4, dtype=np.int64)
    model = SpatialLinear(w)
    _, good = _run(model, images, labels, perfect, steps=8)
    _, bad = _run(model, images, labels, 1.0 - perfect, steps=8)
    assert (good.deletion <= bad.deletion + 1e-6).all()  # pointwise, not just on average
    assert (trapezoid_auc(good.deletion) < trapezoid_auc(bad.deletion)).all()
    assert 0 <= trapezoid_auc(good.deletion).min() and trapezoid_auc(bad.insertion).max() <= 1


def test_ties_are_broken_by_a_seeded_permutation_shared_by_every_method():
    flat = np.zeros((1, 6, 6))
    a, b = F.pixel_ranks(flat, [3], 0), F.pixel_ranks(flat, [3], 0)
    c = F.pixel_ranks(flat, [4], 0)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a[0], np.arange(36))  # not raster order
    assert sorted(a[0].tolist()) == list(range(36))
    assert F.pixel_ranks(flat, [3], 0, ties="raster")[0].tolist() == list(range(36))  # torchcam's
    # a map with a strict order ignores the permutation; a two-level map keeps each level together
    ramp = np.arange(36.0).reshape(1, 6, 6)
    assert F.pixel_ranks(ramp, [9], 0)[0].tolist() == list(range(35, -1, -1))
    two = (np.arange(36) % 2).reshape(1, 6, 6).astype(float)
    rank = F.pixel_ranks(two, [9], 0)[0]
    assert set(np.flatnonzero(rank < 18).tolist()) == set(range(1, 36, 2))
    with pytest.raises(ValueError, match="random, raster"):
        F.pixel_ranks(flat, [0], 0, ties="rows")


def test_road_combined_score_of_a_constant_map_is_zero():
    # a constant map keeps no pixel at any percentile in either order (nothing is < the percentile): MoRF
    # and LeRF impute the same inputs with the same noise, so (LeRF − MoRF) / 2 = 0
    model = _small_conv_net()
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (3, 12, 12, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, 3)
    data, res = _run(model, images, labels, np.full((3, 12, 12), 0.5), steps=3, road=True)
    keep = R.keep_masks(torch.full((3, 12, 12), 0.5))
    assert not keep.any()
    road = R.road_per_image(data.clean, res.road)
    np.testing.assert_allclose(road["road_combined"], 0.0, atol=1e-7)
    assert np.abs(road["road_morf"]).max() > 1e-3  # the imputed inputs did move the score
    # a map that ranks the pixels: MoRF removes the top of the map first, LeRF the bottom
    ramp = np.broadcast_to(np.linspace(0, 1, 144).reshape(12, 12), (3, 12, 12)).copy()
    keep = R.keep_masks(torch.tensor(ramp))  # (N, 2, L, s, s)
    assert keep[0, 0, 0].sum() == 15 and keep[0, 0, 0].view(-1)[:15].all()  # MoRF p=10 keeps the lowest 10%
    assert keep[0, 1, 0].view(-1)[-15:].all() and keep[0, 1, 0].sum() == 15  # LeRF p=10 keeps the top 10%


def test_noisy_imputation_fills_a_hole_smoothly_and_keeps_the_rest():
    ramp = torch.linspace(-1, 1, 16).view(1, 1, 1, 16).expand(1, 3, 16, 16).contiguous()
    keep = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    keep[..., 4:12, 4:12] = False
    out = R.impute(ramp.numpy(), keep[:, 0].numpy(), R.ROAD_ITERS, R.ROAD_TOL)
    np.testing.assert_allclose(out, ramp.numpy(), atol=1e-6, rtol=0)  # a linear image is its own harmonic fill
    x = torch.randn(2, 3, 16, 16)
    gauss = torch.randn(2, len(R.ROAD_PERCENTILES), 3, 16, 16)
    maps = torch.rand(2, 16, 16)
    kept = R.keep_masks(maps)  # (2, 2, L, 16, 16)
    lv = len(R.ROAD_PERCENTILES)
    values = x.unsqueeze(1).expand(2, 2 * lv, 3, 16, 16).reshape(-1, 3, 16, 16)  # ordered (image, order, percentile)
    eps = gauss.unsqueeze(1).expand(2, 2, lv, 3, 16, 16).reshape(-1, 3, 16, 16)
    inputs = R.noisy_imputed(values, kept.reshape(-1, 1, 16, 16), eps).view(2, 2, lv, 3, 16, 16)
    for i in range(2):
        assert torch.equal(inputs[i][kept[i].unsqueeze(2).expand_as(inputs[i])],
                           x[i].expand_as(inputs[i])[kept[i].unsqueeze(2).expand_as(inputs[i])])


def test_batch_size_does_not_change_the_results():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3)).eval()
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (5, 10, 10, 3), dtype=np.uint8)
    labels, maps = rng.integers(0, 3, 5), rng.random((5, 10, 10))
    _, one = _run(model, images, labels, maps, steps=4, batch_size=1, road=True)
    _, many = _run(model, images, labels, maps, steps=4, batch_size=100, road=True)
    for name in ("masked_score", "masked_score_pixel", "deletion", "insertion", "road"):
        np.testing.assert_allclose(getattr(one, name), getattr(many, name), rtol=1e-5, atol=1e-7)


def test_step_counts_blur_and_auc_helpers():
    assert F.step_counts(25, 4).tolist() == [0, 6, 12, 18, 25]
    assert F.blur_kernel(224) == (11, 5.0)
    side, sigma = F.blur_kernel(112)
    assert side % 2 == 1 and sigma == 2.5
    x = torch.zeros(1, 3, 16, 16)
    x[..., 8, 8] = 100.0
    y = F.gaussian_blur(x)
    assert y.shape == x.shape and y.sum().item() == pytest.approx(300.0, rel=1e-5) and y.max() < 100
    np.testing.assert_allclose(trapezoid_auc(np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])), [1.0, 0.25])


class CountingScorer(Scorer):
    """A Scorer that counts the inputs it scores."""

    scored = 0

    def __call__(self, inputs, labels):
        self.scored += len(inputs)
        return super().__call__(inputs, labels)


def _two_methods_on_four_images(seed: int, road: bool):
    """A counting scorer on the small conv net, four seeded 12-px images prepared, two random maps."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (4, 12, 12, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, 4)
    scorer = CountingScorer(_small_conv_net(), MEAN, STD, 16)
    data = F.prepare_images(scorer, images, labels, range(4), 0, road=road)
    return scorer, data, rng.random((4, 12, 12)), rng.random((4, 12, 12))


def test_method_road_scores_a_system_once_across_methods_and_equals_scoring_alone():
    scorer, data, a, b = _two_methods_on_four_images(5, road=True)
    alone = {name: F.method_road(scorer, data, m) for name, m in (("a", a), ("b", b))}
    seen, before = {}, scorer.scored
    shared = {name: F.method_road(scorer, data, m, seen) for name, m in (("a", a), ("b", b), ("a2", 0.5 * a))}
    systems = 4 * 2 * len(R.ROAD_PERCENTILES)
    assert scorer.scored - before == 2 * systems  # "a2" ranks exactly as "a": looked up, not scored again
    np.testing.assert_allclose(shared["a"], alone["a"], atol=1e-6)  # chunk-mates differ, results do not
    np.testing.assert_allclose(shared["b"], alone["b"], atol=1e-6)
    np.testing.assert_array_equal(shared["a2"], shared["a"])


def test_method_faithfulness_scores_an_image_order_once_across_methods_and_equals_scoring_alone():
    scorer, data, a, b = _two_methods_on_four_images(6, road=False)
    alone = {name: F.method_faithfulness(scorer, data, m, 4, 0) for name, m in (("a", a), ("b", b))}
    seen, before = {}, scorer.scored
    shared = {name: F.method_faithfulness(scorer, data, m, 4, 0, seen=seen)
              for name, m in (("a", a), ("b", b), ("a2", 0.5 * a), ("a3", a.copy()))}
    per_method = 4 * (2 * 3 + 2)  # 3 interior steps of deletion and insertion, AD and AD_pixel per image
    # "a2" orders the pixels as "a" (its steps are looked up) but masks the image by other values (AD is
    # scored); "a3" equals "a" and is looked up whole
    assert scorer.scored - before == 2 * per_method + 4 * 2
    for name in ("masked_score", "masked_score_pixel", "deletion", "insertion"):
        np.testing.assert_allclose(getattr(shared["a"], name), getattr(alone["a"], name), atol=1e-6)
        np.testing.assert_allclose(getattr(shared["b"], name), getattr(alone["b"], name), atol=1e-6)
        np.testing.assert_array_equal(getattr(shared["a3"], name), getattr(shared["a"], name))
    np.testing.assert_array_equal(shared["a2"].deletion, shared["a"].deletion)
    assert not np.allclose(shared["a2"].masked_score, shared["a"].masked_score)


def test_a_step_whose_replaced_pixels_equal_another_methods_is_looked_up_though_the_orders_differ():
    scorer, data, a, _ = _two_methods_on_four_images(7, road=False)
    swapped = a.copy().reshape(4, -1)
    low = np.argsort(swapped, axis=1)[:, :2]  # each image's two least relevant pixels: past every interior step
    rows = np.arange(4)[:, None]
    swapped[rows, low] = swapped[rows, low[:, ::-1]]
    swapped = swapped.reshape(a.shape)
    assert not np.array_equal(F.pixel_ranks(a, data.keys, 0), F.pixel_ranks(swapped, data.keys, 0))
    seen = {}
    F.method_faithfulness(scorer, data, a, 4, 0, seen=seen)
    before = scorer.scored
    res = F.method_faithfulness(scorer, data, swapped, 4, 0, seen=seen)
    assert scorer.scored - before == 4 * 2  # only AD's two inputs per image: every step was looked up
    np.testing.assert_array_equal(res.deletion, F.method_faithfulness(scorer, data, a, 4, 0, seen=seen).deletion)
