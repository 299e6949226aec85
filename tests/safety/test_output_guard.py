"""Issue 20, item 1: no camloc command deletes or overwrites what it did not write.

Each case of the issue is one test (named after it), plus a property test over random output paths that
compares a listing of the whole tree, with hashes, before and after every command."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import cli as camloc_cli
from pipeline.atomic import atomic_path, child, write_json, write_text
from pipeline.contracts import Paths
from pipeline.errors import CamlocError, ParamsError
from pipeline.params import load_params

HEADER = "image_id,x0,y0,x1,y1,width,height\n"


def listing(root: Path) -> dict[str, str]:
    """Every path under root → its kind and content hash (links: their target), for before/after checks."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def maps_tree(root: Path, n: int = 4) -> Path:
    rng = np.random.default_rng(0)
    (root / "maps").mkdir(parents=True)
    (root / "masks").mkdir()
    lines = [HEADER]
    for i in range(n):
        np.save(root / "maps" / f"im{i}.npy", rng.random((16, 16)))
        cv2.imwrite(str(root / "masks" / f"im{i}.png"), rng.choice(np.array([0, 1], np.uint8), (16, 16)))
        lines.append(f"im{i},2,3,9,12,16,16\n")
    (root / "boxes.csv").write_text("".join(lines))
    return root


def user_stuff(root: Path) -> None:
    """What a user has: a folder of files, a lone file, a link to a file elsewhere."""
    (root / "userdir").mkdir()
    (root / "userdir" / "thesis.tex").write_text("years of work\n")
    (root / "userfile.json").write_text('{"mine": true}\n')
    (root / "elsewhere.txt").write_text("precious\n")
    (root / "link.json").symlink_to(root / "elsewhere.txt")


def invoke(args, cwd: Path):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(camloc_cli.cli, [str(a) for a in args])
    finally:
        os.chdir(old)


def common(root: Path) -> list:
    return ["--maps", root / "maps", "--boxes", root / "boxes.csv", "--interval", "0.1"]


# --------------------------------------------------------------------------------------------------
# Names that become paths, and resolved-path containment


@pytest.mark.parametrize("key", ["..", "../..", "../../../escaped", ".hidden", "a/b", "", "猫"])
def test_backbone_key_with_dotdot_is_refused_before_anything_is_written(tmp_path, key):
    raw = {"backbones": {key: {"arch": "tiny_gap_cnn"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    before = listing(tmp_path)
    with pytest.raises(ParamsError, match=r"backbones\."):
        load_params(tmp_path / "params.yaml")
    assert listing(tmp_path) == before


def test_backbone_key_dotdot_via_train_cli_changes_nothing(tmp_path):
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    (tmp_path / "data" / "prepared" / "samples.parquet").write_bytes(b"user data")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"backbones": {"..": {"arch": "tiny_gap_cnn"}}}))
    before = listing(tmp_path)
    r = invoke(["train", "..", "--params", "params.yaml"], tmp_path)
    assert r.exit_code == 2 and "backbones.." in r.output and "Traceback" not in r.output
    assert listing(tmp_path) == before


def test_method_name_with_a_path_is_refused(tmp_path):
    raw = {"backbones": {"b": {"arch": "tiny_gap_cnn"}}, "cams": {"methods": ["../cam"]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=r"cams\.methods"):
        load_params(tmp_path / "params.yaml", check_registries=False)


def test_stage_path_of_a_dotdot_key_is_refused_by_the_contract(tmp_path):
    with pytest.raises(CamlocError, match="backbone key"):
        Paths(models=tmp_path / "models").model_dir("..")
    with pytest.raises(CamlocError, match="backbone key"):
        Paths(metrics=tmp_path).metrics_file("../x")


def test_resolved_output_path_leaving_its_folder_is_refused(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "models" / "b").symlink_to(tmp_path / "outside")
    with pytest.raises(CamlocError, match="outside"):
        child(tmp_path / "models", "b")


def test_guard_never_replaces_a_parent_folder(tmp_path):
    (tmp_path / "data" / "models").mkdir(parents=True)
    (tmp_path / "data" / "raw").mkdir()
    (tmp_path / "data" / "raw" / "x.jpg").write_bytes(b"img")
    before = listing(tmp_path)
    for final in (tmp_path / "data" / "models" / "..", Path("."), Path("..")):
        with pytest.raises(CamlocError, match="names the folder"), atomic_path(final) as tmp:
            tmp.mkdir()
    with pytest.raises(CamlocError, match="holds files camloc did not write"):  # data/ itself, by its name
        with atomic_path(tmp_path / "data") as tmp:
            tmp.mkdir()
            (tmp / "model.pt").write_bytes(b"")
    assert listing(tmp_path) == before


# --------------------------------------------------------------------------------------------------
# --out, --per-image and merge-eval on what a user has


@pytest.mark.parametrize("target", ["userdir", ".", "userfile.json", "link.json", "userdir/.."])
def test_evaluate_maps_out_on_an_existing_user_path_changes_nothing(tmp_path, target):
    maps_tree(tmp_path)
    user_stuff(tmp_path)
    before = listing(tmp_path)
    r = invoke(["evaluate-maps", *common(tmp_path), "--out", target], tmp_path)
    assert r.exit_code == 2, r.output
    assert "nothing was changed" in r.output and "Traceback" not in r.output
    assert listing(tmp_path) == before


@pytest.mark.parametrize("target", ["userdir", ".", "userfile.json"])
def test_evaluate_maps_per_image_on_an_existing_user_path_changes_nothing(tmp_path, target):
    maps_tree(tmp_path)
    user_stuff(tmp_path)
    before = listing(tmp_path)
    r = invoke(["evaluate-maps", *common(tmp_path), "--per-image", target], tmp_path)
    assert r.exit_code == 2, r.output
    assert listing(tmp_path) == before


@pytest.mark.parametrize("flag", ["--out", "--per-image"])
@pytest.mark.parametrize("target", ["userdir", ".", "userfile.json"])
def test_merge_eval_on_an_existing_user_path_changes_nothing(tmp_path, flag, target):
    maps_tree(tmp_path)
    r = invoke(["evaluate-maps", *common(tmp_path), "--shard", "0/1", "--out", "part.npz"], tmp_path)
    assert r.exit_code == 0, r.output
    user_stuff(tmp_path)
    before = listing(tmp_path)
    r = invoke(["merge-eval", "part.npz", flag, target], tmp_path)
    assert r.exit_code == 2, r.output
    assert listing(tmp_path) == before


def test_shard_out_on_a_user_file_changes_nothing(tmp_path):
    maps_tree(tmp_path)
    user_stuff(tmp_path)
    before = listing(tmp_path)
    r = invoke(["evaluate-maps", *common(tmp_path), "--shard", "0/1", "--out", "userfile.json"], tmp_path)
    assert r.exit_code == 2 and listing(tmp_path) == before


def test_rerun_replaces_its_own_outputs(tmp_path):
    maps_tree(tmp_path)
    for _ in range(2):
        r = invoke(["evaluate-maps", *common(tmp_path), "--out", "r.json", "--per-image", "r.csv"], tmp_path)
        assert r.exit_code == 0, r.output


def test_own_output_edited_by_the_user_is_not_overwritten(tmp_path):
    write_json(tmp_path / "r.json", {"a": 1})
    (tmp_path / "r.json").write_text("my notes\n")
    with pytest.raises(CamlocError, match="changed since camloc wrote it"):
        write_text(tmp_path / "r.json", "new\n")
    assert (tmp_path / "r.json").read_text() == "my notes\n"


def test_stage_folder_with_a_user_file_inside_is_not_replaced(tmp_path):
    final = tmp_path / "eval" / "b"
    for extra in (False, True):
        if extra:
            (final / "notes.txt").write_text("mine\n")
        try:
            with atomic_path(final, kind="dir") as tmp:
                tmp.mkdir()
                (tmp / "per_image.parquet").write_bytes(b"x")
        except CamlocError as e:
            assert extra and "notes.txt" in str(e)
        else:
            assert not extra
    assert (final / "notes.txt").read_text() == "mine\n"


# --------------------------------------------------------------------------------------------------
# The property: for random output paths every command refuses (exit 2, nothing changed) or writes only
# its own output.

NAMES = ["userdir", "userfile.json", "link.json", ".", "..", "userdir/..", "userdir/thesis.tex",
         "userdir/new.json", "new.json", "new/deep/out.json", "maps", "boxes.csv", "masks", "maps/im0.npy",
         "part.npz", "../outside.json"]


TINY = {"backbones": {"b": {"arch": "tiny_gap_cnn", "image_size": 32}}, "prepare": {"cache_size": 32, "workers": 1},
        "synthpets": {"num_classes": 2, "trainval_per_class": 6, "test_per_class": 2, "min_size": 40,
                      "max_size": 48, "workers": 1}, "split": {"val_per_class": 1, "test_per_class": 2}}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cmd=st.sampled_from(["eval-out", "eval-per-image", "shard", "merge-out", "merge-per-image", "download",
                            "prepare"]),
       target=st.sampled_from(NAMES))
def test_random_output_paths_refuse_or_write_only_their_own_output(tmp_path_factory, synthpets_raw, cmd, target):
    top = tmp_path_factory.mktemp("prop")
    root = top / "work"
    maps_tree(root)
    assert invoke(["evaluate-maps", *common(root), "--shard", "0/1", "--out", "part.npz"], root).exit_code == 0
    user_stuff(root)
    (top / "params.yaml").write_text(yaml.safe_dump(TINY))
    before = listing(top)
    params = ["--params", top / "params.yaml"]
    args = {"eval-out": ["evaluate-maps", *common(root), "--out", target],
            "eval-per-image": ["evaluate-maps", *common(root), "--per-image", target],
            "shard": ["evaluate-maps", *common(root), "--shard", "0/1", "--out", target],
            "merge-out": ["merge-eval", "part.npz", "--out", target],
            "merge-per-image": ["merge-eval", "part.npz", "--per-image", target],
            "download": ["download", *params, "--out", target],
            "prepare": ["prepare", *params, "--raw", synthpets_raw, "--out", target]}[cmd]
    r = invoke(args, root)
    after = listing(top)
    if r.exit_code == 2:
        assert after == before, r.output
        return
    assert r.exit_code == 0, r.output
    own = os.path.normpath(os.path.join("work", target))
    marker = os.path.join(os.path.dirname(own), ".camloc-own." + os.path.basename(own))
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    parents = {str(p) for p in Path(own).parents}  # new parent folders
    outside = {k for k in changed - {own, marker} - parents if not k.startswith(own + os.sep)}
    assert not outside, outside  # a folder output changes only what lies inside it
    assert before.get(own) is None or (top / os.path.dirname(own) / Path(marker).name).exists()
