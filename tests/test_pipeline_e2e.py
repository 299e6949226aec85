"""The real `dvc repro`, end to end, on a reduced params set (tiny images, the tiny backbone).

One temporary copy of the project runs the whole stage graph once; the tests then check that a second
`dvc repro` does nothing, that `--force` gives byte-identical outputs (CPU determinism), that
`dvc metrics show` reads the metrics, and that a stage killed with SIGKILL part-way leaves nothing
under its final name and, re-run, gives the outputs an uninterrupted run gave.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BACKBONE = "tiny_gap_cnn"
OTHER = "tiny_gap_cnn_40"  # a second chain, to check that a change to one backbone leaves the other alone
# Overrides of the repository's params.yaml (sections are merged key by key; backbones replaced).
REDUCED = {
    "synthpets": {"num_classes": 3, "trainval_per_class": 60, "test_per_class": 6, "min_size": 48,
                  "max_size": 72, "seed": 0},
    "split": {"val_per_class": 3, "test_per_class": 5, "seed": 0},
    "prepare": {"cache_size": 48, "workers": 1},
    "backbones": {BACKBONE: {"epochs": 3, "batch_size": 16, "optimizer": "adamw", "lr": 0.003,
                             "head_lr_mult": 1.0, "image_size": 48, "workers": 0},
                  OTHER: {"arch": "tiny_gap_cnn", "epochs": 1, "batch_size": 16, "lr": 0.05, "head_lr_mult": 1.0,
                          "image_size": 40, "workers": 0}},
    "cams": {"methods": ["cam", "gradcam", "center", "full"], "batch_size": 16},
    "evaluate": {"interval": 0.05},
    "faithfulness": {"max_images": 3, "steps": 8},
    "report": {"bootstrap": 100, "gallery_samples": 2, "gallery_extremes": 1},
}
# What "identical rerun" compares: every number a user reads, and the maps behind them.
COMPARED = ("reports/metrics", "reports/curves", "reports/leaderboard.md", "reports/leaderboard.csv",
            "reports/leaderboard.tex", "data/cams", "data/models", "data/eval", "data/prepared",
            "reports/faithfulness", "data/faithfulness")


# dvclive's images/s (its step file and the summary holding the last value) are timings: the one thing a
# rerun may change (docs/contracts.md); every other dvclive file is compared.
TIMINGS = ("images_per_s.tsv", "metrics.json")


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def _run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _digest(root: Path, rels=COMPARED) -> dict[str, str]:
    """sha256 of every file under the compared paths (relative path → digest)."""
    out = {}
    for rel in rels:
        p = root / rel
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        for f in files:
            if "dvclive" in f.parts and f.name in TIMINGS:
                continue
            out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fresh copy of the project (tracked files only) with the reduced params, after one `dvc repro`."""
    root = copy_project(tmp_path_factory.mktemp("e2e") / "camloc", REDUCED)
    _run(["dvc", "repro"], root)
    return root


def copy_project(root: Path, reduced: dict, dataset: dict | None = None) -> Path:
    """A fresh copy of the project (tracked and untracked-not-ignored files) in a new git repo, with the
    `reduced` params sections (backbones replaced, others merged) and `dataset` merged into `dataset:`."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, root / rel)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in reduced.items():
        params[section] = values if section == "backbones" else {**params[section], **values}
    params["dataset"] = {**params["dataset"], **(dataset or {})}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], root)
    return root


def test_repro_writes_every_output_and_second_run_is_noop(project):
    for rel in ("data/prepared/samples.parquet", f"data/models/{BACKBONE}/model.pt",
                f"data/cams/{BACKBONE}/test/cam_gt.npy", f"reports/metrics/{BACKBONE}.json",
                f"reports/curves/{BACKBONE}.csv", "reports/leaderboard.md", "reports/gallery/index.html",
                f"reports/faithfulness/{BACKBONE}.json", f"data/faithfulness/{BACKBONE}/per_image.parquet",
                "reports/plots/localization_vs_faithfulness.png"):
        assert (project / rel).is_file(), rel
    second = _run(["dvc", "repro"], project)
    assert "Running stage" not in second.stdout, second.stdout
    status = _run(["dvc", "status", "--json"], project)
    assert json.loads(status.stdout) == {}


def test_dvc_metrics_show_reads_the_metrics(project):
    shown = json.loads(_run(["dvc", "metrics", "show", "--json"], project).stdout)
    text = json.dumps(shown)
    assert "cam.maxboxacc_v2_head" in text and "classification.top1" in text
    assert "cam.pointing_game_head" in text and "cam.deletion_auc" in text


def test_trained_cam_beats_the_centre_baseline(project):
    """The benchmark's premise on its own default data: a trained classifier's CAM finds the head far
    better than a centred Gaussian that looks at nothing (synthpets draws the class on the head)."""
    metrics = json.loads((project / f"reports/metrics/{BACKBONE}.json").read_text())
    assert metrics["classification.top1"] > 80, metrics["classification.top1"]
    assert metrics["cam.maxboxacc_v2_head"] > metrics["center.maxboxacc_v2_head"] + 15, metrics


# Slow (a second full repro, ~45 s on 2 cores): the sigkill tests below already compare a rerun of each stage
# with its first output; this one checks every output of every stage at once (`make test-slow`).
@pytest.mark.slow
def test_forced_rerun_is_byte_identical(project):
    before = _digest(project)
    _run(["dvc", "repro", "--force"], project)
    after = _digest(project)
    assert before.keys() == after.keys()
    changed = [k for k in before if before[k] != after[k]]
    assert not changed, f"a forced rerun changed: {changed[:10]}"


# Each stage is killed when its log shows it is part-way through: training after its first epoch,
# cams after its first split's maps, evaluate after its first method.
STAGES = {
    "train": ("train", f"data/models/{BACKBONE}/model.pt", "epoch 1:"),
    "cams": ("cams", f"data/cams/{BACKBONE}", "maps written"),
    "evaluate": ("evaluate", f"data/eval/{BACKBONE}", "scored"),
    "faithfulness": ("faithfulness", f"data/faithfulness/{BACKBONE}", "scored"),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_sigkill_mid_stage_leaves_no_half_output_and_rerun_matches(project, stage):
    command, final, marker = STAGES[stage]
    reference = _digest(project)
    target = project / final
    shutil.rmtree(target) if target.is_dir() else target.unlink()  # as DVC does before running a stage
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "-v", command, BACKBONE], cwd=project,
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"{command} ended before {marker!r}:\n{''.join(seen)[-2000:]}"
    assert not target.exists(), f"{final} exists after SIGKILL: a half output under its final name"
    # --force --single-item: really run the stage code (DVC would otherwise restore it from its run cache)
    _run(["dvc", "repro", "--force", "--single-item", f"{command}@{BACKBONE}"], project)
    after = _digest(project)
    changed = [k for k in reference if reference.get(k) != after.get(k)]
    assert not changed, f"rerun after SIGKILL differs from the uninterrupted run: {changed[:10]}"
    leftovers = list((project / "data").rglob(".camloc-tmp-*"))
    assert not leftovers, f"temporaries left behind: {leftovers[:5]}"


def _changed_stages(project: Path) -> set[str]:
    return set(json.loads(_run(["dvc", "status", "--json"], project).stdout))


def _bring_up_to_date(project: Path) -> None:
    """A rerun of train@B (the SIGKILL test's) leaves the report out of date: the model folder's dvclive
    timings (images/s) differ from run to run and the report reads the whole folder. Tests that ask which
    stages an edit invalidates start from a pipeline with nothing to do."""
    if _changed_stages(project):
        _run(["dvc", "repro"], project)
    assert not _changed_stages(project)


def test_changing_one_backbones_lr_reruns_only_its_chain(project):
    _bring_up_to_date(project)
    params_path = project / "params.yaml"
    original = params_path.read_text()
    params = yaml.safe_load(original)
    params["backbones"][BACKBONE]["lr"] = 0.01
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        changed = _changed_stages(project)
    finally:
        params_path.write_text(original)
    assert f"train@{BACKBONE}" in changed
    untouched = {"download", "prepare", f"train@{OTHER}", f"cams@{OTHER}", f"evaluate@{OTHER}",
                 f"faithfulness@{OTHER}"}
    assert not changed & untouched, changed


@pytest.mark.parametrize(("module", "reruns", "stays"), [
    ("pipeline/stages/prepare.py", {"prepare"}, {"download"}),
    ("pipeline/datasets/manifest.py", {"prepare"}, {"download"}),
    ("pipeline/report/plots.py", {"report"}, {f"train@{BACKBONE}", f"evaluate@{BACKBONE}"}),
    ("pipeline/metrics/folder.py", set(), {f"evaluate@{BACKBONE}", "report"}),
    ("pipeline/faithfulness/scores.py", {f"faithfulness@{BACKBONE}"}, {f"cams@{BACKBONE}", f"evaluate@{BACKBONE}"}),
])
def test_editing_a_stages_code_reruns_that_stage_only(project, module, reruns, stays):
    _bring_up_to_date(project)
    path = project / module
    original = path.read_bytes()
    path.write_bytes(original + b"\n# an edit\n")
    try:
        changed = _changed_stages(project)
    finally:
        path.write_bytes(original)
    assert reruns <= changed and not changed & stays, changed
