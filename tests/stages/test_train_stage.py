"""The train stage: outputs, determinism, resume after a kill (on the shared tiny synthpets `prepared_dir`),
and learning (on a trivially learnable colour-square set written here per docs/contracts.md)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.contracts import HISTORY_COLUMNS, Paths, read_classes, read_history
from pipeline.datasets import loader as imagecache
from pipeline.errors import CamlocError
from pipeline.params import AugmentParams, BackboneParams, Params, PrepareParams, to_dict
from pipeline.stages import train
from pipeline.wsol.rebuild import load_model

REPO = Path(__file__).resolve().parents[2]
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


def run_train(params: Params, prepared: Path, out: Path, **kw) -> str:
    """The train stage writing `out` (= `paths.model_dir(B)`, so a folder `.../tiny_gap_cnn`); its resume
    checkpoints default to `out/../../.resume/tiny_gap_cnn`."""
    assert out.name == "tiny_gap_cnn", out
    return train.run(params, Paths(prepared=Path(prepared), models=Path(out).parent), "tiny_gap_cnn", **kw)


@pytest.fixture(scope="module")
def reference(prepared, tmp_path_factory) -> Path:
    """One uninterrupted run, shared by the checks below."""
    out = tmp_path_factory.mktemp("ref") / "models" / "tiny_gap_cnn"
    run_train(train_params(), prepared, out)
    return out


def only_the_live_log(out: Path) -> bool:
    """After a killed run: no model file under the final name, at most dvclive's live log (the epochs
    that ran, followed by `dvc exp show`; docs/contracts.md)."""
    return not out.exists() or sorted(p.name for p in out.iterdir()) == ["dvclive"]


def _same_weights(a: Path, b: Path) -> None:
    sa = torch.load(a / "model.pt", weights_only=True)
    sb = torch.load(b / "model.pt", weights_only=True)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_the_model_learns(tmp_path):
    colours = write_prepared(tmp_path / "prepared")
    out = tmp_path / "models" / "tiny_gap_cnn"
    run_train(train_params(), colours, out)
    history = pd.read_csv(out / "history.csv")
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert history["val_acc"].iloc[-1] >= 75.0, "a colour square per class is learnable in 3 epochs"


def test_outputs_follow_the_contract(reference, prepared):
    assert sorted(p.name for p in reference.iterdir()) == ["dvclive", "history.csv", "meta.json", "metrics.json",
                                                           "model.pt"]
    history = pd.read_csv(reference / "history.csv")
    assert list(history.columns) == list(HISTORY_COLUMNS) and list(history["epoch"]) == [1, 2, 3]
    metrics = json.loads((reference / "metrics.json").read_text())
    assert metrics["val_acc"] == pytest.approx(history["val_acc"].iloc[-1], abs=1e-3)
    model, meta = load_model(reference)
    assert meta["class_names"] == read_classes(prepared) and meta["image_size"] == SIZE
    assert meta["train_images"] == 21 and meta["val_images"] == 6
    assert meta["params"]["lr"] == 0.05 and "torch" in meta["versions"]
    # The saved model reproduces the logged val accuracy through the shared eval input.
    rows, images = imagecache.load_split(prepared, "val")
    with torch.no_grad():
        pred = model(imagecache.eval_batch(images, SIZE)).argmax(1).numpy()
    assert 100.0 * (pred == rows["label"].to_numpy()).mean() == pytest.approx(metrics["val_acc"], abs=1e-3)


def test_dvclive_files_exist_after_train_and_hold_every_epoch(reference):
    """train@B logs loss, accuracy, lr and images/s per epoch through dvclive (step = epoch); the report's
    curves read them (contracts.read_history), and history.csv is the same rows without the timings."""
    live = reference / "dvclive"
    summary = json.loads((live / "metrics.json").read_text())
    assert set(summary) == {"step", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s"}
    assert summary["step"] == 3 and summary["images_per_s"] > 0
    history = pd.read_csv(reference / "history.csv")
    for name in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s"):
        tsv = pd.read_csv(live / "plots" / "metrics" / f"{name}.tsv", sep="\t")
        assert list(tsv.columns) == ["step", name] and list(tsv["step"]) == [1, 2, 3], name
        if name in history:
            np.testing.assert_allclose(tsv[name], history[name], rtol=1e-5)
    assert summary["val_acc"] == pytest.approx(history["val_acc"].iloc[-1], abs=1e-3)
    curves = read_history(reference)
    assert list(curves["epoch"]) == [1, 2, 3] and "images_per_s" not in curves
    np.testing.assert_allclose(curves["val_loss"], history["val_loss"], rtol=1e-5)
    assert not (reference / "dvc.yaml").exists() and not (reference.parent / "dvc.yaml").exists()


def test_two_cpu_runs_are_identical(reference, prepared, tmp_path):
    out = tmp_path / "models" / "tiny_gap_cnn"
    run_train(train_params(), prepared, out)
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
        run_train(params, prepared, out, on_epoch_end=stop)
    assert only_the_live_log(out), "no half output under the final name"
    assert (tmp_path / ".resume" / "tiny_gap_cnn" / train.RESUME_FILE).is_file()
    epochs_run = []
    run_train(params, prepared, out, on_epoch_end=lambda e, r: epochs_run.append(e))
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
        from pathlib import Path
        from test_train_stage import run_train, train_params
        def die(epoch, row):
            if epoch == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        run_train(train_params(resume=True), Path({str(prepared)!r}), Path({str(out)!r}), on_epoch_end=die)
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert only_the_live_log(out)
    assert list(pd.read_csv(out / "dvclive" / "plots" / "metrics" / "val_acc.tsv", sep="\t")["step"]) == [1, 2]
    epochs_run = []
    run_train(train_params(resume=True), prepared, out, on_epoch_end=lambda e, r: epochs_run.append(e))
    assert epochs_run == [3]
    _same_weights(reference, out)


def test_resume_checkpoint_of_other_params_is_ignored(prepared, tmp_path):
    out = tmp_path / "models" / "tiny_gap_cnn"

    def stop(epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_train(train_params(resume=True, epochs=2), prepared, out, on_epoch_end=stop)
    epochs_run = []
    run_train(train_params(resume=True, epochs=1), prepared, out, on_epoch_end=lambda e, r: epochs_run.append(e))
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
        run_train(train_params(), bare, tmp_path / "m" / "tiny_gap_cnn")
    (bare / "images.npy").unlink()
    with pytest.raises(CamlocError, match=r"images\.npy is missing.*prepare"):
        imagecache.load_split(bare, "train")


def test_cli_train_and_backbones(prepared, tmp_path):
    import yaml

    raw = {"prepare": {"cache_size": SIZE},
           "backbones": {"tiny_gap_cnn": {"epochs": 1, "batch_size": 8, "image_size": SIZE, "workers": 0}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    runner = CliRunner()
    models = tmp_path / "models"
    out = models / "tiny_gap_cnn"
    res = runner.invoke(cli, ["train", "tiny_gap_cnn", "--params", str(tmp_path / "params.yaml"),
                              "--prepared", str(prepared), "--models", str(models)])
    assert res.exit_code == 0, res.output
    assert "val accuracy" in res.output and (out / "model.pt").is_file()
    # The run used params.yaml's recipe (1 epoch, batch 8, the file's image size, defaults elsewhere),
    # not the recipe of the other tests here (train_params: 3 epochs, lr 0.05).
    expected = to_dict(BackboneParams(epochs=1, batch_size=8, image_size=SIZE, workers=0))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["params"] == json.loads(json.dumps(expected))
    assert meta["params"] != json.loads(json.dumps(to_dict(train_params().backbone("tiny_gap_cnn"))))
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [1]
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1
    res = runner.invoke(cli, ["train", "resnet18", "--params", str(tmp_path / "params.yaml"),
                              "--prepared", str(prepared), "--models", str(models)])
    assert res.exit_code == 2 and "tiny_gap_cnn" in res.output
    assert sorted(p.name for p in models.iterdir()) == ["tiny_gap_cnn"]
    res = runner.invoke(cli, ["backbones"])
    assert res.exit_code == 0 and "vgg16_gap" in res.output and "tiny_gap_cnn" in res.output
