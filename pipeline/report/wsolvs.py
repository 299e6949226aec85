"""The report's "training methods vs CAM" section: per backbone arch, each WSOL training method's head-box
MaxBoxAccV2 minus that of the vanilla-CAM model of the same arch, with a paired-bootstrap 95% CI (the
headline comparison of Choe et al., CVPR 2020). Torch-free, no I/O.

Pairing: a model trained with method M (params `backbones.<key>.wsol.method`) is compared with the
`cam`-trained entry of the same arch and the same image size (else any `cam` entry of that arch, first
in params order), map method by map method, on the same resampled test images (pipeline.report.ci).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.report import ci, writers
from pipeline.report.tables import RANK_BY

BASELINE_MAPS = ("center", "full")  # model-free map methods: no training method can move them
COLUMNS = ["arch", "train_method", "backbone", "baseline", "method", "maxboxacc_v2_head", "baseline_v2_head",
           "diff", "diff_ci_low", "diff_ci_high", "p_value"]


@dataclass(frozen=True)
class Entry:
    """What the section needs of one `backbones` entry."""

    arch: str
    image_size: int
    train_method: str


def baselines(entries: dict[str, Entry]) -> dict[str, str | None]:
    """backbone key → the key of its vanilla-CAM baseline (None when its arch has no cam-trained entry)."""
    out: dict[str, str | None] = {}
    for key, e in entries.items():
        if e.train_method == "cam":
            continue
        cams = [k for k, o in entries.items() if o.train_method == "cam" and o.arch == e.arch]
        same_size = [k for k in cams if entries[k].image_size == e.image_size]
        out[key] = (same_size or cams or [None])[0]
    return out


def versus_cam(board: pd.DataFrame, boot: dict[tuple[str, str, str], np.ndarray],
               image_ids: dict[tuple[str, str], np.ndarray], entries: dict[str, Entry],
               rank_by: str = RANK_BY) -> pd.DataFrame:
    """One row per (non-cam backbone, map method): its V2, the baseline's, and the paired difference.

    `boot[(backbone, method, rank_by)]` (MaxBoxAccV2 of the loc kind) are the per-resample scores on shared resamples and
    `image_ids[(backbone, method)]` the images each row was scored on; rows scored on different images
    (or without samples) keep their difference but get no CI.
    """
    if rank_by not in board.columns:  # a masks-only dataset has no box metric to compare
        return pd.DataFrame(columns=COLUMNS)
    point = {(b, m): v for b, m, v in board[["backbone", "method", rank_by]].itertuples(index=False)}
    rows = []
    for key, base in baselines(entries).items():
        e = entries[key]
        for method in board.loc[board["backbone"] == key, "method"]:
            if method in BASELINE_MAPS:
                continue
            row = {"arch": e.arch, "train_method": e.train_method, "backbone": key, "baseline": base,
                   "method": method, "maxboxacc_v2_head": point.get((key, method)), "baseline_v2_head": None,
                   "diff": None, "diff_ci_low": None, "diff_ci_high": None, "p_value": None}
            if base is not None and (base, method) in point:
                a, b = point[(key, method)], point[(base, method)]
                row |= {"baseline_v2_head": b, "diff": a - b}
                sa, sb = boot.get((key, method, rank_by)), boot.get((base, method, rank_by))
                ids_a, ids_b = image_ids.get((key, method)), image_ids.get((base, method))
                if sa is not None and sb is not None and ids_a is not None and np.array_equal(ids_a, ids_b):
                    res = ci.paired_test(a, b, sa, sb)
                    row |= {"diff_ci_low": res.ci_low, "diff_ci_high": res.ci_high, "p_value": res.p_value}
            rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS)
    num = COLUMNS[5:]
    df[num] = df[num].astype(float)
    return df.sort_values(["arch", "train_method", "backbone"], kind="stable").reset_index(drop=True)


C = writers.Column
DISPLAY = [C("arch", "arch"), C("train_method", "training"), C("backbone", "backbone"),
           C("baseline", "vs CAM model"), C("method", "map method"), C("maxboxacc_v2_head", "V2 head"),
           C("baseline_v2_head", "CAM-trained V2"), C("diff", "difference"),
           C("diff_ci", "95% CI", ci=("diff_ci_low", "diff_ci_high")), C("p_value", "p", 3)]
TITLE = "Training methods vs CAM"


def intro(resamples: int) -> str:
    return ("Head-box MaxBoxAccV2 (τ chosen on test, as in the leaderboard) of each model trained with a WSOL "
            "method minus that of the vanilla-CAM-trained model of the same arch and image size, per map "
            "method; 95% CI and two-sided p of the paired bootstrap over the same resampled test images "
            f"({resamples} resamples). A CI that contains 0 means no measurable difference.")


def section_markdown(table: pd.DataFrame, resamples: int) -> str:
    if table.empty:
        return (f"## {TITLE}\n\nNo backbone entry is trained with a WSOL method other than `cam` "
                "(set `backbones.<key>.wsol.method`; `camloc wsol-methods` lists them).\n")
    cells = writers.render_cells(table, DISPLAY)
    return f"## {TITLE}\n\n{intro(resamples)}\n\n" + writers.to_markdown(cells)


def section_html(table: pd.DataFrame, resamples: int) -> str:
    import html

    if table.empty:
        return f"<h2>{TITLE}</h2><p class=\"note\">No backbone entry is trained with a WSOL method other than cam.</p>"
    cells = writers.render_cells(table, DISPLAY)
    return f"<h2>{TITLE}</h2>\n<p class=\"note\">{html.escape(intro(resamples))}</p>\n" + writers.html_table(cells)
