"""evaluate@B under torchrun: two gloo CPU ranks (127.0.0.1, `--standalone`) score disjoint shards and
rank 0 writes metrics JSON, curves CSV and data/eval/<B>/ byte-identical to a one-process run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_evaluate_stage import S, write_cams

from pipeline import contracts as C
from pipeline.atomic import OWN_PREFIX

ROOT = Path(__file__).resolve().parents[2]
BACKBONE = "tiny_gap_cnn"  # a registered arch; evaluate reads only its image_size


def _outputs(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(OWN_PREFIX)}  # camloc's ownership markers (atomic.py)


def _run(args: list[str], out: Path, env: dict) -> subprocess.CompletedProcess:
    cmd = [*args, "evaluate", BACKBONE, "--params", str(out.parent / "params.yaml"), "--prepared",
           env["PREPARED"], "--cams", env["CAMS"], "--eval", str(out / "eval"), "--metrics", str(out / "metrics"),
           "--curves", str(out / "curves")]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, prepared_dir):
    root = tmp_path_factory.mktemp("evaluate_ddp")
    write_cams(prepared_dir, root / "cams" / BACKBONE)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["backbones"] = {BACKBONE: {"image_size": S}}
    params["evaluate"] = {"interval": 0.05, "fixed_tau": 0.2, "iou_thresholds": [30, 50, 70]}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PREPARED": str(prepared_dir),
           "CAMS": str(root / "cams")}
    return root, env


def test_two_torchrun_ranks_write_the_one_process_outputs_byte_for_byte(setup):
    root, env = setup
    one = _run([sys.executable, "-m", "pipeline"], root / "one", env)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "-m", "pipeline"], root / "two", env)
    assert two.returncode == 0, two.stderr[-3000:]
    assert f"evaluate {BACKBONE}: rank 1/2 scored its shards" in two.stdout  # two ranks really shared the work
    want, got = _outputs(root / "one"), _outputs(root / "two")
    assert set(want) == {*(f"eval/{BACKBONE}/{name}" for name in C.EVAL_FILES), f"metrics/{BACKBONE}.json",
                         f"curves/{BACKBONE}.csv"}
    assert set(got) == set(want)
    for name in want:
        assert got[name] == want[name], f"{name} differs between 2 ranks and 1 process"
    assert two.stdout.count(f"evaluate {BACKBONE}: 3 methods") == 1  # only the root reports the result
