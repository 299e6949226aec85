"""`camloc compare`: the leaderboard across `dvc exp` experiments, read through `dvc.api.exp_show`.

exp_show gives one flat dict per experiment row: metric columns are `<file>:<key>` when several metrics
files exist (ours: reports/metrics/<backbone>.json) and bare `<key>` when there is one; params are
`<dotted.key>` (or `<file>:<dotted.key>`). We reshape that into one row per (experiment, backbone,
method) and say which params each experiment changed. "Created" times are left out: the table is a
function of the experiments' results only.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd

from pipeline.atomic import write_text
from pipeline.errors import CamlocError
from pipeline.params import Params
from pipeline.report import writers
from pipeline.report.tables import LOWER_IS_BETTER

log = logging.getLogger(__name__)

META = ("Experiment", "rev", "typ", "Created", "parent", "State", "Executor")
SHOWN = ("maxboxacc_v2_head", "maxboxacc_v2_head_val_tau", "maxboxacc_v2_body", "top1_loc", "pxap",
         "pointing_game_head", "deletion_auc", "insertion_auc")
AUCS = ("deletion_auc", "insertion_auc")  # in [0, 1]: three decimals
METRICS_DIR = "reports/metrics/"
METRIC_DIRS = (METRICS_DIR, "reports/faithfulness/")  # every DVC metrics folder: <dir><backbone>.json
PARAM_SECTIONS = frozenset(f.name for f in dataclasses.fields(Params))


def _split_key(key: str) -> tuple[str | None, str]:
    file, sep, rest = key.rpartition(":")
    return (file, rest) if sep else (None, key)


def _is_param(key: str, value) -> bool:
    """Params and bare metric keys look alike (`a.b`); ours differ by their first part, a params.yaml
    section (metric keys start with a map method name or `classification`)."""
    file, name = _split_key(key)
    if file is not None:
        return file.endswith((".yaml", ".yml", ".toml", ".json", ".py")) and not file.startswith(METRIC_DIRS)
    return name.split(".", 1)[0] in PARAM_SECTIONS


def experiment_rows(rows: list[dict], default_backbone: str) -> tuple[pd.DataFrame, int]:
    """exp_show rows → long frame (experiment, rev, backbone, method, metric columns, params changed).

    Returns the frame and how many experiment rows had no metrics (queued, running or failed).
    """
    records, skipped = [], 0
    params = [{k: v for k, v in r.items() if k not in META and _is_param(k, v)} for r in rows]
    varying = {k for p in params for k in p if len({repr(q.get(k)) for q in params}) > 1}
    for row, p in zip(rows, params, strict=True):
        label = row.get("Experiment") or row.get("rev") or "?"
        changed = ", ".join(f"{_split_key(k)[1]}={p[k]}" for k in sorted(varying) if k in p)
        per: dict[tuple[str, str], dict[str, float]] = {}
        for key, value in row.items():
            if key in META or key in p or not isinstance(value, int | float) or isinstance(value, bool):
                continue
            file, name = _split_key(key)
            backbone = Path(file).stem if file else default_backbone
            method, _, metric = name.partition(".")
            if method == "classification":
                per.setdefault((backbone, "*"), {})["top1_acc" if metric == "top1" else metric] = float(value)
            elif metric:
                per.setdefault((backbone, method), {})[metric] = float(value)
        if not any(m != "*" for _, m in per):
            skipped += 1
            continue
        for (backbone, method), values in per.items():
            if method == "*":
                continue
            top1 = per.get((backbone, "*"), {}).get("top1_acc")
            records.append({"experiment": label, "rev": str(row.get("rev", "")), "backbone": backbone,
                            "method": method, "top1_acc": top1, **values, "params": changed})
    return pd.DataFrame(records), skipped


def _default_backbone(rows: list[dict], repo: Path) -> str:
    """Backbone of bare metric keys (a single metrics file): its file name, else the one backbone."""
    files = sorted((repo / METRICS_DIR).glob("*.json"))
    if len(files) == 1:
        return files[0].stem
    names = {_split_key(k)[1].split(".")[1] for r in rows for k in r
             if _split_key(k)[1].startswith("backbones.") and k.count(".") >= 2}
    return names.pop() if len(names) == 1 else "?"


def comparison_markdown(df: pd.DataFrame, skipped: int) -> str:
    """The cross-experiment leaderboard as markdown, best first by head-box MaxBoxAccV2."""
    shown = [m for m in SHOWN if m in df.columns]
    df = df.sort_values(shown[:1] or ["experiment"], ascending=False, kind="stable", na_position="last")
    cols = [writers.Column("experiment", "experiment"), writers.Column("backbone", "backbone"),
            writers.Column("method", "method"), writers.Column("top1_acc", "cls top-1", bold_best=True)]
    cols += [writers.Column(m, m, 3 if m in AUCS else 1, bold_best=True, lower_better=m in LOWER_IS_BETTER)
             for m in shown]
    cols.append(writers.Column("params", "changed params"))
    df = df.reindex(columns=[c.key for c in cols])
    df["top1_acc"] = df["top1_acc"].astype(float)
    text = "# camloc experiments\n\n" + writers.to_markdown(writers.render_cells(df.reset_index(drop=True), cols))
    if skipped:
        text += f"\n{skipped} experiment rows without metrics (queued, running or failed) are left out.\n"
    return text


def run(out: Path | None, repo: str | Path | None = None) -> str:
    """Read every experiment of the repo at `repo` (default: cwd) and return (and write) the markdown."""
    import dvc.api
    from dvc.exceptions import DvcException

    root = Path(repo) if repo is not None else Path(".")
    try:
        rows = dvc.api.exp_show(repo=str(root))
    except DvcException as e:
        raise CamlocError(f"cannot read experiments of {root.resolve()} ({e}): run `camloc compare` inside the "
                          "camloc repository (a git + DVC repo) after `dvc repro` or `dvc exp run`") from None
    df, skipped = experiment_rows(rows, _default_backbone(rows, root))
    if df.empty:
        raise CamlocError("no experiment has metrics yet: run `dvc repro` or `dvc exp run` first, then "
                          "`dvc exp show` lists them")
    text = comparison_markdown(df, skipped)
    if out is not None:
        write_text(out, text)
    log.info("compared %d rows from %d experiment rows", len(df), len(rows))
    return text
