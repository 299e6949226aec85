"""`camloc compare`: one metric across `dvc exp` experiments, read through `dvc.api.exp_show`.

The table has one row per backbone × training method (when the params name one) × map method and one
column per experiment, baseline first, then each other experiment's difference to the baseline. Above
it, what each experiment changed: params only (exp_show mixes params and metrics in one flat dict;
params are the keys whose first part is a params.yaml section), each against the baseline's value.

exp_show gives one flat dict per experiment row: metric keys are `<method>.<metric>` (or
`<file>:<method>.<metric>` when two metrics files share a key); params are `<dotted.key>` (or
`<file>:<dotted.key>`). "Created" times are left out: the table depends on the results only.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.atomic import write_text
from pipeline.errors import CamlocError
from pipeline.params import Params
from pipeline.report import writers

log = logging.getLogger(__name__)

META = ("Experiment", "rev", "typ", "Created", "parent", "State", "Executor")
METRICS_DIR = "reports/metrics/"
METRIC_DIRS = (METRICS_DIR, "reports/faithfulness/")  # every DVC metrics folder: <dir><backbone>.json
PARAM_SECTIONS = frozenset(f.name for f in dataclasses.fields(Params))
PARAM_FILES = (".yaml", ".yml", ".toml", ".py")
DEFAULT_PREFIX = "maxboxacc_v2_"  # default metric: MaxBoxAccV2 of the first box kind found (head first)
TRAIN_METHOD = "train_method"  # the column of the WSOL training-method axis, when the params have it
TRAIN_METHOD_KEY = "backbones.{}.wsol.method"  # its param (an entry without `wsol` trains with cam)


def _split_key(key: str) -> tuple[str | None, str]:
    file, sep, rest = key.rpartition(":")
    return (file, rest) if sep else (None, key)


def _is_param(key: str) -> bool:
    """A params.yaml key: its first dotted part is a params section (metric keys start with a map
    method, `classification`, or a training metric such as `val_acc`), from a params file if named."""
    file, name = _split_key(key)
    if file is not None and not file.endswith(PARAM_FILES):
        return False
    return name.split(".", 1)[0] in PARAM_SECTIONS


def _label(row: dict) -> str:
    if row.get("rev") == "workspace":
        return "workspace"
    return str(row.get("Experiment") or row.get("rev") or "?")


def parse_rows(rows: list[dict], default_backbone: str) -> tuple[pd.DataFrame, dict[str, dict], list[dict], int]:
    """exp_show rows → (long frame experiment/backbone/method/metric/value, params per experiment,
    the rows kept, how many rows had no metrics: queued, running or failed)."""
    records, params, kept, skipped, seen = [], {}, [], 0, set()
    for row in rows:
        label = _label(row)
        if label in seen:
            label = f"{label} ({row.get('rev', '?')})"
        p = {_split_key(k)[1]: v for k, v in row.items() if k not in META and _is_param(k)}
        found = []
        for key, value in row.items():
            if key in META or _is_param(key) or not isinstance(value, int | float) or isinstance(value, bool):
                continue
            file, name = _split_key(key)
            if file is not None and not file.startswith(METRIC_DIRS):
                continue  # training metrics (data/models/<B>/metrics.json) are not leaderboard numbers
            method, _, metric = name.rpartition(".")  # method names may hold a dot (pgc.gradcam)
            if method and metric and method != "classification":
                backbone = Path(file).stem if file else default_backbone
                found.append({"experiment": label, "backbone": backbone, "method": method, "metric": metric,
                              "value": float(value)})
        if not found:
            skipped += 1
            continue
        seen.add(label)
        params[label] = p
        kept.append({**row, "label": label})
        records += found
    return pd.DataFrame(records, columns=["experiment", "backbone", "method", "metric", "value"]), params, kept, skipped


def default_metric(names) -> str | None:
    """`maxboxacc_v2_head` when present, else the first `maxboxacc_v2_<kind>` (not a val-τ variant)."""
    v2 = sorted(n for n in set(names) if n.startswith(DEFAULT_PREFIX) and not n.endswith("_val_tau"))
    return f"{DEFAULT_PREFIX}head" if f"{DEFAULT_PREFIX}head" in v2 else (v2[0] if v2 else None)


@dataclass(frozen=True)
class Comparison:
    metric: str
    baseline: str
    experiments: list[str]  # column order, the baseline first
    changed: dict[str, list[str]]  # experiment → "key=value (baseline: old)" for every param it changed
    table: pd.DataFrame  # backbone, [train_method], method, one column per experiment, then "Δ <experiment>"
    skipped: int


def _pick_baseline(kept: list[dict], wanted: str | None) -> str:
    labels = [r["label"] for r in kept]
    if wanted is not None:
        for r in kept:
            if wanted in (r["label"], str(r.get("rev")), str(r.get("Experiment"))):
                return r["label"]
        raise CamlocError(f"--baseline {wanted!r} is not an experiment with metrics; choose one of {labels}")
    head = [r["label"] for r in kept if r.get("typ") == "baseline" and r.get("rev") != "workspace"]
    return head[0] if head else labels[0]  # the workspace's HEAD commit


def _changed(params: dict[str, dict], baseline: str) -> dict[str, list[str]]:
    base = params[baseline]
    out = {}
    for label, p in params.items():
        keys = sorted(k for k in set(p) | set(base) if repr(p.get(k)) != repr(base.get(k)))
        out[label] = [f"{k}={p.get(k)} (baseline: {base.get(k)})" for k in keys]
    return out


def build(rows: list[dict], default_backbone: str, metric: str | None = None,
          baseline: str | None = None) -> Comparison:
    """The comparison table of one metric across the experiments of `rows` (dvc.api.exp_show)."""
    long, params, kept, skipped = parse_rows(rows, default_backbone)
    if long.empty:
        raise CamlocError("no experiment has metrics yet: run `dvc repro` or `dvc exp run` first, then "
                          "`dvc exp show` lists them")
    metric = metric or default_metric(long["metric"])
    if metric not in set(long["metric"]):
        raise CamlocError(f"--metric {metric!r} is in no experiment; choose one of {sorted(set(long['metric']))}")
    base = _pick_baseline(kept, baseline)
    order = [base] + [r["label"] for r in kept if r["label"] != base]
    sel = long[long["metric"] == metric].copy()
    keys = ["backbone", "method"]
    if any(TRAIN_METHOD_KEY.format(b) in p for p in params.values() for b in set(sel["backbone"])):
        sel[TRAIN_METHOD] = [str(params[e].get(TRAIN_METHOD_KEY.format(b), "cam"))
                             for e, b in zip(sel["experiment"], sel["backbone"], strict=True)]
        keys = ["backbone", TRAIN_METHOD, "method"]
    wide = sel.pivot_table(index=keys, columns="experiment", values="value", aggfunc="first")
    wide = wide.reindex(columns=[e for e in order if e in wide.columns])
    for e in wide.columns[1:] if base in wide.columns else []:
        wide[f"Δ {e}"] = wide[e] - wide[base]
    backbone_order = {b: i for i, b in enumerate(dict.fromkeys(sel["backbone"]))}
    wide = wide.reset_index()
    wide["_b"] = wide["backbone"].map(backbone_order)
    sort_by = ["_b", base] if base in wide.columns else ["_b"]
    wide = wide.sort_values(sort_by, ascending=[True, False][:len(sort_by)], kind="stable").drop(columns="_b")
    wide.columns.name = None
    return Comparison(metric, base, [e for e in order if e in wide.columns], _changed(params, base),
                      wide.reset_index(drop=True), skipped)


def _columns(c: Comparison) -> list[writers.Column]:
    cols = [writers.Column(k, k) for k in c.table.columns if k in ("backbone", TRAIN_METHOD, "method")]
    cols += [writers.Column(e, e + (" (baseline)" if e == c.baseline else "")) for e in c.experiments]
    cols += [writers.Column(k, k, digits=1) for k in c.table.columns if str(k).startswith("Δ ")]
    return cols


def _cells(c: Comparison) -> writers.Cells:
    cells = writers.render_cells(c.table, _columns(c))
    delta = [h.startswith("Δ ") for h in cells.headers]
    rows = [[("+" + t if d and t not in (writers.MISSING,) and not t.startswith("-") and float(t) != 0 else t)
             for t, d in zip(r, delta, strict=True)] for r in cells.rows]
    return writers.Cells(cells.headers, rows, cells.bold, cells.numeric)


def _header_lines(c: Comparison) -> list[str]:
    lines = [f"Metric: `{c.metric}` (%), baseline: `{c.baseline}`; Δ = experiment − baseline.", "",
             "What each experiment changed (params only):", ""]
    for e in c.experiments[1:]:
        lines.append(f"- `{e}`: " + ("; ".join(c.changed.get(e, [])) or "no param changed"))
    if len(c.experiments) == 1:
        lines.append("- only the baseline has metrics")
    if c.skipped:
        lines += ["", f"{c.skipped} experiment rows without metrics (queued, running or failed) are left out."]
    return lines


def to_markdown(c: Comparison) -> str:
    return (f"# camloc experiments: {c.metric}\n\n" + "\n".join(_header_lines(c)) + "\n\n"
            + writers.to_markdown(_cells(c)))


def to_csv(c: Comparison) -> str:
    return writers.to_csv(c.table)


def to_html(c: Comparison) -> str:
    import html

    items = "".join(f"<li><code>{html.escape(e)}</code>: {html.escape('; '.join(c.changed.get(e, [])) or 'no param changed')}</li>"
                    for e in c.experiments[1:])
    note = (f"<p class=\"note\">Metric <code>{html.escape(c.metric)}</code> (%), baseline "
            f"<code>{html.escape(c.baseline)}</code>; Δ = experiment − baseline. What each experiment changed "
            f"(params only):</p><ul>{items}</ul>")
    return writers.html_page(f"camloc experiments: {c.metric}", [note, writers.html_table(_cells(c))])


def _default_backbone(rows: list[dict], repo: Path) -> str:
    """Backbone of bare metric keys (a single metrics file): its file name, else the one backbone."""
    files = sorted((repo / METRICS_DIR).glob("*.json"))
    if len(files) == 1:
        return files[0].stem
    names = {_split_key(k)[1].split(".")[1] for r in rows for k in r
             if _split_key(k)[1].startswith("backbones.") and k.count(".") >= 2}
    return names.pop() if len(names) == 1 else "?"


def run(md: Path | None = None, repo: str | Path | None = None, metric: str | None = None,
        baseline: str | None = None, csv: Path | None = None, html: Path | None = None) -> str:
    """Read every experiment of the repo at `repo` (default: cwd); write the asked formats; return markdown."""
    import dvc.api
    from dvc.exceptions import DvcException

    root = Path(repo) if repo is not None else Path(".")
    try:
        rows = dvc.api.exp_show(repo=str(root))
    except DvcException as e:
        raise CamlocError(f"cannot read experiments of {root.resolve()} ({e}): run `camloc compare` inside the "
                          "camloc repository (a git + DVC repo) after `dvc repro` or `dvc exp run`") from None
    comparison = build(rows, _default_backbone(rows, root), metric, baseline)
    text = to_markdown(comparison)
    for path, render in ((md, lambda: text), (csv, lambda: to_csv(comparison)), (html, lambda: to_html(comparison))):
        if path is not None:
            write_text(path, render())
    log.info("compared %d rows across %d experiments", len(comparison.table), len(comparison.experiments))
    return text
