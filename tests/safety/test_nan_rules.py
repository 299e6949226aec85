"""Issue 20, item 8: NaN or infinite map values are never silent — one rule per path (docs/contracts.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline import cli as camloc_cli
from pipeline import contracts as C
from pipeline.metrics import taus
from pipeline.metrics.pixels import PixelAccumulator
from pipeline.stages import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stages"))
from test_evaluate_stage import BACKBONE, _params, _paths, write_cams  # noqa: E402


def test_evaluate_maps_refuses_a_nan_map_naming_the_file_and_the_count(tmp_path):
    (tmp_path / "maps").mkdir()
    m = np.random.default_rng(0).random((224, 224))
    m[:5, :5] = np.nan
    np.save(tmp_path / "maps" / "a.npy", m)
    (tmp_path / "b.csv").write_text("image_id,x0,y0,x1,y1,width,height\na,0,0,30,30,224,224\n")
    r = CliRunner().invoke(camloc_cli.cli, ["evaluate-maps", "--maps", str(tmp_path / "maps"), "--boxes",
                                            str(tmp_path / "b.csv")])
    assert r.exit_code == 2 and "a.npy has NaN or inf values (25 of 50176 pixels)" in r.output


def test_pixel_accumulator_refuses_nan_pixels_instead_of_leaving_them_out():
    m = np.random.default_rng(0).random((224, 224))
    m[:5, :5] = np.nan  # 25 NaN pixels of 50,176 gave 85.8 PxAP with the pixels silently left out
    acc = PixelAccumulator(taus(0.01))
    with pytest.raises(ValueError, match="25 NaN or infinite pixels"):
        acc.add(m, (m > 0.5).astype(np.uint8))


def test_evaluate_stage_scores_nan_maps_as_zeros_and_counts_them_in_the_metrics_json(tmp_path, prepared_dir,
                                                                                     synthpets_params, caplog):
    paths = _paths(tmp_path, prepared_dir)
    cams = paths.cams_dir(BACKBONE)
    write_cams(prepared_dir, cams)
    f = C.map_file(cams / "test", "good", "gt")
    maps = np.load(f)
    maps[0, 0, 0] = np.nan
    np.save(f, maps)
    meta = json.loads((cams / "meta.json").read_text())
    meta["nonfinite_maps"] = {"test/good_gt": 1}  # what cams@B records when it dumps such a map
    (cams / "meta.json").write_text(json.dumps(meta))
    evaluate.run(_params(synthpets_params), paths, BACKBONE)
    metrics = C.read_metrics(paths.metrics_file(BACKBONE))
    assert metrics["good.nonfinite_maps"] == 1 and "noise.nonfinite_maps" not in metrics
    assert any("1 good maps hold NaN/inf" in r.message for r in caplog.records)
