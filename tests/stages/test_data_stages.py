"""The download and prepare commands end to end through the CLI: exit codes and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml
from click.testing import CliRunner

from pipeline.cli import cli

REPO = Path(__file__).resolve().parents[2]


def _params_file(tmp_path: Path, **sections) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, values in sections.items():
        raw[key] = {**(raw.get(key) or {}), **values}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_download_and_prepare_commands(tmp_path):
    runner = CliRunner()
    tiny = dict(num_classes=2, trainval_per_class=8, test_per_class=2, min_size=48, max_size=64, workers=1)
    params = _params_file(tmp_path, synthpets=tiny, split={"val_per_class": 1, "test_per_class": 2},
                          prepare={"workers": 1})
    res = runner.invoke(cli, ["download", "--params", str(params), "--out", str(tmp_path / "raw")])
    assert res.exit_code == 0, res.output
    assert "synthpets: generated 21 images of 2 classes" in res.output
    res = runner.invoke(cli, ["prepare", "--params", str(params), "--raw", str(tmp_path / "raw"),
                              "--out", str(tmp_path / "prepared")])
    assert res.exit_code == 0, res.output
    assert "prepared 20 images of 2 classes" in res.output
    assert len(pd.read_parquet(tmp_path / "prepared" / "samples.parquet")) == 20

    pets = _params_file(tmp_path, dataset={"name": "pets"})
    res = runner.invoke(cli, ["download", "--params", str(pets), "--out", str(tmp_path / "raw2"),
                              "--archives", str(tmp_path / "no-such-folder")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "no-such-folder is not a folder" in res.output
    bad = _params_file(tmp_path, split={"val_per_class": 1, "test_per_class": 99})
    res = runner.invoke(cli, ["prepare", "--params", str(bad), "--raw", str(tmp_path / "raw"),
                              "--out", str(tmp_path / "prepared")])
    assert res.exit_code == 2 and "split.test_per_class" in res.output
    assert len(pd.read_parquet(tmp_path / "prepared" / "samples.parquet")) == 20  # old output intact
