"""The train stage: outputs, determinism, resume after a kill (on the shared tiny synthpets `prepared_dir`),
and learning (on a trivially learnable colour-square set written here per docs/contracts.md)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from pipeline.datasets import loader as imagecache
from pipeline.stages import train
from pipeline.cli import cli
from pipeline.errors import CamlocError
from pipeline.models.checkpoint import load_model
from pipeline.params import AugmentParams, BackboneParams, Params, PrepareParams

REPO = Path(__file__).resolve().parents[1]
SIZE = 32
COLOURS = np.array([[220, 40, 40], [40, 200, 40], [40, 40, 220]], dtype=np.int16)


def write_prepared(folder: Path, per_split=(("train", 12), ("val", 4)), size: int = SIZE, seed: int = 0) -> Path:
    """A prepared dir per docs/contracts.md: class c = a square of colour c at a random place on noise."""
    rng = np.random.default_rng(seed)
    rows, images = [], []
    for split, per_class in per_split:
        for c in range(len(COLOURS)):
            for n in range(per_class):
                im = rng.integers(60, 190, (size, size, 3)).astype(np.int16)
                s = int(rng.integers(size // 3, size // 2))
                y, x = rng.integers(0, size - s, 2)
                im[y : y + s, x : x + s] = COLOURS[c]
                images.append(im.astype(np.uint8))
                rows.append({"image_id": f"c{c}_{split}_{n}", "path": "", "label": c, "class_name": f"c{c}",
                             "species": "cat", "split": split, "width": size, "height": size,
                             "trimap_path": None, "cache_index": len(rows)})
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(folder / "samples.parquet", index=False)
    np.save(folder / "images.npy", np.stack(images))
    (folder / "classes.json").write_text(json.dumps({"class_names": ["c0", "c1", "c2"], "species": ["cat"] * 3}))
    return folder


@pytest.fixture(scope="module")
def prepared(prepared_dir) -> Path:
    return prepared_dir


def train_params(**kw) -> Params:
    recipe = {"epochs": 3, "batch_size": 8, "lr": 0.05, "head_lr_mult": 1.0, "image_size": SIZE, "workers": 0,
              "augment": AugmentParams(scale_min=0.8)} | kw
    bp = BackboneParams(**recipe)
    return Params(prepare=PrepareParams(cache_size=SIZE), backbones={"tiny_gap_cnn": bp})


@pytest.fixture(scope="module")
def reference(prepared, tmp_path_factory) -> Path:
    """One uninterrupted run, shared by the checks below."""
    out = tmp_path_factory.mktemp("ref") / "models" / "tiny_gap_cnn"
    train.run(train_params(), "tiny_gap_cnn", prepared, out)
    return out


def _same_weights(a: Path, b: Path) -> None:
    sa = torch.load(a / "model.pt", weights_only=True)
    sb = torch.load(b / "model.pt", weights_only=True)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_the_model_learns(tmp_path):
    colours = write_prepared(tmp_path / "prepared")
    out = tmp_path / "models" / "tiny_gap_cnn"
    train.run(train_params(), "tiny_gap_cnn", colours, out)
    history = pd.read_csv(out / "history.csv")
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert history["val_acc"].iloc[-1] >= 75.0, "a colour square per class is learnable in 3 epochs"


def test_outputs_follow_the_contract(reference, prepared):
    assert sorted(p.name for p in reference.iterdir()) == ["history.csv", "meta.json", "metrics.json", "model.pt"]
    history = pd.read_csv(reference / "history.csv")
    assert list(history.columns) == list(train.HISTORY_FIELDS) and list(history["epoch"]) == [1, 2, 3]
    metrics = json.loads((reference / "metrics.json").read_text())
    assert metrics["val_acc"] == pytest.approx(history["val_acc"].iloc[-1], abs=1e-3)
    model, meta = load_model(reference)
    assert meta["class_names"] == imagecache.load_classes(prepared) and meta["image_size"] == SIZE
    assert meta["train_images"] == 21 and meta["val_images"] == 6
    assert meta["params"]["lr"] == 0.05 and "torch" in meta["versions"]
    # The saved model reproduces the logged val accuracy through the shared eval input.
    rows, images = imagecache.load_split(prepared, "val")
    with torch.no_grad():
        pred = model(imagecache.eval_batch(images, SIZE)).argmax(1).numpy()
    assert 100.0 * (pred == rows["label"].to_numpy()).mean() == pytest.approx(metrics["val_acc"], abs=1e-3)


def test_two_cpu_runs_are_identical(reference, prepared, tmp_path):
    out = tmp_path / "models" / "tiny_gap_cnn"
    train.run(train_params(), "tiny_gap_cnn", prepared, out)
    _same_weights(reference, out)
    for name in ("metrics.json", "meta.json"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_resume_after_an_exception_gives_the_same_weights(reference, prepared, tmp_path):
    params = train_params(resume=True)
    out = tmp_path / "models" / "tiny_gap_cnn"

    def stop(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.run(params, "tiny_gap_cnn", prepared, out, on_epoch_end=stop)
    assert not out.exists(), "no half output under the final name"
    assert (tmp_path / ".resume" / "tiny_gap_cnn" / train.RESUME_FILE).is_file()
    epochs_run = []
    train.run(params, "tiny_gap_cnn", prepared, out, on_epoch_end=lambda e, r: epochs_run.append(e))
    assert epochs_run == [2, 3]
    _same_weights(reference, out)
    assert (out / "metrics.json").read_bytes() == (reference / "metrics.json").read_bytes()
    assert not (tmp_path / ".resume" / "tiny_gap_cnn").exists(), "the resume checkpoint is removed when done"


# A fresh interpreter importing torch: ~8 s on 2 free cores (up to ~18 s on a busy machine).
def test_resume_after_sigkill_gives_the_same_weights(reference, prepared, tmp_path):
    out = tmp_path / "models" / "tiny_gap_cnn"
    child = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_train import train_params
        from pipeline.stages import train
        def die(epoch, row):
            if epoch == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        train.run(train_params(resume=True), "tiny_gap_cnn", {str(prepared)!r}, {str(out)!r}, on_epoch_end=die)
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not out.exists()
    epochs_run = []
    train.run(train_params(resume=True), "tiny_gap_cnn", prepared, out,
              on_epoch_end=lambda e, r: epochs_run.append(e))
    assert epochs_run == [3]
    _same_weights(reference, out)


def test_resume_checkpoint_of_other_params_is_ignored(prepared, tmp_path):
    out = tmp_path / "models" / "tiny_gap_cnn"

    def stop(epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.run(train_params(resume=True, epochs=2), "tiny_gap_cnn", prepared, out, on_epoch_end=stop)
    epochs_run = []
    train.run(train_params(resume=True, epochs=1), "tiny_gap_cnn", prepared, out,
              on_epoch_end=lambda e, r: epochs_run.append(e))
    assert epochs_run == [1]


def test_augmentation_does_not_depend_on_worker_count(prepared):
    rows, images = imagecache.load_split(prepared, "train")
    ds = imagecache.TrainDataset(images, rows["label"].to_numpy(), 24, AugmentParams(), seed=5)
    batches = {}
    for workers in (0, 2):
        loader, sampler = imagecache.make_train_loader(ds, batch_size=8, workers=workers)
        sampler.set_epoch(1)
        batches[workers] = [(x.clone(), y.clone()) for x, y in loader]
    assert len(batches[0]) == len(batches[2]) == 3
    for (x0, y0), (x2, y2) in zip(batches[0], batches[2], strict=True):
        assert torch.equal(x0, x2) and torch.equal(y0, y2)
    sampler.set_epoch(2)
    assert not torch.equal(next(iter(loader))[0], batches[2][0][0]), "each epoch draws new crops"


def test_missing_split_and_missing_cache_are_clear_errors(tmp_path, prepared):
    bare = write_prepared(tmp_path / "p", per_split=(("train", 2),))
    with pytest.raises(CamlocError, match=r"no images in split 'val'"):
        train.run(train_params(), "tiny_gap_cnn", bare, tmp_path / "m")
    (bare / "images.npy").unlink()
    with pytest.raises(CamlocError, match=r"images\.npy is missing.*prepare"):
        imagecache.load_split(bare, "train")


def test_cli_train_and_backbones(prepared, tmp_path):
    import yaml

    params = train_params()
    raw = {"prepare": {"cache_size": SIZE},
           "backbones": {"tiny_gap_cnn": {"epochs": 1, "batch_size": 8, "image_size": SIZE, "workers": 0}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    runner = CliRunner()
    out = tmp_path / "m"
    res = runner.invoke(cli, ["train", "tiny_gap_cnn", "--params", str(tmp_path / "params.yaml"),
                              "--prepared", str(prepared), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "val accuracy" in res.output and (out / "model.pt").is_file()
    res = runner.invoke(cli, ["train", "resnet18", "--params", str(tmp_path / "params.yaml"),
                              "--prepared", str(prepared), "--out", str(out)])
    assert res.exit_code == 2 and "tiny_gap_cnn" in res.output
    res = runner.invoke(cli, ["backbones"])
    assert res.exit_code == 0 and "vgg16_gap" in res.output and "tiny_gap_cnn" in res.output
    assert replace(params.backbones["tiny_gap_cnn"], epochs=1).epochs == 1
