"""params.yaml validation: every user error names the key, the bad value and what is valid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.errors import ParamsError
from pipeline.params import Params, load_params

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_default_params_are_valid():
    p = load_params(REPO / "params.yaml")
    assert isinstance(p, Params)
    assert p.backbones, "the default params train at least one backbone"


BAD = [
    ("typo in a key", lambda r: r["split"].update(val_per_clas=3), "split.val_per_clas", "val_per_class"),
    ("unknown backbone", lambda r: r["backbones"].update(nope={"epochs": 1}), "backbones.nope.arch", "resnet18"),
    ("unknown method", lambda r: r["cams"].update(methods=["cam", "gradkam"]), "cams.methods", "gradcam"),
    ("negative lr", lambda r: next(iter(r["backbones"].values())).update(lr=-0.1), ".lr", "positive"),
    ("wrong type", lambda r: r["split"].update(val_per_class="five"), "split.val_per_class", "integer"),
    ("bad dataset", lambda r: r["dataset"].update(name="imagenet"), "dataset.name", "synthpets"),
    ("bad dtype", lambda r: r["cams"].update(dtype="int8"), "cams.dtype", "float16"),
    ("bad interval", lambda r: r["evaluate"].update(interval=1.5), "evaluate.interval", "[0.0001, 1)"),
    ("negative pointing tolerance", lambda r: r["evaluate"].update(pointing_tolerance=-1),
     "evaluate.pointing_tolerance", ">= 0"),
    ("no faithfulness images", lambda r: r["faithfulness"].update(max_images=0), "faithfulness.max_images", "positive"),
    ("one faithfulness step", lambda r: r["faithfulness"].update(steps=1), "faithfulness.steps", ">= 2"),
    ("unknown faithfulness split", lambda r: r["faithfulness"].update(splits=["tst"]), "faithfulness.splits",
     "test_official"),
    ("faithfulness key typo", lambda r: r["faithfulness"].update(step=4), "faithfulness.step", "steps"),
]


@pytest.mark.parametrize("name,edit,key,hint", BAD, ids=[b[0] for b in BAD])
def test_bad_params_name_key_and_choices(tmp_path, name, edit, key, hint):
    path = _write(tmp_path, edit)
    with pytest.raises(ParamsError) as e:
        load_params(path)
    assert key in str(e.value) and hint in str(e.value)


def test_image_size_must_suit_backbone(tmp_path):
    def edit(r):
        r["backbones"] = {"resnet18": {"image_size": 100}}

    with pytest.raises(ParamsError, match=r"backbones\.resnet18\.image_size.*multiple of 32"):
        load_params(_write(tmp_path, edit))


def test_cli_user_error_exits_2_without_traceback(tmp_path):
    path = _write(tmp_path, lambda r: r["split"].update(val_per_clas=3))
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "prepare", "--params", str(path), "--raw", str(tmp_path / "raw"),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=REPO,
    )
    assert proc.returncode == 2
    assert "split.val_per_clas" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_cli_debug_shows_traceback(tmp_path):
    path = _write(tmp_path, lambda r: r["split"].update(val_per_clas=3))
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "--debug", "prepare", "--params", str(path)],
        capture_output=True, text=True, cwd=REPO,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_help_lists_every_stage():
    proc = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0
    for cmd in ("download", "prepare", "train", "cams", "evaluate", "evaluate-maps", "report", "compare",
                "backbones", "methods"):
        assert f"  {cmd} " in proc.stdout


def test_a_recipe_that_drops_the_vit_keeps_its_extra_methods_harmless(tmp_path, caplog):
    """`-S ~backbones -S +backbones={...}` (the README's recipes) leaves cams.extra_methods naming the
    default run's transformer: a warning naming it, not an error, and no method added to the new entry."""
    def edit(r):
        r["backbones"] = {"resnet18": {"image_size": 96}}
        r["cams"]["extra_methods"] = {"vit_cpu": ["cls_attention"]}

    with caplog.at_level("WARNING", logger="pipeline.paramchecks"):
        p = load_params(_write(tmp_path, edit))
    assert "cams.extra_methods.vit_cpu names no entry of backbones" in caplog.text
    assert p.cams.methods_for("resnet18") == p.cams.methods
