"""Throwaway plugin installations for the plugin tests: the example plugin installed with
`pip install --no-deps --target <tmp>` (never into the shared environment), and hand-made distributions
(a dist-info folder with METADATA and entry_points.txt, what importlib.metadata reads) for the broken ones."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "camloc-plugin-example"


def install_example(target: Path) -> Path:
    """pip-install the example plugin (from a copy, so no build folder lands in the repo) into `target`."""
    src = target.parent / "example-src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(src)], check=True, capture_output=True, text=True)
    return target


def fake_distribution(target: Path, dist: str, package: str, code: str) -> Path:
    """A distribution `dist` whose `camloc.plugins` entry point imports `package` (its __init__ is `code`)."""
    (target / package).mkdir(parents=True)
    (target / package / "__init__.py").write_text(code)
    info = target / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[camloc.plugins]\n{package} = {package}\n")
    return target


BROKEN = "raise ImportError('this plugin needs libfoo, which is not installed')\n"
REUSES_CAM = ("from pipeline.catalog.methods import METHODS, MethodInfo\n"
              "METHODS.add('cam_two', MethodInfo('cam_two', 'registered before the clash', impl='x:y'))\n"
              "METHODS.add('cam', MethodInfo('cam', 'a second cam', impl='x:y'))\n")


def env_with(*targets: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*(str(t) for t in targets), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def camloc(args: list[str], env: dict, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
