"""evaluate@B's `protocols` section (pipeline/stages/evalprotocols.py) on the tiny prepared synthpets and the
seeded synthetic maps of fake_cams: every profile × method present, choe2020 equal to the flat honest keys,
the oracle above it, the rows behind the report's CIs reproducing the numbers, a grid without the fixed τs,
pseudo-boxes equal to val's GT giving choe2020 exactly, and a bad pseudo-box file as one clear line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from fake_cams import BACKBONE, METHODS, _params, _paths, write_cams

from pipeline import contracts as C
from pipeline.catalog.protocols import (
    CHOE2020,
    DEFAULT_PROFILES,
    GT_KNOWN_LOC,
    LOC_METRICS,
    MAXBOXACC,
    MAXBOXACC_V2,
    PROTOCOLS,
    PSEUDO_BOXES,
    TAU,
    TAU_TOP1,
    TEST_TAU,
    TOP1_LOC,
    TSCAM2021,
    ZHOU2016,
)
from pipeline.errors import CamlocError
from pipeline.metrics.protocols import hits
from pipeline.report.protocols import read_section
from pipeline.stages import evaluate

LOC = "head"  # synthpets' loc kind


def _run(root, prepared_dir, params) -> tuple[C.Paths, dict]:
    paths = _paths(root, prepared_dir)
    if not paths.cams_dir(BACKBONE).exists():
        write_cams(prepared_dir, paths.cams_dir(BACKBONE))
    evaluate.run(params, paths, BACKBONE)
    return paths, read_section(paths.metrics_file(BACKBONE))


@pytest.fixture(scope="module")
def base(tmp_path_factory, prepared_dir, synthpets_params):
    root = tmp_path_factory.mktemp("protocols")
    params = _params(synthpets_params)
    paths, section = _run(root, prepared_dir, params)
    return root, params, paths, section


def test_every_profile_and_method_is_scored(base):
    _, params, _, section = base
    assert tuple(params.evaluate.protocols) == DEFAULT_PROFILES
    assert sorted(section) == sorted(DEFAULT_PROFILES)
    for profile in DEFAULT_PROFILES:
        assert sorted(section[profile]) == sorted(METHODS)
        for values in section[profile].values():
            assert set(values) == {TOP1_LOC, GT_KNOWN_LOC, TAU, TAU_TOP1, MAXBOXACC, MAXBOXACC_V2}


def test_choe2020_is_the_flat_honest_numbers(base):
    _, _, paths, section = base
    flat = C.read_metrics(paths.metrics_file(BACKBONE))  # the nested section does not disturb the flat reader
    chosen = C.read_chosen(paths.eval_dir(BACKBONE))
    for m in METHODS:
        got = section[CHOE2020][m]
        assert got[MAXBOXACC] == flat[f"{m}.maxboxacc_{LOC}"]
        assert got[MAXBOXACC_V2] == flat[f"{m}.maxboxacc_v2_{LOC}"]
        assert got[GT_KNOWN_LOC] == flat[f"{m}.maxboxacc_{LOC}_val_tau"]
        assert got[TAU] == pytest.approx(chosen[m]["val"][LOC]["v1"]) and got[TAU_TOP1] == got[TAU]


def test_test_tau_is_an_upper_bound_of_choe2020_on_every_row(base):
    section = base[3]
    for m in METHODS:
        for metric in LOC_METRICS:
            assert section[TEST_TAU][m][metric] >= section[CHOE2020][m][metric]


def test_fixed_tau_profiles_use_their_published_tau(base):
    section = base[3]
    for m in METHODS:
        assert section[ZHOU2016][m][TAU] == pytest.approx(0.2) and section[TSCAM2021][m][TAU] == pytest.approx(0.1)


def test_the_rows_reproduce_each_number(base):
    _, _, paths, section = base
    rows = pd.read_parquet(paths.eval_dir(BACKBONE) / C.PROTOCOLS_FILE)
    index = C.read_cams_index(paths.cams_dir(BACKBONE), "test").set_index("image_id")
    for (profile, m), g in rows.groupby(["profile", "method"]):
        card, values = PROTOCOLS.get(profile), section[profile][m]
        wide = g.pivot_table(index="image_id", columns="tau", values="iou")  # (N, K)
        ok = (index.loc[wide.index, "pred"] == index.loc[wide.index, "label"]).to_numpy()
        for metric, strict, mask, tau in ((GT_KNOWN_LOC, card.gt_known_strict, None, TAU),
                                          (TOP1_LOC, card.top1_strict, ok, TAU_TOP1)):
            col = int(np.argmin(np.abs(wide.columns.to_numpy() - values[tau])))
            hit = hits(wide.iloc[:, col].to_numpy(np.float64), strict)
            acc = 100 * float((hit & (True if mask is None else mask)).mean())
            assert acc == pytest.approx(values[metric], abs=1e-6), (profile, m, metric)
        assert wide.shape[1] == (len(np.arange(0, 1, 0.05)) if card.oracle else 1)


def test_fixed_taus_off_the_grid_get_their_own_pass(base, prepared_dir):
    root, params, _, section = base
    coarse = dataclasses.replace(params, evaluate=dataclasses.replace(params.evaluate, interval=0.03))
    _, other = _run(root, prepared_dir, coarse)  # 0.1 and 0.2 are not multiples of 0.03
    for profile in (ZHOU2016, TSCAM2021):
        for m in METHODS:
            for metric in (*LOC_METRICS, TAU):
                assert other[profile][m][metric] == pytest.approx(section[profile][m][metric])


def _pseudo_file(tmp_path, prepared_dir, paths, extra: str = ""):
    ids = set(C.read_cams_index(paths.cams_dir(BACKBONE), C.HOLDOUT)["image_id"])
    boxes = C.read_boxes(prepared_dir)
    boxes = boxes[(boxes["kind"] == LOC) & boxes["image_id"].isin(ids)]
    lines = [f"{r.image_id},{r.x0},{r.y0},{r.x1},{r.y1}" for r in boxes.itertuples()]
    path = tmp_path / "localization.txt"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def test_pseudo_boxes_equal_to_the_val_gt_give_choe2020_exactly(base, prepared_dir, tmp_path):
    root, params, paths, _ = base
    path = _pseudo_file(tmp_path, prepared_dir, paths)
    ep = dataclasses.replace(params.evaluate, protocols=(CHOE2020, PSEUDO_BOXES), pseudo_boxes=str(path))
    _, section = _run(root, prepared_dir, dataclasses.replace(params, evaluate=ep))
    assert section[PSEUDO_BOXES] == section[CHOE2020]


def test_a_pseudo_box_of_a_test_image_is_one_clear_line(base, prepared_dir, tmp_path):
    root, params, paths, _ = base
    test_id = C.read_cams_index(paths.cams_dir(BACKBONE), "test")["image_id"].iloc[0]
    path = _pseudo_file(tmp_path, prepared_dir, paths, f"{test_id},0,0,5,5\n")
    ep = dataclasses.replace(params.evaluate, protocols=(CHOE2020, PSEUDO_BOXES), pseudo_boxes=str(path))
    with pytest.raises(CamlocError, match="is not in the val split") as err:
        evaluate.run(dataclasses.replace(params, evaluate=ep), paths, BACKBONE)
    assert "\n" not in str(err.value)


def test_the_rows_file_is_a_contract(base):
    rows = pd.read_parquet(base[2].eval_dir(BACKBONE) / C.PROTOCOLS_FILE)
    assert tuple(rows.columns) == C.PROTOCOL_COLUMNS
