"""The report's "Protocols" section: per backbone × map method, Top-1 and GT-known Loc under each protocol
profile of `evaluate.protocols` (cards: `pipeline.catalog.protocols`) and its difference from `choe2020`,
the honest default, with paired-bootstrap 95% CIs over the same resampled test images (pipeline.report.ci).

Inputs are evaluate@B's `protocols` section of reports/metrics/<B>.json and its per-image rows
(eval/<B>/protocols.parquet). Each resample scores every profile on the same weights; a fixed or val-chosen
τ stays put, the oracle `test_tau` re-chooses its τ inside each resample (so it stays ≥ choe2020 there
too). A point re-computed from the rows that disagrees with the JSON drops that row's CIs (counted).
Torch-free.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import contracts as C
from pipeline.catalog.protocols import BASELINE, GT_KNOWN_LOC, LOC_METRICS, PROTOCOLS, TAU, TAU_TOP1, TOP1_LOC
from pipeline.errors import CamlocError
from pipeline.metrics.protocols import resampled_loc
from pipeline.report import ci, writers

log = logging.getLogger(__name__)
TITLE = "Protocols"
POINT_TOLERANCE = 1e-3  # the JSON rounds to 6 decimals
LABEL = {TOP1_LOC: "Top-1", GT_KNOWN_LOC: "GT-known"}
COLUMNS = ["backbone", "method", "profile", "oracle", "tau", "tau_top1"] + [
    f"{m}{s}" for m in LOC_METRICS for s in ("", "_ci_low", "_ci_high", "_diff", "_diff_ci_low", "_diff_ci_high",
                                             "_p")]


@dataclass(frozen=True)
class BackboneProtocols:
    """One backbone's protocols section, its rows and the top-1 correctness of the scored images."""

    backbone: str
    section: dict[str, dict[str, dict[str, float]]]  # profile → method → numbers
    rows: pd.DataFrame  # contracts.PROTOCOL_COLUMNS
    top1_ok: dict[str, bool]  # image_id → top-1 prediction right


def read_section(metrics_file: Path) -> dict:
    """The `protocols` section of a metrics JSON ({} when evaluate wrote none: a masks-only dataset)."""
    import json

    try:
        data = json.loads(Path(metrics_file).read_text())
    except (OSError, ValueError) as e:
        raise CamlocError(f"{metrics_file} is unreadable ({e}); re-run `dvc repro evaluate@"
                            f"{Path(metrics_file).stem}`") from None
    section = data.get(C.PROTOCOLS_KEY, {})
    if not isinstance(section, dict):
        raise CamlocError(f"{metrics_file}: `{C.PROTOCOLS_KEY}` must map profile → method → numbers")
    return section


def load(paths: C.Paths, backbone: str, index: pd.DataFrame) -> BackboneProtocols:
    """The report's view of one backbone; `index` is the cams index of the loc kind's scored split."""
    rows_path = paths.eval_dir(backbone) / C.PROTOCOLS_FILE
    rows = (pd.read_parquet(rows_path) if rows_path.is_file()
            else pd.DataFrame(columns=list(C.PROTOCOL_COLUMNS)))
    ok = dict(zip(index["image_id"].astype(str), (index["pred"] == index["label"]).to_numpy(), strict=True))
    return BackboneProtocols(backbone, read_section(paths.metrics_file(backbone)), rows, ok)


def _samples(card, values: dict, wide: pd.DataFrame, ok: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """metric → (B + 1,) scores: the plain estimate first (weights of ones), then one per resample."""
    taus = wide.columns.to_numpy(dtype=np.float64)
    w = np.concatenate([np.ones((1, weights.shape[1]), np.float32), weights])
    out = {}
    for metric, strict, mask, tau_key in ((TOP1_LOC, card.top1_strict, ok, TAU_TOP1),
                                          (GT_KNOWN_LOC, card.gt_known_strict, None, TAU)):
        cols = np.arange(len(taus)) if card.oracle else [int(np.argmin(np.abs(taus - values[tau_key])))]
        out[metric] = resampled_loc(wide.to_numpy(np.float64)[:, cols], mask, strict, w)
    return out


def protocol_table(evals: list[BackboneProtocols], resamples: int, seed: int) -> tuple[pd.DataFrame, int]:
    """(one row per backbone × method × profile, with CIs and the paired difference from choe2020; the
    number of rows whose CIs were dropped because the rows disagree with the JSON)."""
    out, dropped = [], 0
    weights: dict[int, np.ndarray] = {}
    for ev in evals:
        boots: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        for (profile, method), g in ev.rows.groupby(["profile", "method"], sort=True):
            if profile not in PROTOCOLS or method not in ev.section.get(profile, {}):
                continue
            wide = g.pivot_table(index="image_id", columns="tau", values="iou", aggfunc="max").sort_index()
            n = len(wide)
            if n not in weights:  # the leaderboard's loc-kind draws: the same images resampled
                weights[n] = ci.resample_weights(n, resamples, seed)
            ok = np.array([ev.top1_ok.get(str(i), False) for i in wide.index])
            s = _samples(PROTOCOLS.get(profile), ev.section[profile][method], wide, ok, weights[n])
            if any(abs(s[m][0] - ev.section[profile][method][m]) > POINT_TOLERANCE for m in LOC_METRICS):
                log.warning("%s/%s/%s: re-computed Loc disagrees with the metrics JSON; its CIs are left out",
                            ev.backbone, method, profile)
                dropped += 1
                continue
            boots[(profile, method)] = s
        pairs = sorted(((m, p) for p, by in ev.section.items() for m in by), key=lambda t: (t[0], _order(t[1])))
        for method, profile in pairs:  # per method, its profiles in card order (the baseline first)
            card = PROTOCOLS.get(profile) if profile in PROTOCOLS else None
            values = ev.section[profile][method]
            row = {"backbone": ev.backbone, "method": method, "profile": profile,
                   "oracle": bool(card and card.oracle), "tau": values.get(TAU), "tau_top1": values.get(TAU_TOP1)}
            base, mine = ev.section.get(BASELINE, {}).get(method), boots.get((profile, method))
            theirs = boots.get((BASELINE, method))
            for m in LOC_METRICS:
                row[m] = values[m]
                if mine is not None:
                    row[f"{m}_ci_low"], row[f"{m}_ci_high"] = ci.percentile_ci(mine[m][1:])
                if base is not None:
                    row[f"{m}_diff"] = values[m] - base[m]
                    if mine is not None and theirs is not None:
                        res = ci.paired_test(values[m], base[m], mine[m][1:], theirs[m][1:])
                        row |= {f"{m}_diff_ci_low": res.ci_low, f"{m}_diff_ci_high": res.ci_high,
                                f"{m}_p": res.p_value}
            out.append(row)
    df = pd.DataFrame(out, columns=COLUMNS)
    num = [c for c in COLUMNS if c not in ("backbone", "method", "profile", "oracle")]
    df[num] = df[num].astype(float)
    return df, dropped


def _order(profile: str) -> tuple[int, str]:
    names = PROTOCOLS.registered()
    return (0 if profile == BASELINE else 1 + (names.index(profile) if profile in names else len(names)), profile)


def display_name(profile: str, oracle: bool) -> str:
    return f"{profile} (ORACLE: τ from test)" if oracle else profile


def _display(table: pd.DataFrame) -> tuple[pd.DataFrame, list[writers.Column]]:
    shown = table.assign(profile=[display_name(p, o) for p, o in zip(table["profile"], table["oracle"], strict=True)])
    col = writers.Column
    cols = [col("backbone", "backbone"), col("method", "map method"), col("profile", "profile"), col("tau", "τ", 2)]
    for m in LOC_METRICS:
        cols += [col(m, f"{LABEL[m]} Loc"), col(f"{m}_ci", "95% CI", ci=(f"{m}_ci_low", f"{m}_ci_high")),
                 col(f"{m}_diff", f"Δ {LABEL[m]} vs {BASELINE}"),
                 col(f"{m}_dci", "Δ 95% CI", ci=(f"{m}_diff_ci_low", f"{m}_diff_ci_high"))]
    return shown, cols


def intro(resamples: int) -> str:
    cards = [PROTOCOLS.get(n) for n in PROTOCOLS.names()]
    legend = "; ".join(f"`{c.name}` ({c.paper}): {c.summary}" for c in cards)
    return (f"The same GT-class maps scored under each paper's protocol (evaluate.protocols): Top-1 and GT-known "
            f"Loc at the profile's τ (τ column: GT-known's), and the difference from `{BASELINE}` (τ chosen on "
            f"the boxed val split, the honest number), with paired-bootstrap 95% CIs over the same resampled "
            f"test images ({resamples} resamples). A positive Δ is the inflation a protocol adds to the same "
            f"maps. `test_tau` is an ORACLE (τ picked on test, re-picked per resample): an upper bound, not a "
            f"result. Profiles: {legend}. Every number with its p-value: breakdowns/protocols.csv.")


def section_markdown(table: pd.DataFrame, resamples: int) -> str:
    if table.empty:
        return f"## {TITLE}\n\nNo protocol profile was scored (the dataset has no loc boxes).\n"
    shown, cols = _display(table)
    return f"## {TITLE}\n\n{intro(resamples)}\n\n" + writers.to_markdown(writers.render_cells(shown, cols))


def section_html(table: pd.DataFrame, resamples: int) -> str:
    import html

    if table.empty:
        return f"<h2>{TITLE}</h2><p class=\"note\">No protocol profile was scored.</p>"
    shown, cols = _display(table)
    return (f"<h2>{TITLE}</h2>\n<p class=\"note\">{html.escape(intro(resamples))}</p>\n"
            + writers.html_table(writers.render_cells(shown, cols)))


def load_all(paths: C.Paths, backbones: list[str], layout: C.Layout, resamples: int,
             seed: int) -> pd.DataFrame:
    """The Protocols table of every backbone (empty for a dataset without loc boxes)."""
    split = layout.scored_split.get(layout.loc_kind)
    if layout.loc_kind not in layout.box_kinds or split is None:
        return pd.DataFrame(columns=COLUMNS)
    evals = [load(paths, b, C.read_cams_index(paths.cams_dir(b), split)) for b in backbones]
    table, dropped = protocol_table(evals, resamples, seed)
    if dropped:
        log.warning("Protocols: %d rows lost their CIs (re-computed points disagree with the metrics JSON)", dropped)
    return table
