"""Plugins through entry points (pipeline/catalog/plugins.py, docs/plugins.md): the example plugin's four
entries listed and validated without torch, a plugin whose import raises and one that reuses `cam`
each refused in one line naming the distribution, the built-ins untouched."""

from __future__ import annotations

import json
import sys

import pytest
from plugin_env import BROKEN, REPO, REUSES_CAM, camloc, env_with, fake_distribution, install_example

ENTRIES = {"backbones": "conv_head_cnn", "methods": "contrastive_cam", "wsol-methods": "random_erasing",
           "datasets": "csv_folder"}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return install_example(tmp_path_factory.mktemp("plugin") / "site")


def test_the_example_plugin_is_listed_with_its_origin(example):
    env = env_with(example)
    for command, name in ENTRIES.items():
        r = camloc([command], env)
        assert r.returncode == 0, r.stderr
        line = next(x for x in r.stdout.splitlines() if x.startswith(name))
        assert "[plugin camloc-plugin-example 0.1.0]" in line
    r = camloc(["plugins"], env)
    assert r.returncode == 0 and str(example) in r.stdout
    assert {"backbone: conv_head_cnn", "map method: contrastive_cam", "WSOL method: random_erasing",
            "dataset: csv_folder"} <= {x.strip() for x in r.stdout.splitlines()}


def test_plugin_names_are_validated_and_listed_without_importing_torch(example, tmp_path):
    code = f"""
import sys, yaml
from pipeline.params import load_params
raw = yaml.safe_load(open({str(REPO / 'params.yaml')!r}))
raw["dataset"] |= {{"name": "csv_folder", "archives": "/somewhere"}}
raw["backbones"] = {{"mine": {{"arch": "conv_head_cnn", "image_size": 32, "wsol": {{"method": "random_erasing"}}}}}}
raw["cams"]["methods"] = ["cam", "contrastive_cam"]
open({str(tmp_path / 'params.yaml')!r}, "w").write(yaml.safe_dump(raw))
p = load_params({str(tmp_path / 'params.yaml')!r})
from pipeline.catalog import listing
lines = listing.backbones() + listing.methods() + listing.wsol_methods() + listing.datasets() + listing.plugins()
print(p.backbones["mine"].wsol.hyperparameters, "torch" in sys.modules)
"""
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env_with(example), capture_output=True,
                       text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("}")[-1].strip() == "False"  # torch was never imported
    assert "'re_prob': 0.5" in r.stdout


def test_a_plugin_whose_import_raises_gives_one_clear_line(tmp_path):
    site = fake_distribution(tmp_path / "site", "camloc-broken-plugin", "broken_plugin", BROKEN)
    r = camloc(["methods"], env_with(site))
    assert r.returncode == 0  # the built-ins still list
    assert "cam" in [x.split()[0] for x in r.stdout.splitlines()]
    errors = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(errors) == 1, r.stderr
    assert "camloc-broken-plugin" in errors[0] and "libfoo" in errors[0] and "uninstall" in errors[0]
    listing = camloc(["plugins"], env_with(site))
    assert "error:" in listing.stdout and "camloc-broken-plugin" in listing.stdout


def test_a_plugin_reusing_cam_is_refused_naming_both_origins(tmp_path):
    site = fake_distribution(tmp_path / "site", "camloc-cam-again", "cam_again", REUSES_CAM)
    r = camloc(["methods"], env_with(site))
    assert r.returncode == 0
    errors = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(errors) == 1, r.stderr
    assert "'cam'" in errors[0] and "pipeline.catalog.methods" in errors[0] and "camloc-cam-again" in errors[0]
    names = [x.split()[0] for x in r.stdout.splitlines()]
    assert "cam" in names and "cam_two" not in names  # refused whole: its earlier registration is removed
    cam = next(x for x in r.stdout.splitlines() if x.startswith("cam "))
    assert "class weights of the linear head" in cam  # the built-in card, not the plugin's


def test_an_unknown_name_mentions_the_plugins_that_failed(tmp_path):
    site = fake_distribution(tmp_path / "site", "camloc-broken-plugin", "broken_plugin", BROKEN)
    code = ("from pipeline.catalog.methods import METHODS\n"
            "try:\n    METHODS.get('nope')\nexcept KeyError as e:\n    print(str(e))\n")
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env_with(site), capture_output=True, text=True,
                       timeout=300, check=False)
    assert "unknown map method 'nope'" in r.stdout and "camloc-broken-plugin" in r.stdout


def test_no_plugin_installed_lists_none():
    r = camloc(["plugins"], env_with())
    assert r.returncode == 0 and "no camloc plugins installed" in r.stdout
    assert json.dumps(r.stderr) == '""'
