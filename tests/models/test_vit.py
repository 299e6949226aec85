"""Vision transformers (issue 21): the attention map methods against an independent computation from the
blocks' qkv weights, TS-CAM's formula, the TS-CAM model's GAP identity, TS-CAM's checkpoint layout, and
the refusal of attention methods on a CNN."""

from __future__ import annotations

import pytest
import torch

from pipeline.cams import compute_maps
from pipeline.cams.methods import forward_batch
from pipeline.errors import CamlocError
from pipeline.models import build_backbone
from pipeline.models.vit_layouts import detect_tscam, map_tscam
from pipeline.wsol.build import build_model

ARCH, SIDE, GRID = "vit_cpu_p8", 48, 6  # patch 8: a 6×6 token grid at 48 px, 4 blocks, 3 heads


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(seed))


def _independent_attention(vit, x: torch.Tensor) -> torch.Tensor:
    """Each block's head-averaged softmax(q·kᵀ·scale), recomputed from its `qkv` weights: (L, N, T, T), float64."""
    out = []
    with torch.no_grad():
        tokens = vit.norm_pre(vit._pos_embed(vit.patch_embed(x)))
        for blk in vit.blocks:
            h = blk.norm1(tokens).double()
            n, t, d = h.shape
            heads = blk.attn.num_heads
            qkv = h @ blk.attn.qkv.weight.double().T + blk.attn.qkv.bias.double()
            q, k, _ = qkv.reshape(n, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            a = torch.softmax(q @ k.transpose(-2, -1) * (d // heads) ** -0.5, dim=-1)  # (N, heads, T, T)
            out.append(a.mean(1))
            tokens = blk(tokens)
    return torch.stack(out)


def _minmax(m: torch.Tensor) -> torch.Tensor:
    flat = m.flatten(1).double()
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo)).view_as(m)


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return build_backbone(ARCH, 4).eval()


def test_cls_attention_and_rollout_equal_an_independent_computation(vit):
    x, classes = _images(3), torch.tensor([0, 1, 3])
    attn = _independent_attention(vit.features.vit, x)  # (L, N, T, T)
    prefix = attn.shape[-1] - GRID * GRID
    cls = attn[-1][:, 0, prefix:].reshape(3, GRID, GRID)
    roll = torch.eye(attn.shape[-1], dtype=torch.float64).expand(3, -1, -1)
    for a in attn:  # Abnar & Zuidema: Â = rownorm(½A + ½I), R = Â_L ··· Â_1
        mixed = 0.5 * a + 0.5 * torch.eye(a.shape[-1], dtype=torch.float64)
        roll = (mixed / mixed.sum(-1, keepdim=True)) @ roll
    rollout = roll[:, 0, prefix:].reshape(3, GRID, GRID)
    for method, want in (("cls_attention", cls), ("attention_rollout", rollout)):
        got = compute_maps(vit, x, classes, method)
        assert got.shape == (3, GRID, GRID)
        torch.testing.assert_close(_minmax(got), _minmax(want), rtol=0, atol=1e-5, msg=method)
    assert not torch.allclose(_minmax(cls), _minmax(rollout), atol=1e-3)  # two different maps


def test_tscam_map_is_summed_class_attention_times_the_class_map(vit):
    x, classes = _images(2, seed=1), torch.tensor([2, 0])
    attn = _independent_attention(vit.features.vit, x)
    prefix = attn.shape[-1] - GRID * GRID
    summed = attn.sum(0)[:, 0, prefix:].reshape(2, GRID, GRID)
    with torch.no_grad():
        feats = vit.features(x).double()
    class_maps = torch.einsum("nc,nchw->nhw", vit.classifier.weight.double()[classes], feats)
    torch.testing.assert_close(compute_maps(vit, x, classes, "tscam").double(), summed * class_maps,
                               rtol=1e-4, atol=1e-5)


def test_tscam_trained_model_keeps_the_gap_identity_and_maps_with_its_conv_head():
    torch.manual_seed(1)
    model = build_model(ARCH, 5, {"method": "tscam"}).eval()
    x, classes = _images(2, seed=2), torch.tensor([4, 1])
    with torch.no_grad():
        feats = model.features(x)  # the 3×3 conv's class maps (N, 5, 6, 6)
        assert feats.shape == (2, 5, GRID, GRID)
        grid = model.features[0](x)
        conv_logits = torch.nn.functional.conv2d(grid, model.head.weight, model.head.bias, padding=1).mean((2, 3))
        torch.testing.assert_close(model(x), conv_logits, rtol=0, atol=1e-5)  # TS-CAM's head: conv, then GAP
        torch.testing.assert_close(model(x), model.classifier(feats.mean((2, 3))), rtol=0, atol=1e-6)
    attn = _independent_attention(model.features[0].vit, x)
    prefix = attn.shape[-1] - GRID * GRID
    want = attn.sum(0)[:, 0, prefix:].reshape(2, GRID, GRID) * feats.double()[torch.arange(2), classes]
    for method in ("cam", "tscam"):  # its inference map is TS-CAM's, under both names
        torch.testing.assert_close(compute_maps(model, x, classes, method).double(), want, rtol=1e-4, atol=1e-5)
    assert not any(p.requires_grad for p in model.classifier.parameters())  # the identity is not trained


def _tscam_layout(model) -> dict[str, torch.Tensor]:
    """camloc's TscamNet state written the way TS-CAM's train_cam.py saves one (DataParallel, `state_dict`)."""
    state = {}
    for k, v in model.state_dict().items():
        if k.startswith("features.0.vit."):
            state[f"module.{k.removeprefix('features.0.vit.')}"] = v.clone()
        elif k.startswith("features.1."):
            state[f"module.head.{k.removeprefix('features.1.')}"] = v.clone()
    return {"epoch": 60, "state_dict": state}


def test_a_checkpoint_in_tscam_layout_reproduces_the_logits(tmp_path):
    torch.manual_seed(2)
    seeded = build_model(ARCH, 3, {"method": "tscam"}).eval()
    ckpt = _tscam_layout(seeded)
    assert detect_tscam(ckpt) and detect_tscam(ckpt["state_dict"].keys())
    path = tmp_path / "tscam_cub.pth"
    torch.save(ckpt, path)
    torch.manual_seed(99)  # another init: only the file can make the logits equal
    loaded = build_model(ARCH, 3, {"method": "tscam"}, weights=str(path)).eval()
    x = _images(2, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), seeded(x), rtol=0, atol=1e-6)
    mapped = map_tscam(ckpt)
    assert set(mapped) == set(seeded.state_dict())


def test_a_deit_checkpoint_is_not_taken_for_tscam_and_a_wrong_shape_is_refused_naming_keys(tmp_path):
    torch.manual_seed(3)
    seeded = build_model(ARCH, 3, {"method": "tscam"})
    ckpt = _tscam_layout(seeded)
    deit = {k.removeprefix("module."): v for k, v in ckpt["state_dict"].items() if "head" not in k}
    deit |= {"head.weight": torch.zeros(3, 96), "head.bias": torch.zeros(3)}  # DeiT's linear head
    assert not detect_tscam({"model": deit})
    bad = dict(ckpt["state_dict"], **{"module.blocks.1.attn.qkv.weight": torch.zeros(10, 96)})
    torch.save({"state_dict": bad}, tmp_path / "bad.pth")
    with pytest.raises(CamlocError, match=r"blocks\.1\.attn\.qkv\.weight") as e:
        build_model(ARCH, 3, {"method": "tscam"}, weights=str(tmp_path / "bad.pth"))
    assert "\n" not in str(e.value)
    head = dict(ckpt["state_dict"], **{"module.head.weight": torch.zeros(3, 50, 3, 3)})
    with pytest.raises(CamlocError, match=r"head\.weight \(3, 50, 3, 3\)"):
        map_tscam({"state_dict": head})


def test_attention_methods_and_tscam_training_are_refused_on_a_cnn_in_one_line(tmp_path):
    cnn = build_backbone("tiny_gap_cnn", 3).eval()
    for method in ("cls_attention", "attention_rollout", "tscam"):
        with pytest.raises(CamlocError, match="attention weights") as e:
            compute_maps(cnn, torch.randn(1, 3, 32, 32), [0], method)
        assert "\n" not in str(e.value)
    assert forward_batch(cnn, torch.randn(1, 3, 32, 32)).attention is None  # nothing recorded for a CNN

    from pipeline.errors import ParamsError
    from pipeline.params import load_params

    base = ("backbones:\n  tiny_gap_cnn: {image_size: 32}\n  vit: {arch: vit_cpu_p8, image_size: 32}\n"
            "prepare: {cache_size: 64}\n")
    cases = {"cams: {methods: [cam, cls_attention]}\n": "cams.methods",
             "cams: {extra_methods: {tiny_gap_cnn: [tscam]}}\n": "cams.extra_methods.tiny_gap_cnn"}
    for extra, key in cases.items():
        (tmp_path / "p.yaml").write_text(base + extra)
        with pytest.raises(ParamsError, match=key) as e:
            load_params(tmp_path / "p.yaml")
        assert "\n" not in str(e.value) and "tiny_gap_cnn" in str(e.value)
    (tmp_path / "p.yaml").write_text(base + "cams: {extra_methods: {vit: [cls_attention, tscam]}}\n")
    params = load_params(tmp_path / "p.yaml")
    assert [j.name for j in params.cams.jobs("vit")][-2:] == ["cls_attention", "tscam"]
    assert "tscam" not in [j.name for j in params.cams.jobs("tiny_gap_cnn")]
    (tmp_path / "p.yaml").write_text(base.replace("{image_size: 32}\n  vit", "{image_size: 32, wsol: {method: tscam}}"
                                                   "\n  vit"))
    with pytest.raises(ParamsError, match="wsol.method.*attention"):
        load_params(tmp_path / "p.yaml")
