"""The real `dvc repro` on each reference-layout twin (tests/twins.py): `cub` (the archive downloaded
from a local HTTP server, then DVC takes over), `wsol` with boxes (ILSVRC-like, several per image) and
`wsol` with masks (OpenImages-like, ignore masks). The leaderboard's numbers must equal
tests/reference.py on the dumped maps, and its columns must follow the dataset.

Slow (a project copy and a whole stage graph each); the default suite keeps prepare → evaluate on
every twin in tests/datasets/test_wsol.py.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from reference import ref_evaluate, ref_normalize, ref_rescale
from test_pipeline_e2e import _run, copy_project
from twins import make_boxes_twin, make_cub_tree, make_masks_twin, reference_mask

pytestmark = pytest.mark.slow
BACKBONE = "tiny_gap_cnn"
S = 32
INTERVAL = 0.05
REDUCED = {
    "prepare": {"cache_size": S, "workers": 1},
    "backbones": {BACKBONE: {"epochs": 4, "batch_size": 8, "optimizer": "adamw", "lr": 0.003, "head_lr_mult": 1.0,
                             "image_size": S, "workers": 0}},
    "cams": {"methods": ["cam", "center"], "batch_size": 16},
    "evaluate": {"interval": INTERVAL},
    "report": {"bootstrap": 100, "gallery_samples": 2, "gallery_extremes": 1},
}


def _project(root: Path, dataset: dict) -> Path:
    """A fresh copy of the project with the reduced params and `dataset` merged into `dataset:`."""
    return copy_project(root, REDUCED, dataset)


def _scored(project: Path) -> tuple[dict, dict]:
    metrics = json.loads((project / f"reports/metrics/{BACKBONE}.json").read_text())
    import pandas as pd

    index = pd.read_parquet(project / f"data/cams/{BACKBONE}/test/index.parquet")
    maps = np.load(project / f"data/cams/{BACKBONE}/test/cam_gt.npy")
    smaps = {i: ref_normalize(m.astype(np.float64), S, S) for i, m in zip(index.image_id, maps, strict=True)}
    return metrics, smaps


def _check_boxes(project: Path, twin) -> None:
    metrics, smaps = _scored(project)
    gts = {i: [ref_rescale(b, *twin.sizes[i], S, S) for b in twin.boxes[i]] for i in smaps}
    ref = ref_evaluate(smaps, gts, INTERVAL)
    assert metrics["cam.maxboxacc_object"] == pytest.approx(round(ref["max_box_acc"]["v1"], 6), abs=1e-9)
    assert metrics["cam.maxboxacc_v2_object"] == pytest.approx(round(ref["max_box_acc"]["v2"], 6), abs=1e-9)
    board = (project / "reports/leaderboard.md").read_text()
    assert "V2 object" in board and "V2 head" not in board and "PxAP" not in board
    assert not (project / "data/cams" / BACKBONE / "test_official").exists()


def _archive_server():
    """tests/datasets/test_archives.py's Range-honouring HTTP server (that folder is not on sys.path here)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_archives_server", Path(__file__).parent / "datasets" / "test_archives.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Server, module._spec


def test_cub_through_the_archive(tmp_path):
    Server, _spec = _archive_server()  # noqa: N806
    from pipeline.datasets import cub
    from pipeline.datasets.archives import fetch_cub
    from pipeline.params import load_params

    twin = make_cub_tree(tmp_path / "src", n_classes=3, train_per_class=10, test_per_class=5)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for p in sorted((tmp_path / "src").iterdir()):
            tf.add(p, arcname=p.name)
    server = Server({cub.ARCHIVE: buf.getvalue()})
    try:
        project = _project(tmp_path / "cub", {"name": "cub", "cub": {"url": f"{server.url}/data/{cub.ARCHIVE}",
                                                                   "val_per_class": 2, "seed": 0}})
        # The twin's archive has its own MD5, not the official one: the download stage's code runs here
        # with the twin's checksum, and DVC records its output; every later stage is `dvc repro`'s.
        fetch_cub(load_params(project / "params.yaml"), project / "data/raw", spec=_spec(buf.getvalue()),
                  downloads=project / "data/downloads", backoff=0)
    finally:
        server.close()
    _run(["dvc", "commit", "-f", "download"], project)
    _run(["dvc", "repro"], project)
    _check_boxes(project, twin)


def test_wsol_boxes_ilsvrc_like(tmp_path):
    twin = make_boxes_twin(tmp_path / "images", tmp_path / "meta", per_class={"train": 12, "val": 2, "test": 5})
    project = _project(tmp_path / "p", {"name": "wsol", "wsol": {"metadata": str(tmp_path / "meta"),
                                                                 "root": str(tmp_path / "images"), "mask_root": None}})
    _run(["dvc", "repro"], project)
    _check_boxes(project, twin)


def test_wsol_masks_openimages_like(tmp_path):
    twin = make_masks_twin(tmp_path / "images", tmp_path / "masks", tmp_path / "meta",
                           per_class={"train": 12, "val": 2, "test": 5})
    project = _project(tmp_path / "p", {"name": "wsol", "wsol": {"metadata": str(tmp_path / "meta"),
                                                                 "root": str(tmp_path / "images"),
                                                                 "mask_root": str(tmp_path / "masks")}})
    _run(["dvc", "repro"], project)
    metrics, smaps = _scored(project)
    masks = {i: reference_mask(tmp_path / "masks", twin.masks[i], twin.ignore[i], S) for i in smaps}
    ref = ref_evaluate(smaps, {i: [[0, 0, 1, 1]] for i in smaps}, INTERVAL, masks)
    assert metrics["cam.pxap"] == pytest.approx(round(ref["pxap"], 6), abs=1e-9)
    assert metrics["cam.pxiou"] == pytest.approx(round(ref["pxiou"], 6), abs=1e-9)
    board = (project / "reports/leaderboard.md").read_text()
    assert "PxAP" in board and "V2 object" not in board and "V2 head" not in board
