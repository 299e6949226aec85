"""train@ and cams@ under torchrun on CPU (gloo): two processes against one, two "nodes" on localhost, a
rank dying mid-stage. Every torchrun here starts fresh interpreters importing torch (~5 s idle each).

What equality holds:
- training: N processes take the same global batches and average to the global-batch mean gradient,
  so without BatchNorm they train the one-process model up to float summation order (asserted to 1e-6;
  BatchNorm statistics are per process by design, `sync_bn` is GPU-only); two nodes × one process give
  the bytes of one node × two processes; a run resumed after a rank died gives the bytes of an
  uninterrupted one;
- cams: the ranks run the very batches one process runs, so predictions are identical and maps equal
  (asserted within float16 rounding, the contract; bit-equal on this CPU).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from ddp_entry import NOBN, nobn_backbone
from test_cams_stage import _model_dir, _prepared

from pipeline.contracts import Paths
from pipeline.params import AugmentParams, BackboneParams, CamsParams, Params, to_dict
from pipeline.stages import cams as cams_stage
from pipeline.stages import train

REPO = Path(__file__).resolve().parents[2]
ENTRY = Path(__file__).with_name("ddp_entry.py")
RUN = [sys.executable, "-m", "torch.distributed.run"]
# 21 training images (conftest) in global batches of 10: steps of 10, 10 and 1 image, so the last step
# has fewer images than ranks (rank 1 gets a padding image that must not count).
RECIPE = {"epochs": 2, "batch_size": 10, "lr": 0.05, "head_lr_mult": 1.0, "image_size": 32, "workers": 0,
          "augment": AugmentParams(scale_min=0.8), "resume": True}


def _write_params(path: Path, params: Params) -> Path:
    path.write_text(yaml.safe_dump(json.loads(json.dumps(to_dict(params)))))
    return path


def _env() -> dict:
    return os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


# Each process takes (cores of its node) // (its processes on the node) threads, and thread counts change
# float sums: so every "node" here gets CORES[rank] — one core a process, whether it shares a node or not.
_MINE = sorted(os.sched_getaffinity(0))
CORES = [{_MINE[0]}, {_MINE[-1]}]


def _pin(cores: set[int]):
    return lambda: os.sched_setaffinity(0, cores)


def _run(cmd: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=_env() | env, capture_output=True, text=True, timeout=400,
                          preexec_fn=_pin(CORES[0] | CORES[1]))


def _train_args(work: Path, prepared: Path, models: str = "models") -> list[str]:
    return ["train", NOBN, "--params", str(work / "params.yaml"), "--prepared", str(prepared), "--models", models]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _states(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "model.pt", weights_only=True)


@pytest.fixture(scope="module")
def work(tmp_path_factory, prepared_dir) -> Path:
    """A two-process training run of `nobn_gap_cnn` (single node) in `work/models`."""
    work = tmp_path_factory.mktemp("ddp")
    _write_params(work / "params.yaml", Params(backbones={NOBN: BackboneParams(arch="", **RECIPE)}))
    proc = _run([*RUN, "--standalone", "--nproc-per-node=2", str(ENTRY), *_train_args(work, prepared_dir)], work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("val accuracy") == 1, "one summary, from rank 0"
    return work


def test_two_process_training_equals_one_process_without_batchnorm(work, prepared_dir, tmp_path):
    params = Params(backbones={NOBN: BackboneParams(**RECIPE)})
    with nobn_backbone():
        train.run(params, Paths(prepared=prepared_dir, models=tmp_path / "models"), NOBN)
    one, two = tmp_path / "models" / NOBN, work / "models" / NOBN
    a, b = _states(one), _states(two)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=k)
    h1, h2 = pd.read_csv(one / "history.csv"), pd.read_csv(two / "history.csv")
    assert list(h1["train_acc"]) == list(h2["train_acc"]) and list(h1["val_acc"]) == list(h2["val_acc"])
    np.testing.assert_allclose(h2[["train_loss", "val_loss"]], h1[["train_loss", "val_loss"]], rtol=1e-5)
    assert json.loads((two / "meta.json").read_text())["processes"] == 2
    assert not (work / ".resume" / NOBN).exists() and not list((work / "models").glob(".camloc-tmp-*"))


def test_two_process_training_logs_dvclive_from_rank_0_only(work):
    """Rank 0 alone writes dvclive's files: one row per epoch (a second writer would wipe the folder
    or add a second row per step), and nothing beside the model folder."""
    live = work / "models" / NOBN / "dvclive"
    for name in ("train_loss", "val_acc", "lr", "images_per_s"):
        tsv = (live / "plots" / "metrics" / f"{name}.tsv").read_text().splitlines()
        assert tsv[0] == f"step\t{name}", name
        assert [int(r.split("\t")[0]) for r in tsv[1:]] == list(range(1, RECIPE["epochs"] + 1)), name
    assert json.loads((live / "metrics.json").read_text())["step"] == RECIPE["epochs"]
    assert sorted(p.name for p in (work / "models").iterdir()) == [NOBN]
    assert not list(work.rglob("dvc.yaml")) and not (work / "dvclive").exists()


def test_two_nodes_on_localhost_equal_one_node(work, prepared_dir):
    endpoint = f"127.0.0.1:{_free_port()}"
    launchers = [
        subprocess.Popen([*RUN, "--nnodes=2", f"--node-rank={rank}", "--nproc-per-node=1", "--rdzv-backend=c10d",
                          f"--rdzv-endpoint={endpoint}", "--rdzv-id=camloc-test", str(ENTRY),
                          *_train_args(work, prepared_dir, "models_2nodes")],
                         cwd=work, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=_pin(CORES[rank]))
        for rank in (0, 1)
    ]
    outs = [p.communicate(timeout=400) for p in launchers]
    assert [p.returncode for p in launchers] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    for name in ("model.pt", "history.csv", "metrics.json", "meta.json"):
        assert (work / "models_2nodes" / NOBN / name).read_bytes() == (work / "models" / NOBN / name).read_bytes()


def test_a_rank_dying_mid_stage_leaves_no_output_and_a_rerun_resumes(work, prepared_dir):
    args = _train_args(work, prepared_dir, "models_killed")
    died = _run([*RUN, "--standalone", "--nproc-per-node=2", str(ENTRY), *args], work, CAMLOC_TEST_DIE_AT="1:1")
    assert died.returncode != 0
    assert "ChildFailedError" in died.stderr and "exitcode" in died.stderr, died.stderr[-2000:]
    killed = work / "models_killed" / NOBN  # at most dvclive's live log of the epochs that ran
    assert not killed.exists() or sorted(p.name for p in killed.iterdir()) == ["dvclive"], "no final output"
    assert (work / ".resume" / NOBN / train.RESUME_FILE).is_file(), "epoch 1 was checkpointed before the death"
    rerun = _run([*RUN, "--standalone", "--nproc-per-node=2", str(ENTRY), *args], work)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming from" in rerun.stderr
    for name in ("model.pt", "history.csv", "metrics.json"):
        assert (work / "models_killed" / NOBN / name).read_bytes() == (work / "models" / NOBN / name).read_bytes()


def test_two_process_cams_equal_one_process(tmp_path):
    prepared, model = _prepared(tmp_path), _model_dir(tmp_path / "models", name="tiny_gap_cnn")
    cams = CamsParams(methods=("cam", "gradcam", "eigencam", "center"), batch_size=4)
    params = Params(backbones={"tiny_gap_cnn": BackboneParams(image_size=32, nproc=2)}, cams=cams)
    _write_params(tmp_path / "params.yaml", params)
    cams_stage.run(params, Paths(prepared=prepared, models=model.parent, cams=tmp_path / "one"), "tiny_gap_cnn")
    # nproc: 2 makes the plain command relaunch itself through torchrun, as `dvc repro` runs it.
    proc = _run([sys.executable, "-m", "pipeline", "cams", "tiny_gap_cnn", "--params", "params.yaml",
                 "--prepared", "prepared", "--models", "models", "--cams", "two"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("cams tiny_gap_cnn: 18 images") == 1
    one, two = tmp_path / "one" / "tiny_gap_cnn", tmp_path / "two" / "tiny_gap_cnn"
    assert sorted(p.relative_to(two) for p in two.rglob("*")) == sorted(p.relative_to(one) for p in one.rglob("*"))
    assert (two / "meta.json").read_bytes() == (one / "meta.json").read_bytes()
    p1, p2 = pd.read_parquet(one / "predictions.parquet"), pd.read_parquet(two / "predictions.parquet")
    pd.testing.assert_frame_equal(p1.drop(columns="top5_prob"), p2.drop(columns="top5_prob"))
    np.testing.assert_allclose(np.stack(p2["top5_prob"]), np.stack(p1["top5_prob"]), rtol=1e-6)
    for f in one.rglob("*.npy"):
        a, b = np.load(f).astype(np.float32), np.load(two / f.relative_to(one)).astype(np.float32)
        span = np.ptp(a.reshape(len(a), -1), axis=1).reshape(-1, 1, 1) + 1e-12
        assert np.all(np.abs(a - b) <= span / 1024), f  # float16 rounding, relative to each map's range
    assert not list(tmp_path.glob("two/.camloc-tmp-*")), "the ranks' parts are removed"
