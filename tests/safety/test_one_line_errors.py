"""Issue 20, item 9: each case that ended in a traceback is one line naming the file (and line) and the fix.
(The partial-state and weights cases live beside their items: test_shard_proofs.py, test_strict_weights.py.)"""

from __future__ import annotations

import io
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/twins.py
from twins import make_boxes_twin  # noqa: E402

from pipeline import cli as camloc_cli  # noqa: E402
from pipeline.datasets.extract import safe_extract  # noqa: E402
from pipeline.datasets.wsol import read_metadata  # noqa: E402
from pipeline.errors import CamlocError  # noqa: E402


def test_a_box_coordinate_of_1e23_in_wsol_metadata_is_one_line(tmp_path):
    make_boxes_twin(tmp_path / "images", tmp_path / "meta", per_class={"train": 2, "val": 1, "test": 1})
    loc = tmp_path / "meta" / "test" / "localization.txt"
    first = loc.read_text().splitlines()[0].split(",")[0]
    loc.write_text(f"{first},0,0,{10 ** 23},5\n")
    with pytest.raises(CamlocError, match=r"localization.txt:1: x1 1000000000000000000000000? is beyond any image"):
        read_metadata(tmp_path / "meta", tmp_path / "images")


def test_a_box_coordinate_of_1e23_in_a_boxes_csv_is_one_line(tmp_path):
    (tmp_path / "maps").mkdir()
    np.save(tmp_path / "maps" / "a.npy", np.zeros((8, 8)))
    (tmp_path / "b.csv").write_text(f"image_id,x0,y0,x1,y1,width,height\na,0,0,{10 ** 23},3,8,8\n")
    r = CliRunner().invoke(camloc_cli.cli, ["evaluate-maps", "--maps", str(tmp_path / "maps"), "--boxes",
                                            str(tmp_path / "b.csv")])
    assert r.exit_code == 2 and "finite integers" in r.output and "Traceback" not in r.output


def test_a_tar_with_a_file_and_a_folder_of_the_same_name_is_one_line(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("images/a", b"file"), ("images/a/b.jpg", b"inside")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    (tmp_path / "x.tar.gz").write_bytes(buf.getvalue())
    with pytest.raises(CamlocError, match=r"'images/a' is both a file and a folder in the archive"):
        safe_extract(tmp_path / "x.tar.gz", tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
