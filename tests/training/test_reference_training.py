"""Training as the reference does: the resize-then-random-crop transform, its params validation, the
reference's lr groups (lr_classifier_ratio), Nesterov SGD and its step decay; defaults unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.datasets.loader import TrainDataset, crop_box, resize_uint8
from pipeline.errors import ParamsError
from pipeline.models import build_backbone
from pipeline.params import AugmentParams, BackboneParams, load_params
from pipeline.training.loop import make_optimizer, make_scheduler

REPO = Path(__file__).resolve().parents[2]


def _images(n=4, side=12, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def test_resize_crop_takes_a_uniform_window_of_the_cache_and_flips():
    images = _images(side=12)
    ds = TrainDataset(images, np.zeros(4), image_size=10, augment=AugmentParams(hflip=True), seed=0,
                      transform="resize_crop")
    seen_offsets, flips = set(), 0
    for epoch in range(40):
        out = ds[(epoch, 1)][0].permute(1, 2, 0).numpy()  # (10, 10, 3)
        matches = [(y, x, f) for y in range(3) for x in range(3) for f in (False, True)
                   if np.array_equal(out, (images[1][y:y + 10, x:x + 10])[:, ::-1] if f else images[1][y:y + 10, x:x + 10])]
        assert len(matches) == 1, "every sample is an unresampled 10x10 window of the 12x12 cache, maybe flipped"
        seen_offsets.add(matches[0][:2])
        flips += matches[0][2]
    assert seen_offsets == {(y, x) for y in range(3) for x in range(3)}  # both ends reachable (randint inclusive)
    assert 5 < flips < 35
    assert torch.equal(ds[(3, 2)][0], ds[(3, 2)][0])  # a function of (seed, epoch, index) only


def test_resize_crop_resizes_the_cache_first_when_asked():
    images = _images(side=16)
    ds = TrainDataset(images, np.zeros(4), image_size=10, augment=AugmentParams(hflip=False), seed=1,
                      transform="resize_crop", resize=12)
    out = ds[(0, 0)][0].permute(1, 2, 0).numpy()
    resized = resize_uint8(images[0], 12)
    assert any(np.array_equal(out, resized[y:y + 10, x:x + 10]) for y in range(3) for x in range(3))


def test_default_transform_is_the_random_resized_crop_as_before():
    """Same rng stream, same pixels: the default path draws crop_box then the flip, as it always did."""
    images = _images(side=16)
    aug = AugmentParams()
    ds = TrainDataset(images, np.zeros(4), image_size=8, augment=aug, seed=5)
    for epoch, i in [(0, 0), (1, 3), (7, 2)]:
        rng = np.random.default_rng([5, epoch, i])
        y, x, h, w = crop_box(rng, 16, aug.scale_min)
        expected = resize_uint8(images[i][y:y + h, x:x + w], 8)
        if aug.hflip and rng.random() < 0.5:
            expected = expected[:, ::-1]
        assert np.array_equal(ds[(epoch, i)][0].permute(1, 2, 0).numpy(), expected)


def _params_with(tmp_path, backbone: dict, cache_size: int | None = None):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["backbones"] = {"b": backbone}
    if cache_size:
        raw["prepare"]["cache_size"] = cache_size
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(path)


BAD = [
    ({"arch": "resnet50_wsol", "train_transform": "center_crop"}, None, "backbones.b.train_transform", "resize_crop"),
    ({"arch": "resnet50_wsol", "train_resize": 256}, 256, "backbones.b.train_resize", "resize_crop"),
    ({"arch": "resnet50_wsol", "train_transform": "resize_crop", "image_size": 224, "train_resize": 200}, 256,
     "backbones.b.train_resize", ">= image_size"),
    ({"arch": "resnet50_wsol", "train_transform": "resize_crop", "image_size": 224, "train_resize": 288}, 256,
     "backbones.b.train_resize", "prepare.cache_size"),
    ({"arch": "resnet50", "large_feature_map": True}, None, "backbones.b.large_feature_map", "vgg16_wsol"),
    ({"arch": "resnet50_wsol", "optimizer": "adamw", "nesterov": True}, None, "backbones.b.nesterov", "sgd"),
    ({"arch": "inception_v3_wsol", "image_size": 120}, None, "backbones.b.image_size", "multiple of 16"),
]


@pytest.mark.parametrize("backbone,cache,key,hint", BAD)
def test_bad_training_params_name_the_key(tmp_path, backbone, cache, key, hint):
    with pytest.raises(ParamsError) as err:
        _params_with(tmp_path, backbone, cache)
    assert key in str(err.value) and hint in str(err.value)


def test_a_reference_recipe_validates(tmp_path):
    p = _params_with(tmp_path, {"arch": "vgg16_wsol", "large_feature_map": True, "train_transform": "resize_crop",
                                "image_size": 224, "schedule": "reference_step", "nesterov": True}, 256)
    bp = p.backbones["b"]
    assert (bp.large_feature_map, bp.train_transform, bp.train_resize, bp.nesterov) == (True, "resize_crop", None, True)
    assert BackboneParams().train_transform == "random_resized_crop" and BackboneParams().large_feature_map is None


def test_reference_step_decays_one_epoch_before_step():
    """The reference calls adjust_learning_rate(e) before 1-based epoch e: ×0.1 when e % freq == 0."""
    steps = 3
    for schedule, decayed_epochs in (("reference_step", [2, 5]), ("step", [3, 6])):  # 0-based first epochs
        bp = BackboneParams(schedule=schedule, step_epochs=3, epochs=7)
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = make_scheduler(opt, bp, steps)
        lrs = []
        for _ in range(bp.epochs):
            lrs.append(opt.param_groups[0]["lr"])
            for _ in range(steps):
                opt.step()
                sched.step()
        reference = [0.1 ** sum(e + 1 >= d + 1 for d in decayed_epochs) for e in range(bp.epochs)]
        np.testing.assert_allclose(lrs, reference, rtol=1e-9)


@pytest.mark.parametrize(("name", "head_only"), [
    ("resnet50_wsol", ("features.layer4.", "classifier.")),
    ("vgg16_wsol", ("features.conv6.", "classifier.")),
    ("inception_v3_wsol", ("features.SPG_A3_1b.", "features.SPG_A3_2b.", "classifier.")),
])
def test_reference_models_put_the_reference_classifier_layers_in_the_head_group(name, head_only):
    model = build_backbone(name, 5)
    opt = make_optimizer(model, BackboneParams(lr=0.01, head_lr_mult=10.0, nesterov=True))
    trunk_group, head_group = opt.param_groups
    assert head_group["lr"] == pytest.approx(0.1) and head_group["nesterov"] and trunk_group["nesterov"]
    by_id = {id(p): n for n, p in model.named_parameters()}
    head = {by_id[id(p)] for p in head_group["params"]}
    trunk = {by_id[id(p)] for p in trunk_group["params"]}
    assert head == {n for n in by_id.values() if n.startswith(head_only)}
    assert trunk | head == set(by_id.values()) and not trunk & head


def test_gapnet_groups_are_unchanged_for_other_backbones():
    model = build_backbone("tiny_gap_cnn", 3)
    trunk_group, head_group = make_optimizer(model, BackboneParams()).param_groups
    assert [id(p) for p in trunk_group["params"]] == [id(p) for p in model.features.parameters()]
    assert [id(p) for p in head_group["params"]] == [id(p) for p in model.classifier.parameters()]
    assert trunk_group["nesterov"] is False
