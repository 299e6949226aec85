"""pipeline.jitcache: compiled kernels found by their source's content, so a fresh copy of the project
loads what another copy compiled (each runs in its own process, as stages and test copies do)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNEL = '''from pipeline import jitcache

jitcache.by_content(__file__)

import numba


@numba.njit(cache=True)
def twice(x):
    return 2 * x
'''
PROBE = "import kern; assert kern.twice(21) == 42; print(sum(kern.twice.stats.cache_hits.values()))"


def _copy(tmp: Path, name: str, source: str = KERNEL) -> Path:
    folder = tmp / name
    folder.mkdir()
    (folder / "kern.py").write_text(source)
    return folder


def _hits(folder: Path, cache: Path, **env) -> int:
    """Cache hits of kern.twice when a new process in `folder` calls it (0: it compiled)."""
    base = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env = {**base, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}", **env}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=folder, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def test_a_copy_elsewhere_loads_what_the_first_compiled(tmp_path):
    cache = tmp_path / "cache"
    assert _hits(_copy(tmp_path, "clone1"), cache) == 0
    assert _hits(_copy(tmp_path, "clone2"), cache) == 1  # another path, the same source: no compile
    assert not list((tmp_path / "clone1").rglob("*.nbi"))  # nothing written next to the source
    assert len(list((cache / "camloc" / "numba").iterdir())) == 1


def test_an_edited_source_compiles_into_a_folder_of_its_own(tmp_path):
    cache = tmp_path / "cache"
    _hits(_copy(tmp_path, "old"), cache)
    assert _hits(_copy(tmp_path, "new", KERNEL.replace("2 * x", "x + x")), cache) == 0
    assert _hits(_copy(tmp_path, "old_again"), cache) == 1  # the first version's code is still there
    assert len(list((cache / "camloc" / "numba").iterdir())) == 2


def test_numba_cache_dir_set_by_the_user_wins(tmp_path):
    cache, chosen = tmp_path / "cache", tmp_path / "chosen"
    _hits(_copy(tmp_path, "a"), cache, NUMBA_CACHE_DIR=str(chosen))
    assert list(chosen.rglob("*.nbi")) and not (cache / "camloc").exists()


def test_an_unwritable_cache_falls_back_to_numba_s_own(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")  # XDG_CACHE_HOME is a file: the folder cannot be made
    folder = _copy(tmp_path, "a")
    assert _hits(folder, blocked) == 0
    assert _hits(folder, blocked) == 1  # numba's own __pycache__ next to the source
    assert list(folder.rglob("*.nbi"))
