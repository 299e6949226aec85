"""The report stage's leaderboard: its four renderings and the paired test between its top two rows.

Two families side by side: localization (does the map find the object? boxes, pixels, pointing) and
faithfulness (does the map explain the decision? the model's score under map-guided edits)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.catalog.metrics import METRICS, RENDER_ORDER, available, ordered
from pipeline.contracts import PETS_LAYOUT, Layout
from pipeline.report import ci, writers
from pipeline.report.perimage import BackboneEval
from pipeline.report.tables import RANK_BY

C = writers.Column
# The leading non-metric columns; the metric columns, their order, direction and legend are the metric
# cards' (pipeline/catalog/metrics.py).
KEY_COLUMNS = [C("backbone", "backbone"), C("train_method", "training"), C("method", "method")]
TRAIN_METHOD_LEGEND = ("- training: the WSOL training method of the backbone entry (`camloc wsol-methods`; cam = "
                       "plain training).")


def display_columns() -> list[writers.Column]:
    """Every rendered column: the key columns, then each shown metric (and its CI) in render order."""
    out = list(KEY_COLUMNS)
    for card in ordered(RENDER_ORDER):
        if card.shown:
            out.append(C(card.name, card.label, card.digits, bold_best=True, lower_better=card.lower_is_better))
        if card.shown and card.ci:
            out.append(C(f"{card.name}_ci", card.ci_label, card.digits,
                         ci=(f"{card.name}_ci_low", f"{card.name}_ci_high")))
    return out


def shown_columns(layout: Layout) -> list[writers.Column]:
    """The leaderboard columns the dataset has: its box kinds' metrics, pixel metrics with masks."""
    pixels = layout.pixel_split is not None

    def keep(c: writers.Column) -> bool:
        name = c.key.removesuffix("_ci") if c.ci else c.key
        return name not in METRICS or available(METRICS.get(name), layout.box_kinds, layout.loc_kind, pixels)

    return [c for c in display_columns() if keep(c)]


def legend(layout: Layout, columns: list[writers.Column]) -> str:
    keys = {c.key for c in columns}
    fill = {"loc": layout.loc_kind, "pixel_gt": "trimaps" if layout.pixel_gt == "trimap" else "the GT masks "
            "(ignore mask left out)"}
    lines = [TRAIN_METHOD_LEGEND] if "train_method" in keys else []
    lines += [card.legend.format(**fill) for card in ordered(RENDER_ORDER)
              if card.legend and (card.legend_with or card.name) in keys]
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
