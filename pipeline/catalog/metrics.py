"""The metric registry, torch-free: one card per metric name of the metrics JSONs and the leaderboard.

A card says what the report and the explorer need to show a metric: its column label, its direction
(↑ higher is better, ↓ lower is better), its legend line, its family, and for a per-box-kind metric the
box kind it is scored on. The leaderboard's columns, their order, bold-best direction and legend, the
metric-name sets of `pipeline.contracts` and the explorer's column labels are all read from here.
`impl` names the module that computes the metric (`pipeline.metrics.*`, numpy only).

Legend texts may use `{loc}` (the dataset's loc box kind) and `{pixel_gt}` (what PxAP is scored against).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.catalog.registry import Registry

Family = Literal["classification", "localization", "pixel", "pointing", "faithfulness"]


@dataclass(frozen=True)
class MetricCard:
    name: str  # the key after `<method>.` in the metrics JSONs, and the leaderboard.csv column
    label: str  # the rendered leaderboard's header ("" when it is not a rendered column)
    family: Family
    impl: str  # the module computing it (numpy only)
    direction: Literal["↑", "↓"] = "↑"
    legend: str = ""  # the legend line(s) of the rendered leaderboard
    legend_with: str = ""  # print the legend when this column is shown (default: the card's own column)
    box_kind: str | None = None  # head | body | object: scored on boxes of that kind (hidden without them)
    loc_boxes: bool = False  # scored on the loc kind's boxes (hidden when the dataset's loc kind has none)
    pixels: bool = False  # needs pixel masks (hidden without them)
    stage: Literal["train", "evaluate", "faithfulness"] = "evaluate"  # the stage whose JSON holds it
    named_column: bool = True  # a named leaderboard.csv column (else an extra column, sorted by name)
    shown: bool = True  # a column of the rendered leaderboard (md/tex/html)
    ci: bool = False  # the rendered leaderboard shows its 95% CI beside it
    digits: int = 1
    percent: bool = True  # reported as a percentage (else a plain number, e.g. an AUC in [0, 1])

    @property
    def lower_is_better(self) -> bool:
        return self.direction == "↓"

    @property
    def ci_label(self) -> str:
        return f"{self.label.removesuffix(' ↓')} 95% CI"


METRICS: Registry[MetricCard] = Registry("metric")

_BOXACC, _PIXELS, _POINTING = "pipeline.metrics.boxacc", "pipeline.metrics.pixels", "pipeline.metrics.pointing"
_FAITH = "pipeline.faithfulness.scores"  # names them (pipeline.metrics.faithfulness: the formulas)
_SUMMARY = "pipeline.metrics.summary"
_PER_KIND_LEGEND = {
    "maxboxacc": "- MaxBoxAcc: IoU ≥ 0.5 at the best τ for the split (largest contour; Choe et al. 2020 v1).",
    "maxboxacc_v2": ("- V2 {loc}: MaxBoxAccV2 on {loc} boxes, mean over δ ∈ {{30, 50, 70}}% of the best-τ BoxAcc "
                     "(all contours),\n  τ chosen on the test split itself (the reference's upper bound); its 95% "
                     "CI beside it."),
    "maxboxacc_v2_val_tau": "- V2 {loc} val-τ: the same with τ chosen on the held-out val split (the honest number).",
    "pointing_game": ("- PG {loc} (`pointing_game_{loc}`): pointing game, % of images whose map maximum lies within\n"
                      "  evaluate.pointing_tolerance pixels (S×S frame) of a {loc} box; its 95% CI beside it. "
                      "EPG {loc}\n  (`energy_pointing_game_{loc}`): energy pointing game, the mean share of the "
                      "map's mass inside the {loc}\n  boxes."),
}


def _add(card: MetricCard) -> None:
    METRICS.add(card.name, card)


def _box_metrics(kind: str, loc: bool) -> None:
    """MaxBoxAcc (v1, the loc kind only) and MaxBoxAccV2 of one box kind, oracle and val τ."""
    legend = _PER_KIND_LEGEND if loc else {}
    if loc:
        _add(MetricCard(f"maxboxacc_{kind}", "MaxBoxAcc", "localization", _BOXACC, legend=legend["maxboxacc"],
                        box_kind=kind))
    _add(MetricCard(f"maxboxacc_v2_{kind}", f"V2 {kind}", "localization", _BOXACC,
                    legend=legend.get("maxboxacc_v2", "- V2 body: MaxBoxAccV2 on whole-pet boxes (trimap extent, "
                                                      "official test set)."),
                    box_kind=kind, ci=loc))
    _add(MetricCard(f"maxboxacc_v2_{kind}_val_tau", f"V2 {kind} val-τ", "localization", _BOXACC,
                    legend=legend.get("maxboxacc_v2_val_tau", ""), box_kind=kind, shown=loc))


def _pointing(kind: str, loc: bool) -> None:
    _add(MetricCard(f"pointing_game_{kind}", f"PG {kind}", "pointing", _POINTING,
                    legend=_PER_KIND_LEGEND["pointing_game"] if loc else
                    "  leaderboard.csv also has `pointing_game_body` and `energy_pointing_game_body` "
                    "(whole-pet boxes).",
                    legend_with="" if loc else f"maxboxacc_v2_{kind}", box_kind=kind, ci=loc, shown=loc))
    _add(MetricCard(f"energy_pointing_game_{kind}", f"EPG {kind}", "pointing", _POINTING, box_kind=kind, shown=loc))


# In leaderboard.csv's column order.
_add(MetricCard("top1_acc", "cls top-1", "classification", "pipeline.stages.cams", stage="train",
                legend="- cls top-1: classification accuracy of the backbone (same for all its methods)."))
_add(MetricCard("top1_loc", "top-1 loc", "localization", _SUMMARY, loc_boxes=True,
                legend="- top-1 loc: right top-1 class and IoU ≥ 0.5 with the {loc} box (predicted-class map, "
                       "fixed τ)."))
_add(MetricCard("top5_loc", "top-5 loc", "localization", _SUMMARY, loc_boxes=True, shown=False))
_add(MetricCard("gt_known_loc", "GT-known", "localization", _SUMMARY, loc_boxes=True,
                legend="- GT-known: GT-known Loc, IoU ≥ 0.5 at the fixed τ of the CAM paper (largest contour, "
                       "GT-class map)."))
_box_metrics("head", loc=True)
_box_metrics("body", loc=False)
_add(MetricCard("pxap", "PxAP", "pixel", _PIXELS, pixels=True,
                legend="- PxAP / PxIoU: pixel average precision / best pooled pixel IoU (ours) against {pixel_gt}."))
_add(MetricCard("pxiou", "PxIoU", "pixel", _PIXELS, pixels=True))
_add(MetricCard("box_ap", "box AP", "localization", "pipeline.stages.evaluate", loc_boxes=True,
                legend="- box AP: COCO-style box AP."))
_box_metrics("object", loc=True)
for _kind, _loc in (("head", True), ("body", False), ("object", True)):
    _pointing(_kind, _loc)
_add(MetricCard("avg_drop", "AD ↓", "faithfulness", _FAITH, "↓", stage="faithfulness",
                legend="Faithfulness, on a seeded subset of faithfulness.max_images images per split in "
                       "faithfulness.splits,\nthe model's softmax score of the GT class:\n"
                       "- AD ↓ (`avg_drop`): Average Drop, mean of max(0, Y − O)/Y, where Y is the score on the image "
                       "and O on\n  the normalised image multiplied by the map (Chattopadhay et al. 2018, as torchcam). "
                       "IC\n  (`increase_in_confidence`): Increase in Confidence, % of images with O > Y."))
_add(MetricCard("increase_in_confidence", "IC", "faithfulness", _FAITH, stage="faithfulness"))
# The pixel-space variant (the map multiplies the pixel values: a removed pixel is black), in the CSV only.
_add(MetricCard("avg_drop_pixel", "", "faithfulness", _FAITH, "↓", stage="faithfulness", shown=False))
_add(MetricCard("increase_in_confidence_pixel", "", "faithfulness", _FAITH, stage="faithfulness", shown=False))
_add(MetricCard("deletion_auc", "deletion ↓", "faithfulness", _FAITH, "↓", stage="faithfulness", ci=True,
                digits=3, percent=False,
                legend="- deletion ↓ (`deletion_auc`) / insertion (`insertion_auc`): area under the score curve "
                       "(0–1, not %) as\n  pixels are deleted (set to the dataset mean colour) / inserted into a "
                       "blurred copy in decreasing map order\n  (Petsiuk et al. 2018); 95% CIs beside them. "
                       "leaderboard.csv has every CI."))
_add(MetricCard("insertion_auc", "insertion", "faithfulness", _FAITH, stage="faithfulness", ci=True, digits=3,
                percent=False))
# ROAD (pipeline.faithfulness.road), on its own seeded subset of the faithfulness images.
_ROAD = "pipeline.faithfulness.road"
_add(MetricCard("road_morf", "", "faithfulness", _ROAD, "↓", stage="faithfulness", shown=False, digits=3, percent=False))
_add(MetricCard("road_lerf", "", "faithfulness", _ROAD, stage="faithfulness", shown=False, digits=3, percent=False))
_add(MetricCard("road_combined", "ROAD", "faithfulness", _ROAD, stage="faithfulness", ci=True, digits=3, percent=False,
                legend="- ROAD (`road_combined`, Rong et al. 2022, as pytorch-grad-cam): (LeRF − MoRF) / 2 of the "
                       "score change when\n  10–90% of the pixels, least / most relevant first, are filled by "
                       "noisy linear imputation,\n  on faithfulness.road_max_images of the images; its 95% CI "
                       "beside it. leaderboard.csv also has\n  `road_morf` ↓, `road_lerf`, and `avg_drop_pixel` ↓ / "
                       "`increase_in_confidence_pixel`: AD / IC with the map\n  multiplying the pixel values "
                       "(a removed pixel is black, not the mean colour)."))
# In the metrics JSONs only (extra leaderboard.csv columns): the v1 val-τ score and AP at IoU 0.5.
for _kind in ("head", "object"):
    _add(MetricCard(f"maxboxacc_{_kind}_val_tau", "", "localization", _BOXACC, box_kind=_kind,
                    named_column=False, shown=False))
_add(MetricCard("box_ap50", "", "localization", "pipeline.stages.evaluate", loc_boxes=True, named_column=False,
                shown=False))

# The rendered leaderboard's order (md/tex/html columns, then their legend lines): the loc kinds' box
# metrics together, then pixels, box AP, pointing and faithfulness. Cards a plugin adds follow.
RENDER_ORDER = (
    "top1_acc", "top1_loc", "gt_known_loc", "maxboxacc_head", "maxboxacc_v2_head", "maxboxacc_v2_head_val_tau",
    "maxboxacc_v2_body", "maxboxacc_object", "maxboxacc_v2_object", "maxboxacc_v2_object_val_tau", "pxap", "pxiou",
    "box_ap", "pointing_game_head", "energy_pointing_game_head", "pointing_game_object", "energy_pointing_game_object",
    "pointing_game_body", "avg_drop", "increase_in_confidence", "deletion_auc", "insertion_auc", "road_combined",
)


def ordered(names: tuple[str, ...] | None = None) -> list[MetricCard]:
    """Cards in registration order (leaderboard.csv's), or in the order of `names` then the others."""
    cards = [METRICS.get(n) for n in METRICS.registered()]
    if names is None:
        return cards
    rank = {n: i for i, n in enumerate(names)}
    return sorted(cards, key=lambda c: rank.get(c.name, len(rank)))


def available(card: MetricCard, kinds: tuple[str, ...], loc: str, pixels: bool) -> bool:
    """Whether a dataset with box `kinds`, loc kind `loc` and pixel masks (or not) has metric `card`."""
    if card.box_kind is not None and card.box_kind not in kinds:
        return False
    if card.pixels and not pixels:
        return False
    return not (card.loc_boxes and loc not in kinds)


def json_names(stage: str, kinds: tuple[str, ...]) -> tuple[str, ...]:
    """The metric names stage `stage` writes per method for a dataset with box `kinds` (pixels included)."""
    return tuple(c.name for c in ordered() if c.stage == stage and (c.box_kind is None or c.box_kind in kinds))


def computed_by(impl: str) -> tuple[str, ...]:
    """The metric names module `impl` computes (e.g. ROAD's, which have their own image subset)."""
    return tuple(c.name for c in ordered() if c.impl == impl)


def per_kind(prefix: str, kind: str) -> str:
    """The registered name of metric family `prefix` on box kind `kind` (e.g. pointing_game, head)."""
    return METRICS.get(f"{prefix}_{kind}").name
