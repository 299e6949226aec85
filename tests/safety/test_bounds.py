"""Issue 20, item 3: bounds before allocation; each refusal one line with the limit and why."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from pipeline import cli as camloc_cli
from pipeline.contracts import Paths
from pipeline.errors import CamlocError, ParamsError
from pipeline.params import PrepareParams, load_params
from pipeline.stages.prepare import run as prepare


def test_evaluate_interval_1e_9_is_refused_in_params(tmp_path):
    raw = {"backbones": {"b": {"arch": "tiny_gap_cnn"}}, "evaluate": {"interval": 1e-9}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=r"evaluate\.interval.*0\.0001"):
        load_params(tmp_path / "params.yaml", check_registries=False)


def test_evaluate_maps_interval_1e_9_is_one_line_before_any_allocation(tmp_path):
    (tmp_path / "maps").mkdir()
    np.save(tmp_path / "maps" / "a.npy", np.zeros((8, 8)))
    (tmp_path / "b.csv").write_text("image_id,x0,y0,x1,y1,width,height\na,0,0,3,3,8,8\n")
    r = CliRunner().invoke(camloc_cli.cli, ["evaluate-maps", "--maps", str(tmp_path / "maps"), "--boxes",
                                            str(tmp_path / "b.csv"), "--interval", "1e-9"])
    assert r.exit_code == 2 and "below the limit 0.0001" in r.output and "Traceback" not in r.output


def test_cache_size_100000_is_refused_against_free_disk_before_the_cache_file(tmp_path, tiny_params,
                                                                              synthpets_raw):
    params = tiny_params(prepare=PrepareParams(cache_size=100_000, workers=1))
    out = tmp_path / "prepared"
    with pytest.raises(CamlocError, match=r"prepare\.cache_size = 100000: the image cache .* GB free"):
        prepare(params, Paths(raw=synthpets_raw, prepared=out))
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no cache file, no temporary left
