"""The architecture of docs/DESIGN and docs/contracts.md, checked: which modules stay torch-free (and
pandas-free), the contract page naming every name contracts.py defines, module sizes, and dvc.yaml's
code deps matching what each stage really imports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from pipeline import contracts as C
from pipeline import faithcontracts as FC

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400
STAGES = ("download", "prepare", "train", "cams", "evaluate", "faithfulness", "report")

# Records, for each watched top-level package, the pipeline frames of the first import that loaded it,
# then runs the test's code and prints {"loaded": [pipeline modules → file], "watched": {pkg: chain}}.
PREAMBLE = '''
import json, sys, traceback
WATCH = {"torch", "torchvision", "pandas"}
_first = {}
class _Recorder:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in WATCH and top not in _first:
            _first[top] = [f"{f.filename}:{f.lineno}" for f in traceback.extract_stack()[:-1]
                           if "/pipeline/" in f.filename]
        return None
sys.meta_path.insert(0, _Recorder())
'''
EPILOGUE = '''
_loaded = {m: getattr(mod, "__file__", None) for m, mod in sorted(sys.modules.items())
           if m == "pipeline" or m.startswith("pipeline.")}
_watched = {k: v for k, v in _first.items() if k in sys.modules}
print("@@" + json.dumps({"loaded": _loaded, "watched": _watched}))
'''


def fresh(code: str) -> dict:
    """Run `code` in a new interpreter at the repo root; what it loaded (see PREAMBLE)."""
    src = PREAMBLE + textwrap.dedent(code) + EPILOGUE
    res = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, cwd=ROOT, check=False)
    assert res.returncode == 0, res.stderr[-4000:]
    line = next(x for x in res.stdout.splitlines() if x.startswith("@@"))
    return json.loads(line[2:])


# --------------------------------------------------------------------------------------------------
# (a) torch-free and pandas-free modules


def test_data_stages_evaluate_report_params_and_cli_never_import_torch():
    got = fresh("""
        import importlib, pkgutil
        import pipeline.stages.download, pipeline.stages.prepare, pipeline.stages.evaluate, pipeline.stages.report
        import pipeline.metrics, pipeline.metrics.folder, pipeline.contracts, pipeline.params
        for m in pkgutil.iter_modules(pipeline.metrics.__path__, "pipeline.metrics."):
            importlib.import_module(m.name)
        params = pipeline.params.load_params("params.yaml")  # validates names against the registries
        assert params.backbones and params.cams.methods
        from click.testing import CliRunner
        from pipeline.cli import cli
        for args in (["--help"], ["evaluate-maps", "--help"], ["evaluate", "--help"], ["methods"], ["backbones"],
                     ["wsol-methods"], ["datasets"], ["metrics"], ["layouts"], ["plugins"]):
            r = CliRunner().invoke(cli, args)
            assert r.exit_code == 0, (args, r.output, r.exception)
    """)
    for pkg in ("torch", "torchvision"):
        assert pkg not in got["watched"], f"{pkg} imported via {got['watched'][pkg]}"


def test_metrics_package_imports_neither_torch_nor_pandas():
    """DESIGN: metrics/ is numpy + OpenCV only (every submodule, the folder evaluator included)."""
    got = fresh("""
        import importlib, pkgutil
        import pipeline.metrics
        for m in pkgutil.iter_modules(pipeline.metrics.__path__, "pipeline.metrics."):
            importlib.import_module(m.name)
    """)
    names = {m.rsplit(".", 1)[-1] for m in got["loaded"] if m.startswith("pipeline.metrics.")}
    assert {"boxes", "boxacc", "folder", "pixels", "summary"} <= names  # the walk did import the submodules
    for pkg in ("torch", "torchvision", "pandas"):
        assert pkg not in got["watched"], f"pipeline.metrics imported {pkg} via {got['watched'][pkg]}"


# --------------------------------------------------------------------------------------------------
# (b) docs/contracts.md names every name contracts.py defines

DOC = ROOT / "docs" / "contracts.md"
NAME_SETS = ("SAMPLE_COLUMNS", "BOX_COLUMNS", "INDEX_COLUMNS", "PER_IMAGE_COLUMNS", "PIXEL_COLUMNS",
             "CURVE_COLUMNS", "HISTORY_COLUMNS", "METRIC_NAMES", "PREPARED_FILES", "MODEL_FILES", "EVAL_FILES",
             "RAW_ENTRIES", "POINTING_COLUMNS", "PROTOCOL_COLUMNS", "FC.FAITHFULNESS_NAMES",
             "FC.FAITHFULNESS_FILES", "FC.FAITHFULNESS_COLUMNS", "FC.FAITHFULNESS_CURVE_COLUMNS", "FC.ROAD_COLUMNS")


def _backticked(text: str) -> list[str]:
    """Every inline `...` span of the page (a span may wrap onto the next line; fenced blocks are
    dropped first so that their ``` fences do not pair up with inline backticks)."""
    text = re.sub(r"^```.*?^```", " ", text, flags=re.S | re.M)
    return [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", text)]


def doc_tokens(text: str) -> set[str]:
    """Names written in backticks, alone or in a list: each span split on commas, blanks, slashes,
    pipes, braces, brackets, parentheses, quotes, colons and `=`, so `x0, y0, x1, y1`,
    `data/eval/B/per_image.parquet` and `leaderboard.{md,csv}` all yield their names."""
    out = set()
    for span in _backticked(text):
        out.update(t.strip(".") for t in re.split(r"[\s,/|{}\[\]()\"':=<>]+", span) if t.strip("."))
    return out


@pytest.mark.parametrize("name_set", NAME_SETS)
def test_contract_page_names_every_name(name_set):
    tokens = doc_tokens(DOC.read_text())
    module, attr = (FC, name_set[3:]) if name_set.startswith("FC.") else (C, name_set)
    missing = [n for n in getattr(module, attr) if n not in tokens]
    assert not missing, f"docs/contracts.md does not name these {module.__name__}.{attr} entries (in backticks): {missing}"


def test_contract_page_names_every_stage_folder():
    spans = [s.strip() for s in _backticked(DOC.read_text())]
    defaults = C.Paths()
    missing = []
    for field in ("raw", "prepared", "models", "cams", "eval", "metrics", "curves", "reports", "faithfulness",
                  "faithfulness_data"):
        folder = getattr(defaults, field).as_posix().rstrip("/")
        if not any(s.rstrip("/") == folder or s.startswith(folder + "/") for s in spans):
            missing.append(f"{field}={folder}")
    assert not missing, f"docs/contracts.md names no path under these Paths defaults: {missing}"


def test_doc_tokenizer_reads_the_page_conventions():
    text = ("`x0, y0, x1, y1` int; `data/eval/B/per_image.parquet`; `leaderboard.{md,csv}`; `mode` (largest|all)\n"
            "```\nfenced `block\n```\nlong format `image_id, split,\n  tau_index`, plus `chosen.json`")
    tokens = doc_tokens(text)
    assert {"x0", "y1", "per_image.parquet", "md", "csv", "mode", "tau_index", "chosen.json"} <= tokens
    assert not {"largest", "plus", "fenced", "block"} & tokens  # outside backticks


# --------------------------------------------------------------------------------------------------
# (c) module size


SOURCE_SUFFIXES = (".py", ".js", ".css", ".html", ".sh")


def tracked_sources() -> dict[str, int]:
    """Lines of every source file git tracks (and untracked, not ignored: new files count before commit)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    return {f: len((ROOT / f).read_text().splitlines()) for f in files
            if f.endswith(SOURCE_SUFFIXES) and (ROOT / f).is_file()}


def test_every_tracked_source_file_stays_under_the_line_limit():
    """pipeline/, tests/, benchmarks/, examples/ and the explorer's JS alike; a file over the limit is
    split by meaning (never crammed: a cohesive piece may be argued longer, not squeezed)."""
    sizes = tracked_sources()
    assert len([f for f in sizes if f.startswith("pipeline/")]) > 30 and any(f.endswith(".js") for f in sizes)
    over = {p: n for p, n in sizes.items() if n > MAX_LINES}
    assert not over, f"source files over {MAX_LINES} lines (split them by responsibility): {over}"


# --------------------------------------------------------------------------------------------------
# (d) dvc.yaml code deps = the modules each stage imports

# Shared plumbing, deliberately not a code dep of any stage (dvc.yaml's header says why).
PLUMBING = {f"pipeline/{p}" for p in ("__init__.py", "cli.py", "params.py", "paramtypes.py", "camsparams.py", "contracts.py", "faithcontracts.py", "paramchecks.py", "atomic.py", "errors.py",
                                      "progress.py", "parallel.py", "stages/__init__.py", "protocolparams.py", "jitcache.py")}
PLUMBING |= {str(p.relative_to(ROOT)) for p in (ROOT / "pipeline" / "catalog").glob("*.py")}  # the cards
# Modules a stage loads lazily (inside registry functions or a module-level __getattr__).
LAZY = {"download": ("pipeline.datasets.archives", "pipeline.datasets.synthpets", "pipeline.datasets.wsol",
                     "pipeline.datasets.cub"),
        "train": ("pipeline.models.backbones", "pipeline.models.checkpoint"),
        "cams": ("pipeline.models.backbones", "pipeline.models.checkpoint", "pipeline.wsol.rebuild"),
        "faithfulness": ("pipeline.models.backbones", "pipeline.models.checkpoint", "pipeline.wsol.rebuild")}


def stage_code_deps(stage: str) -> list[str]:
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    body = spec.get("do", spec)  # foreach stages keep their deps under `do`
    return [d.rstrip("/") for d in body.get("deps", []) if isinstance(d, str) and d.startswith("pipeline/")]


def stage_imports(stage: str) -> set[str]:
    """Repo-relative files of the pipeline modules loaded by importing the stage (and its lazy modules)."""
    mods = (f"pipeline.stages.{stage}", *LAZY.get(stage, ()))
    got = fresh("import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in mods))
    files = set()
    for file in got["loaded"].values():
        if file:  # namespace packages (a folder without __init__.py) have no file
            files.add(Path(file).resolve().relative_to(ROOT).as_posix())
    return files


def _covered(file: str, deps: list[str]) -> bool:
    return any(file == d or file.startswith(d + "/") for d in deps)


def test_dvc_yaml_has_every_stage():
    assert set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]) == set(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_dvc_code_deps_match_the_stage_imports(stage):
    deps = stage_code_deps(stage)
    assert f"pipeline/stages/{stage}.py" in deps
    assert not [d for d in deps if not (ROOT / d).exists()], "dvc.yaml names code paths that do not exist"
    assert not [d for d in deps if d in PLUMBING], "shared plumbing is left out of the code deps"
    loaded = stage_imports(stage)
    uncovered = sorted(f for f in loaded - PLUMBING if not _covered(f, deps))
    unused = sorted(d for d in deps if not any(_covered(f, [d]) for f in loaded))
    assert not uncovered and not unused, (
        f"dvc.yaml stage {stage!r}: imported but not a dep: {uncovered}; a dep but never imported: {unused}")
