"""The cams stage and `camloc cams --checkpoint/--images`: layout, values, reruns, bad inputs, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pipeline.cams import compute_maps
from pipeline.cams.dump import load_checkpoint
from pipeline.cli import cli
from pipeline.contracts import Paths
from pipeline.datasets.loader import eval_batch
from pipeline.errors import CamlocError, ParamsError
from pipeline.models import build_backbone
from pipeline.models.checkpoint import save_model
from pipeline.params import BackboneParams, CamsParams, Params
from pipeline.stages import cams as cams_stage

S, SIZE, CLASSES = 40, 32, 4
SPLIT_SIZES = {"val": 5, "test": 7, "test_official": 6}
METHODS = ("cam", "gradcam", "scorecam", "eigencam", "center")


def _prepared(root: Path, n_total: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for split, n in SPLIT_SIZES.items():
        rows += [{"image_id": f"{split}_{i:03d}", "label": int(rng.integers(CLASSES)), "split": split} for i in range(n)]
    df = pd.DataFrame(rows)
    df["cache_index"] = np.arange(len(df))
    out = root / "prepared"
    out.mkdir()
    df.to_parquet(out / "samples.parquet", index=False)
    np.save(out / "images.npy", rng.integers(0, 256, (len(df), S, S, 3), dtype=np.uint8))
    (out / "classes.json").write_text(json.dumps({"class_names": [f"c{i}" for i in range(CLASSES)],
                                                  "species": ["cat"] * CLASSES}))
    return out


def _model_dir(root: Path, backbone: str = "tiny_gap_cnn", name: str = "model") -> Path:
    torch.manual_seed(0)
    model = build_backbone("tiny_gap_cnn", CLASSES)
    meta = {"backbone": backbone, "arch": "tiny_gap_cnn", "num_classes": CLASSES, "image_size": SIZE,
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
            "class_names": [f"c{i}" for i in range(CLASSES)]}
    save_model(root / name, model, meta)
    return root / name


def _params(**cams) -> Params:
    return Params(backbones={"tiny_gap_cnn": BackboneParams(image_size=SIZE)},
                  cams=CamsParams(**{"methods": METHODS, "batch_size": 4, **cams}))


def _run(params: Params, backbone: str, prepared: Path, model_dir: Path, out: Path) -> str:
    """The cams stage reading `model_dir` and writing `out`: both are named after the backbone entry
    (`paths.model_dir(B)`, `paths.cams_dir(B)`), so pass folders `.../tiny_gap_cnn`."""
    assert model_dir.name == out.name == "tiny_gap_cnn", (model_dir, out)
    return cams_stage.run(params, Paths(prepared=prepared, models=model_dir.parent, cams=out.parent), backbone)


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    root = tmp_path_factory.mktemp("cams")
    prepared, model_dir = _prepared(root), _model_dir(root / "models", name="tiny_gap_cnn")
    out = root / "cams" / "tiny_gap_cnn"
    summary = _run(_params(), "tiny_gap_cnn", prepared, model_dir, out)
    return root, prepared, model_dir, out, summary


def test_stage_writes_the_contract_layout(stage):
    root, prepared, model_dir, out, summary = stage
    assert "images/s" in summary and "KB" in summary
    meta = json.loads((out / "meta.json").read_text())
    assert meta["methods"] == list(METHODS) and meta["dtype"] == "float16" and meta["image_size"] == SIZE
    h, w = meta["map_size"]
    assert (h, w) == (SIZE // 8, SIZE // 8)
    preds = pd.read_parquet(out / "predictions.parquet")
    assert list(preds["split"].unique()) == list(SPLIT_SIZES)
    for split, n in SPLIT_SIZES.items():
        index = pd.read_parquet(out / split / "index.parquet")
        assert list(index.columns) == ["image_id", "label", "pred", "top5", "top5_prob"] and len(index) == n
        assert all(len(t) == CLASSES and t[0] == p for t, p in zip(index["top5"], index["pred"], strict=True))
        for m in METHODS:
            for kind in ("gt", "pred"):
                arr = np.load(out / split / f"{m}_{kind}.npy", mmap_mode="r")
                assert arr.shape == (n, h, w) and arr.dtype == np.float16
    assert not [p for p in out.parent.iterdir() if p.name != out.name]  # no temporaries left


def test_stage_maps_equal_compute_maps_for_gt_and_predicted_class(stage):
    root, prepared, model_dir, out, _ = stage
    samples = pd.read_parquet(prepared / "samples.parquet")
    images = np.load(prepared / "images.npy")
    model, meta = load_checkpoint(model_dir, torch.device("cpu"))
    rows = samples[samples["split"] == "test"]
    x = eval_batch(images[rows["cache_index"].to_numpy()], SIZE, meta["mean"], meta["std"])
    index = pd.read_parquet(out / "test" / "index.parquet")
    with torch.no_grad():
        logits = model(x)
    assert index["pred"].tolist() == logits.argmax(1).tolist()
    assert index["label"].tolist() == rows["label"].tolist()
    assert (index["pred"] != index["label"]).any(), "the fixture must exercise the pred != gt path"
    for m in ("cam", "gradcam", "scorecam"):
        for kind, classes in (("gt", index["label"].tolist()), ("pred", index["pred"].tolist())):
            expected = compute_maps(model, x, classes, m).numpy()
            got = np.load(out / "test" / f"{m}_{kind}.npy").astype(np.float32)
            span = (expected.max((1, 2)) - expected.min((1, 2)))[:, None, None]
            assert (np.abs(got - expected) <= span / 1024 + 1e-12).all(), (m, kind)


def test_stage_rerun_is_byte_identical(stage, tmp_path):
    root, prepared, model_dir, out, _ = stage
    again = tmp_path / "again" / "tiny_gap_cnn"
    _run(_params(), "tiny_gap_cnn", prepared, model_dir, again)
    for f in sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()):
        assert (again / f).read_bytes() == (out / f).read_bytes(), f


def test_float32_and_float16_overflow_fallback(stage, tmp_path):
    root, prepared, model_dir, _, _ = stage
    out = tmp_path / "f32" / "tiny_gap_cnn"
    _run(_params(dtype="float32", methods=("cam",), splits=("val",)), "tiny_gap_cnn", prepared, model_dir, out)
    assert np.load(out / "val" / "cam_gt.npy").dtype == np.float32
    from pipeline.cams.store import save_maps

    big = np.array([[[1e6, 1.0]]], dtype=np.float32)
    assert save_maps(tmp_path / "big.npy", big, "float16") == "float32"
    assert np.isfinite(np.load(tmp_path / "big.npy")).all()
    tiny = np.array([[[1e-7, 2e-7, 3e-7]]], dtype=np.float32)  # subnormal in float16
    assert save_maps(tmp_path / "tiny.npy", tiny, "float16") == "float32"
    offset = np.array([[[1000.0, 1000.01, 1000.02]]], dtype=np.float32)
    assert save_maps(tmp_path / "offset.npy", offset, "float16") == "float32"
    ordinary = np.array([[[0.5, -3.0, 12.0]]], dtype=np.float32)
    assert save_maps(tmp_path / "ok.npy", ordinary, "float16") == "float16"


def test_stage_refuses_when_maps_exceed_the_disk_budget(stage, tmp_path):
    root, prepared, model_dir, _, _ = stage
    out = tmp_path / "cams" / "tiny_gap_cnn"
    with pytest.raises(CamlocError, match=r"need [0-9.]+ KB, more than params.yaml cams.max_disk_gb"):
        _run(_params(max_disk_gb=1e-9), "tiny_gap_cnn", prepared, model_dir, out)
    assert not out.exists()


def test_stage_bad_backbone_and_mismatched_checkpoint(stage, tmp_path):
    root, prepared, model_dir, _, _ = stage
    out = tmp_path / "x" / "tiny_gap_cnn"
    with pytest.raises(ParamsError, match="resnet99"):
        cams_stage.run(_params(), Paths(prepared=prepared, models=model_dir.parent, cams=out.parent), "resnet99")
    other = _model_dir(tmp_path / "other", backbone="resnet18", name="tiny_gap_cnn")
    with pytest.raises(CamlocError, match="not 'tiny_gap_cnn'"):
        _run(_params(), "tiny_gap_cnn", prepared, other, out)
    broken = _model_dir(tmp_path / "broken", name="tiny_gap_cnn")
    state = torch.load(broken / "model.pt", weights_only=True)
    state.pop("classifier.bias")
    torch.save(state, broken / "model.pt")
    with pytest.raises(CamlocError, match="does not match"):
        _run(_params(), "tiny_gap_cnn", prepared, broken, out)
    with pytest.raises(CamlocError, match="model.pt is missing"):
        _run(_params(), "tiny_gap_cnn", prepared, tmp_path / "nowhere" / "tiny_gap_cnn", out)
    assert not (tmp_path / "x").exists()


_KILL_SCRIPT = """
import sys
from pathlib import Path
import torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from test_cams_stage import _params, _run
_run(_params(methods=("scorecam",), scorecam_chunk=1, batch_size=1), "tiny_gap_cnn",
     Path({prepared!r}), Path({model!r}), Path({out!r}))
"""


def test_sigkill_leaves_nothing_under_the_final_name_and_a_rerun_completes(stage, tmp_path):
    root, prepared, model_dir, _, _ = stage
    out = tmp_path / "cams" / "tiny_gap_cnn"
    code = _KILL_SCRIPT.format(tests=str(Path(__file__).parent), prepared=str(prepared),
                               model=str(model_dir), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.parent.glob(".camloc-tmp-*")):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(out.parent.glob(".camloc-tmp-*")), "the run was killed before its temporary folder existed"
    assert not out.exists()
    _run(_params(methods=("cam",)), "tiny_gap_cnn", prepared, model_dir, out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny_gap_cnn"]  # stale temporaries removed
    ref = tmp_path / "ref" / "tiny_gap_cnn"
    _run(_params(methods=("cam",)), "tiny_gap_cnn", prepared, model_dir, ref)
    for f in (p.relative_to(ref) for p in ref.rglob("*") if p.is_file()):
        assert (out / f).read_bytes() == (ref / f).read_bytes(), f


# ------------------------------------------------------------------------------------------------
# Folder mode


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    for i, (w, h) in enumerate([(50, 40), (33, 61), (40, 40)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images / f"img{i}.png")
    Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).convert("L").save(images / "gray.jpg")
    (images / "notes.txt").write_text("not an image")
    return images, _model_dir(tmp_path)


def test_folder_mode_one_method_writes_one_npy_per_image(folder, tmp_path):
    images, model_dir = folder
    out = tmp_path / "out"
    summary = cams_stage.run_folder(model_dir, images, ["gradcam"], out)
    assert "skipped 1 non-image file(s): notes.txt" in summary
    ids = ["gray", "img0", "img1", "img2"]
    assert sorted(p.stem for p in out.glob("*.npy")) == ids
    preds = pd.read_csv(out / "predictions.csv")
    assert preds["image_id"].tolist() == ids
    pd.testing.assert_frame_equal(pd.read_parquet(out / "predictions.parquet")[["image_id", "pred"]],
                                  preds[["image_id", "pred"]])
    model, meta = load_checkpoint(model_dir, torch.device("cpu"))
    x = cams_stage._folder_batch([images / "img1.png"], meta, "cpu")
    expected = compute_maps(model, x, [int(preds["pred"][2])], "gradcam")[0].numpy()
    np.testing.assert_allclose(np.load(out / "img1.npy"), expected, rtol=1e-5, atol=1e-7)


def test_folder_mode_several_methods_use_subfolders(folder, tmp_path):
    images, model_dir = folder
    out = tmp_path / "out"
    cams_stage.run_folder(model_dir, images, ["cam", "eigencam"], out)
    for m in ("cam", "eigencam"):
        assert sorted(p.stem for p in (out / m).glob("*.npy")) == ["gray", "img0", "img1", "img2"]
    cams_stage.run_folder(model_dir, images, ["cam"], out)  # our own earlier output may be replaced
    assert not (out / "eigencam").exists()


def test_folder_mode_bad_inputs_are_clear_errors_and_write_nothing(folder, tmp_path):
    images, model_dir = folder
    out = tmp_path / "out"
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(CamlocError, match=r"broken\.jpg cannot be decoded"):
        cams_stage.run_folder(model_dir, images, ["cam"], out)
    assert not out.exists() and not list(tmp_path.glob(".camloc-tmp-*"))
    (images / "broken.jpg").unlink()
    with pytest.raises(CamlocError, match="unknown map method 'gradcam\\+\\+'; valid choices"):
        cams_stage.run_folder(model_dir, images, ["gradcam++"], out)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(CamlocError, match="not an earlier `camloc cams` output"):
        cams_stage.run_folder(model_dir, images, ["cam"], mine)
    assert (mine / "thesis.tex").read_text() == "precious"


def test_cli_methods_and_cams_errors(folder, tmp_path):
    images, model_dir = folder
    runner = CliRunner()
    result = runner.invoke(cli, ["methods"])
    assert result.exit_code == 0 and "scorecam" in result.output and "Score-CAM" in result.output
    (images / "bad.png").write_bytes(b"not a png")
    result = runner.invoke(cli, ["cams", "--checkpoint", str(model_dir), "--images", str(images),
                                 "--method", "cam", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "bad.png" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_cli_stage_mode_reads_models_and_writes_cams(stage, tmp_path):
    import yaml

    root, prepared, model_dir, out, _ = stage
    raw = {"backbones": {"tiny_gap_cnn": {"image_size": SIZE}},
           "cams": {"methods": ["cam"], "splits": ["val"], "batch_size": 4}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    cams = tmp_path / "cams"
    args = ["cams", "tiny_gap_cnn", "--params", str(tmp_path / "params.yaml"), "--prepared", str(prepared),
            "--models", str(model_dir.parent), "--cams", str(cams)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert str(cams / "tiny_gap_cnn") in result.output
    for f in ("val/cam_gt.npy", "val/cam_pred.npy", "val/index.parquet"):  # same maps as the stage fixture
        assert (cams / "tiny_gap_cnn" / f).read_bytes() == (out / f).read_bytes(), f
    assert sorted(p.name for p in cams.iterdir()) == ["tiny_gap_cnn"]


@pytest.mark.parametrize("bad,key", [({"methods": ["cam", "cam"]}, "cams.methods"), ({"splits": []}, "cams.splits"),
                                     ({"max_disk_gb": 0}, "cams.max_disk_gb"), ({"dtype": "float64"}, "cams.dtype"),
                                     ({"splits": ["val", "train2"]}, "cams.splits")])
def test_bad_cams_params_name_the_key(bad, key):
    from pipeline.params import parse

    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        parse(CamsParams, bad, "cams")
