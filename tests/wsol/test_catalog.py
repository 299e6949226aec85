"""The WSOL method registry, its params validation and `camloc wsol-methods` (torch-free)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from click.testing import CliRunner

from pipeline.catalog.backbones import BACKBONES
from pipeline.catalog.wsol import WSOL_METHODS
from pipeline.cli import cli
from pipeline.errors import ParamsError
from pipeline.params import load_params, to_dict
from tests.test_params import REPO, _write

# clovaai/wsolevaluation config.py: names and defaults kept key for key.
REFERENCE_DEFAULTS = {
    "has_grid_size": 4, "has_drop_rate": 0.5, "acol_threshold": 0.7,
    "spg_threshold_1h": 0.7, "spg_threshold_1l": 0.01, "spg_threshold_2h": 0.5, "spg_threshold_2l": 0.05,
    "spg_threshold_3h": 0.7, "spg_threshold_3l": 0.1,
    "adl_drop_rate": 0.75, "adl_threshold": 0.9, "cutmix_beta": 1.0, "cutmix_prob": 1.0,
}


def test_registry_holds_the_reference_methods_with_their_defaults():
    assert {"cam", "has", "acol", "spg", "adl", "cutmix", "fsl"} <= set(WSOL_METHODS.names())
    merged = {k: v for m in WSOL_METHODS.names() for k, v in WSOL_METHODS.get(m).defaults.items()}
    for name, value in REFERENCE_DEFAULTS.items():
        assert merged[name] == value and type(merged[name]) is type(value), name
    assert WSOL_METHODS.get("fsl").supervision == "boxes" and WSOL_METHODS.get("fsl").defaults["fsl_folds"] == 5
    assert all(WSOL_METHODS.get(m).supervision == "labels" for m in ("cam", "has", "acol", "spg", "adl", "cutmix"))


def test_cli_lists_every_method_with_its_paper():
    res = CliRunner().invoke(cli, ["wsol-methods"])
    assert res.exit_code == 0
    for name in WSOL_METHODS.names():
        assert any(line.startswith(name + " ") for line in res.output.splitlines()), name
    assert "Hide-and-Seek" in res.output and "adl_drop_rate=0.75" in res.output


def _set_wsol(wsol):
    def edit(raw):
        raw["backbones"]["tiny_gap_cnn"]["wsol"] = wsol
    return edit


def test_default_is_cam_and_given_values_override_the_defaults(tmp_path):
    p = load_params(_write(tmp_path, _set_wsol({"method": "has", "has_grid_size": 8})))
    first = p.backbones["tiny_gap_cnn"]
    assert first.wsol.method == "has" and first.wsol["has_grid_size"] == 8
    assert first.wsol["has_drop_rate"] == 0.5
    assert to_dict(first)["wsol"] == {"method": "has", "has_grid_size": 8, "has_drop_rate": 0.5}
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    plain = [k for k, v in raw["backbones"].items() if "wsol" not in v]
    assert plain and all(load_params(REPO / "params.yaml").backbones[k].wsol.method == "cam" for k in plain)


@pytest.mark.parametrize("wsol, key, hint", [
    ({"method": "hide"}, ".wsol.method", "acol, adl, cam"),
    ({"method": "has", "adl_drop_rate": 0.5}, ".wsol.adl_drop_rate", "has_drop_rate, has_grid_size"),
    ({"method": "has", "has_grid_size": 2.5}, ".wsol.has_grid_size", "integer"),
    ({"method": "adl", "adl_threshold": 1.5}, ".wsol.adl_threshold", "[0.0, 1.0]"),
    ({"method": "cutmix", "cutmix_prob": "all"}, ".wsol.cutmix_prob", "a number"),
    ({"method": "cam", "acol_threshold": 0.7}, ".wsol.acol_threshold", "takes: none"),
    ("adl", ".wsol", "mapping"),
])
def test_bad_wsol_entries_name_the_key_and_the_valid_choices(tmp_path, wsol, key, hint):
    with pytest.raises(ParamsError) as err:
        load_params(_write(tmp_path, _set_wsol(wsol)))
    assert key in err.value.key and hint in str(err.value)


def test_a_method_a_backbone_declares_no_hooks_for_is_refused_with_the_reason(tmp_path, monkeypatch):
    tiny = BACKBONES.get("tiny_gap_cnn")
    monkeypatch.setitem(BACKBONES._entries, "tiny_gap_cnn", dataclasses.replace(tiny, adl_points=()))

    def edit(raw):
        raw["backbones"] = {"t": {"arch": "tiny_gap_cnn", "wsol": {"method": "adl"}}}

    with pytest.raises(ParamsError, match="declares no ADL insertion points") as err:
        load_params(_write(tmp_path, edit))
    assert err.value.key == "backbones.t.wsol.method"
