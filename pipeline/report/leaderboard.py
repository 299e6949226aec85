"""The report stage's leaderboard: its four renderings and the paired test between its top two rows.

Two families side by side: localization (does the map find the object? boxes, pixels, pointing) and
faithfulness (does the map explain the decision? the model's score under map-guided edits)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.contracts import ALL_BOX_KINDS, PETS_LAYOUT, Layout
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
    C("maxboxacc_v2_body", "V2 body", bold_best=True),
    C("maxboxacc_object", "MaxBoxAcc", bold_best=True), C("maxboxacc_v2_object", "V2 object", bold_best=True),
    C("maxboxacc_v2_object_ci", "V2 object 95% CI",
      ci=("maxboxacc_v2_object_ci_low", "maxboxacc_v2_object_ci_high")),
    C("maxboxacc_v2_object_val_tau", "V2 object val-τ", bold_best=True),
    C("pxap", "PxAP", bold_best=True), C("pxiou", "PxIoU", bold_best=True), C("box_ap", "box AP", bold_best=True),
    *(col for kind in ("head", "object") for col in (
        C(f"pointing_game_{kind}", f"PG {kind}", bold_best=True),
        C(f"pointing_game_{kind}_ci", f"PG {kind} 95% CI",
          ci=(f"pointing_game_{kind}_ci_low", f"pointing_game_{kind}_ci_high")),
        C(f"energy_pointing_game_{kind}", f"EPG {kind}", bold_best=True))),
    C("avg_drop", "AD ↓", bold_best=True, lower_better=True), C("increase_in_confidence", "IC", bold_best=True),
    C("deletion_auc", "deletion ↓", 3, bold_best=True, lower_better=True),
    C("deletion_auc_ci", "deletion 95% CI", 3, ci=("deletion_auc_ci_low", "deletion_auc_ci_high")),
    C("insertion_auc", "insertion", 3, bold_best=True),
    C("insertion_auc_ci", "insertion 95% CI", 3, ci=("insertion_auc_ci_low", "insertion_auc_ci_high")),
    C("road_combined", "ROAD", 3, bold_best=True),
    C("road_combined_ci", "ROAD 95% CI", 3, ci=("road_combined_ci_low", "road_combined_ci_high")),
]
PIXEL_METRICS = ("pxap", "pxiou")
LOC_METRICS = ("top1_loc", "gt_known_loc", "box_ap")  # scored on the loc kind's boxes
# Legend lines per column key, in display order; only the shown columns' lines are printed.
LEGEND_LINES = (
    ("train_method", "- training: the WSOL training method of the backbone entry (`camloc wsol-methods`; cam = "
                     "plain training)."),
    ("top1_acc", "- cls top-1: classification accuracy of the backbone (same for all its methods)."),
    ("top1_loc", "- top-1 loc: right top-1 class and IoU ≥ 0.5 with the {loc} box (predicted-class map, fixed τ)."),
    ("gt_known_loc", "- GT-known: GT-known Loc, IoU ≥ 0.5 at the fixed τ of the CAM paper (largest contour, "
                     "GT-class map)."),
    ("maxboxacc_{loc}", "- MaxBoxAcc: IoU ≥ 0.5 at the best τ for the split (largest contour; Choe et al. 2020 v1)."),
    ("maxboxacc_v2_{loc}", "- V2 {loc}: MaxBoxAccV2 on {loc} boxes, mean over δ ∈ {{30, 50, 70}}% of the best-τ "
                           "BoxAcc (all contours),\n  τ chosen on the test split itself (the reference's upper "
                           "bound); its 95% CI beside it."),
    ("maxboxacc_v2_{loc}_val_tau", "- V2 {loc} val-τ: the same with τ chosen on the held-out val split (the "
                                   "honest number)."),
    ("maxboxacc_v2_body", "- V2 body: MaxBoxAccV2 on whole-pet boxes (trimap extent, official test set)."),
    ("pxap", "- PxAP / PxIoU: pixel average precision / best pooled pixel IoU (ours) against {pixel_gt}."),
    ("box_ap", "- box AP: COCO-style box AP."),
    ("pointing_game_{loc}", "- PG {loc} (`pointing_game_{loc}`): pointing game, % of images whose map maximum lies "
                            "within\n  evaluate.pointing_tolerance pixels (S×S frame) of a {loc} box; its 95% CI "
                            "beside it. EPG {loc}\n  (`energy_pointing_game_{loc}`): energy pointing game, the mean "
                            "share of the map's mass inside the {loc}\n  boxes."),
    ("maxboxacc_v2_body", "  leaderboard.csv also has `pointing_game_body` and `energy_pointing_game_body` "
                          "(whole-pet boxes)."),
    ("avg_drop", "Faithfulness, on a seeded subset of faithfulness.max_images images per split in "
                 "faithfulness.splits,\nthe model's softmax score of the GT class:\n"
                 "- AD ↓ (`avg_drop`): Average Drop, mean of max(0, Y − O)/Y, where Y is the score on the image "
                 "and O on\n  the normalised image multiplied by the map (Chattopadhay et al. 2018, as torchcam). IC "
                 "(`increase_in_confidence`):\n  Increase in Confidence, % of images with O > Y."),
    ("deletion_auc", "- deletion ↓ (`deletion_auc`) / insertion (`insertion_auc`): area under the score curve "
                     "(0–1, not %) as\n  pixels are deleted (set to the dataset mean colour) / inserted into a blurred "
                     "copy in decreasing map order\n  (Petsiuk et al. 2018); 95% CIs beside them. "
                     "leaderboard.csv has every CI."),
    ("road_combined", "- ROAD (`road_combined`, Rong et al. 2022, as pytorch-grad-cam): (LeRF − MoRF) / 2 of the "
                      "score change when\n  10–90% of the pixels, least / most relevant first, are filled by "
                      "noisy linear imputation,\n  on faithfulness.road_max_images of the images; its 95% CI "
                      "beside it. leaderboard.csv also has\n  `road_morf` ↓, `road_lerf`, and `avg_drop_pixel` ↓ / "
                      "`increase_in_confidence_pixel`: AD / IC with the map\n  multiplying the pixel values "
                      "(a removed pixel is black, not the mean colour)."),
)


def shown_columns(layout: Layout) -> list[writers.Column]:
    """The leaderboard columns the dataset has: its box kinds' metrics, pixel metrics with masks."""
    hidden = {k for k in ALL_BOX_KINDS if k not in layout.box_kinds}
    per_kind = ("maxboxacc_", "maxboxacc_v2_", "pointing_game_", "energy_pointing_game_")

    def keep(c: writers.Column) -> bool:
        if any(c.key.startswith(f"{prefix}{k}") for prefix in per_kind for k in hidden):
            return False
        if c.key in PIXEL_METRICS and layout.pixel_split is None:
            return False
        return not (c.key in LOC_METRICS and layout.loc_kind not in layout.box_kinds)

    return [c for c in DISPLAY if keep(c)]


def legend(layout: Layout, columns: list[writers.Column]) -> str:
    keys = {c.key for c in columns}
    fill = {"loc": layout.loc_kind, "pixel_gt": "trimaps" if layout.pixel_gt == "trimap" else "the GT masks "
            "(ignore mask left out)"}
    lines = [text.format(**fill) for key, text in LEGEND_LINES if key.format(**fill) in keys]
    return "\n".join(["Columns (in %, higher is better unless marked ↓ = lower is better; **bold** = best in "
                      "its column):", *lines,
                      "`center` and `full` are baselines without a model (a centred Gaussian, the whole image)."])


LEGEND = legend(PETS_LAYOUT, shown_columns(PETS_LAYOUT))


def paired_sentence(board: pd.DataFrame, boot: dict[tuple[str, str, str], np.ndarray],
                    evals: dict[str, BackboneEval], kind: str = "head") -> str:
    """The paired bootstrap test between the top two rows on MaxBoxAccV2 of `kind`, as one sentence."""
    rank_by = f"maxboxacc_v2_{kind}" if kind != "head" else RANK_BY
    if len(board) < 2:
        return "Paired test: fewer than two rows, nothing to compare."
    a, b = board.iloc[0], board.iloc[1]
    name_a, name_b = f"{a['backbone']}/{a['method']}", f"{b['backbone']}/{b['method']}"
    sa = boot.get((a["backbone"], a["method"], rank_by))
    sb = boot.get((b["backbone"], b["method"], rank_by))
    if sa is None or sb is None:
        return f"Paired test {name_a} vs {name_b}: no per-image IoUs for one of them, not computed."
    ids_a = evals[a["backbone"]].cubes[(a["method"], kind, "all")].image_ids
    ids_b = evals[b["backbone"]].cubes[(b["method"], kind, "all")].image_ids
    if not np.array_equal(ids_a, ids_b):
        return f"Paired test {name_a} vs {name_b}: they were scored on different images, not computed."
    res = ci.paired_test(float(a[rank_by]), float(b[rank_by]), sa, sb)
    return ci.describe(res, name_a, name_b, f"{kind}-box MaxBoxAccV2")


def leaderboard_texts(board: pd.DataFrame, sentence: str, resamples: int, seed: int,
                      dropped: list[str], layout: Layout = PETS_LAYOUT,
                      sections: tuple[str, str] = ("", "")) -> dict[str, str]:
    """{"md", "csv", "tex", "html"} renderings of the ranked leaderboard (with CI columns); the columns
    are those of the dataset's `layout`; `sections` are extra (markdown, html) blocks placed after the
    paired test (the training-methods-vs-CAM section)."""
    cols = [c for c in shown_columns(layout) if (c.ci[0] if c.ci else c.key) in board.columns]
    cells = writers.render_cells(board, cols)
    LEGEND = legend(layout, cols)  # noqa: N806 (the module constant is the Pets legend)
    rank = (f"{layout.loc_kind}-box MaxBoxAccV2" if layout.loc_kind in layout.box_kinds
            else "PxAP" if layout.pixel_split else "classification")
    note = (f"Rows: backbone (with its training method) × map method, best first by {rank}. 95% CIs: percentile "
            f"bootstrap over test images ({resamples} resamples, seed {seed}), τ re-chosen inside each "
            "resample (faithfulness: over its image subset); every CI is in leaderboard.csv.")
    if dropped:
        note += f" {len(dropped)} CIs left out because the per-image re-computation disagreed with the metrics file."
    md = "\n".join(["# camloc leaderboard", "", writers.to_markdown(cells), note, "",
                    f"**Paired test.** {sentence}", "", *([sections[0], ""] if sections[0] else []), LEGEND, ""])
    tex = writers.to_latex(cells, caption="Localization and faithfulness by backbone and map method. " + sentence,
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
