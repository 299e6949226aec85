"""The report stage's leaderboard: its four renderings and the paired test between its top two rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.report import ci, writers
from pipeline.report.perimage import BackboneEval
from pipeline.report.tables import RANK_BY

C = writers.Column
DISPLAY = [
    C("backbone", "backbone"), C("train_method", "training"), C("method", "method"),
    C("top1_acc", "cls top-1", bold_best=True), C("top1_loc", "top-1 loc", bold_best=True),
    C("gt_known_loc", "GT-known", bold_best=True), C("maxboxacc_head", "MaxBoxAcc", bold_best=True),
    C("maxboxacc_v2_head", "V2 head", bold_best=True),
    C("maxboxacc_v2_head_ci", "V2 head 95% CI", ci=("maxboxacc_v2_head_ci_low", "maxboxacc_v2_head_ci_high")),
    C("maxboxacc_v2_head_val_tau", "V2 head val-τ", bold_best=True),
    C("maxboxacc_v2_body", "V2 body", bold_best=True), C("pxap", "PxAP", bold_best=True),
    C("pxiou", "PxIoU", bold_best=True), C("box_ap", "box AP", bold_best=True),
]
LEGEND = """Columns (all in %, higher is better; **bold** = best in its column):
- training: the WSOL training method of the backbone entry (`camloc wsol-methods`; cam = plain training).
- cls top-1: classification accuracy of the backbone (same for all its methods).
- top-1 loc: right top-1 class and IoU ≥ 0.5 with the head box (predicted-class map, fixed τ).
- GT-known: GT-known Loc, IoU ≥ 0.5 at the fixed τ of the CAM paper (largest contour, GT-class map).
- MaxBoxAcc: IoU ≥ 0.5 at the best τ for the split (largest contour; Choe et al. 2020 v1).
- V2 head: MaxBoxAccV2 on head boxes, mean over δ ∈ {30, 50, 70}% of the best-τ BoxAcc (all contours),
  τ chosen on the test split itself (the reference's upper bound); its 95% CI beside it.
- V2 head val-τ: the same with τ chosen on the held-out val split (the honest number).
- V2 body: MaxBoxAccV2 on whole-pet boxes (trimap extent, official test set).
- PxAP / PxIoU: pixel average precision / best pooled pixel IoU (ours) against trimaps.
- box AP: COCO-style box AP.
`center` and `full` are baselines without a model (a centred Gaussian, the whole image)."""


def paired_sentence(board: pd.DataFrame, boot: dict[tuple[str, str, str], np.ndarray],
                    evals: dict[str, BackboneEval]) -> str:
    """The paired bootstrap test between the top two rows on RANK_BY, as one sentence."""
    if len(board) < 2:
        return "Paired test: fewer than two rows, nothing to compare."
    a, b = board.iloc[0], board.iloc[1]
    name_a, name_b = f"{a['backbone']}/{a['method']}", f"{b['backbone']}/{b['method']}"
    sa = boot.get((a["backbone"], a["method"], RANK_BY))
    sb = boot.get((b["backbone"], b["method"], RANK_BY))
    if sa is None or sb is None:
        return f"Paired test {name_a} vs {name_b}: no per-image IoUs for one of them, not computed."
    ids_a = evals[a["backbone"]].cubes[(a["method"], "head", "all")].image_ids
    ids_b = evals[b["backbone"]].cubes[(b["method"], "head", "all")].image_ids
    if not np.array_equal(ids_a, ids_b):
        return f"Paired test {name_a} vs {name_b}: they were scored on different images, not computed."
    res = ci.paired_test(float(a[RANK_BY]), float(b[RANK_BY]), sa, sb)
    return ci.describe(res, name_a, name_b, "head-box MaxBoxAccV2")


def leaderboard_texts(board: pd.DataFrame, sentence: str, resamples: int, seed: int,
                      dropped: list[str], sections: tuple[str, str] = ("", "")) -> dict[str, str]:
    """{"md", "csv", "tex", "html"} renderings of the ranked leaderboard (with CI columns); `sections` are
    extra (markdown, html) blocks placed after the paired test (the training-methods-vs-CAM section)."""
    cols = [c for c in DISPLAY if (c.ci[0] if c.ci else c.key) in board.columns]
    cells = writers.render_cells(board, cols)
    note = (f"Rows: backbone (with its training method) × map method, best first by head-box MaxBoxAccV2. 95% CIs: percentile "
            f"bootstrap over test images ({resamples} resamples, seed {seed}), τ re-chosen inside each "
            "resample; every CI is in leaderboard.csv.")
    if dropped:
        note += f" {len(dropped)} CIs left out because the per-image re-computation disagreed with the metrics file."
    md = "\n".join(["# camloc leaderboard", "", writers.to_markdown(cells), note, "",
                    f"**Paired test.** {sentence}", "", *([sections[0], ""] if sections[0] else []), LEGEND, ""])
    tex = writers.to_latex(cells, caption="Localization by backbone and map method (%). " + sentence,
                           label="tab:camloc-leaderboard")
    html = writers.html_page("camloc leaderboard", [
        writers.html_table(cells), f'<p class="note">{_esc(note)}</p>',
        f'<p class="note"><b>Paired test.</b> {_esc(sentence)}</p>', sections[1],
        "<pre>" + _esc(LEGEND) + "</pre>",
        '<p><a href="gallery/index.html">CAM galleries</a></p>'])
    return {"md": md, "csv": writers.to_csv(board), "tex": tex, "html": html}


def _esc(text: str) -> str:
    import html

    return html.escape(text)
