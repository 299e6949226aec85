"""The protocol registry, torch-free: one card per *protocol profile*, the rules a paper scored its maps
under. evaluate@B scores the same maps under every profile of `evaluate.protocols` (scoring:
`pipeline.metrics.protocols`, numpy only) and the report says by how much each one moves the honest
number (`choe2020`).

A card is a frozen set of choices, each a field:
- `normalisation`: how a raw map reaches the S×S frame (`bicubic_minmax`: PROTOCOL §1, OpenCV bicubic then
  min–max; `bilinear_minmax`: OpenCV's default `INTER_LINEAR`, then min–max);
- `tau_rule`: `val` (the best τ on the held-out boxed val split), `test` (the best τ on the scored split:
  an oracle), `fixed` (the card's `fixed_tau`, by dataset) or `pseudo` (the best τ on val against the
  pseudo-boxes of `evaluate.pseudo_boxes`; no GT box of val is read);
- `box_rule`: the one predicted box of Top-1 / GT-known Loc and MaxBoxAcc, `largest_contour` (the
  polygon of largest `contourArea` among RETR_TREE contours, PROTOCOL §3) or `largest_component` (the
  8-connected component with the most pixels, ties to the first in raster order); `v2_box_rule` is MaxBoxAccV2's (`all_contours` as
  defined by Choe et al., or the profile's single box);
- `top1_strict` / `gt_known_strict`: whether that Loc needs IoU > 0.5 (strict) or IoU ≥ 0.5;
- `resize`: how the test image reaches the model (`straight`: resized to S×S, aspect ratio not kept; the
  only rule cams@B dumps maps under, so the only one a profile may name).

The quotes and the file / line of each paper's code are in the card's `rule` and `source`; the code is
cited, never copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pipeline.catalog.registry import Registry

Normalisation = Literal["bicubic_minmax", "bilinear_minmax"]
TauRule = Literal["val", "test", "fixed", "pseudo"]
BoxRule = Literal["largest_contour", "largest_component", "all_contours"]

CHOE2020, ZHOU2016, TSCAM2021, TEST_TAU, PSEUDO_BOXES = "choe2020", "zhou2016", "tscam2021", "test_tau", "pseudo_boxes"
BASELINE = CHOE2020  # the honest default every other profile is compared with
DEFAULT_PROFILES = (CHOE2020, ZHOU2016, TSCAM2021, TEST_TAU)  # pseudo_boxes needs a file: opt-in
# The JSON keys of one `protocols[<profile>][<method>]` entry (docs/contracts.md).
TOP1_LOC, GT_KNOWN_LOC, TAU, TAU_TOP1, MAXBOXACC, MAXBOXACC_V2 = (
    "top1_loc", "gt_known_loc", "tau", "tau_top1", "maxboxacc", "maxboxacc_v2")
LOC_METRICS = (TOP1_LOC, GT_KNOWN_LOC)  # the Protocols table's numbers
IMAGENET, OTHER = "imagenet", "other"  # the dataset families a fixed τ may depend on


@dataclass(frozen=True)
class ProtocolCard:
    name: str
    paper: str  # who published the rule
    summary: str  # one line for the report's legend
    rule: str  # the paper's rule, quoted
    source: str  # the file and line of the paper's code it follows
    impl: str = "pipeline.metrics.protocols"
    normalisation: Normalisation = "bicubic_minmax"
    tau_rule: TauRule = "val"
    fixed_tau: dict[str, float] = field(default_factory=dict)  # dataset family → τ (tau_rule fixed)
    box_rule: BoxRule = "largest_contour"
    v2_box_rule: BoxRule = "all_contours"
    top1_strict: bool = False
    gt_known_strict: bool = False
    resize: Literal["straight"] = "straight"
    oracle: bool = False  # τ seen on the scored split: an upper bound, labelled as such in the report

    def tau_for(self, family: str) -> float:
        """The fixed τ of a dataset family (`IMAGENET` or `OTHER`)."""
        return self.fixed_tau.get(family, self.fixed_tau[OTHER])


PROTOCOLS: Registry[ProtocolCard] = Registry("protocol")

for _card in (
    ProtocolCard(
        CHOE2020, "Choe et al., CVPR 2020", "MaxBoxAcc / V2 as defined; Loc at the τ chosen on the boxed val split",
        rule=("\"MaxBoxAcc(δ) = max_τ BoxAcc(τ, δ)\"; MaxBoxAccV2 averages δ ∈ {30, 50, 70}% over \"all the "
              "estimated boxes\" (every contour); hyperparameters (τ included) are chosen on the held-out "
              "train-fullsup split, never on test (Sec. 4-5)."),
        source=("clovaai/wsolevaluation evaluation.py (commit 0c476cd): `compute_bboxes_from_scoremaps` (uint8, "
                "int(τ·max), THRESH_BINARY, RETR_TREE, max contourArea), `BoxEvaluator.accumulate` "
                "(`multiple_iou.max(1) >= self._IOU_THRESHOLD`) and `BoxEvaluator.compute` (the max over the "
                "threshold list); PROTOCOL.md §3-4"),
    ),
    ProtocolCard(
        ZHOU2016, "Zhou et al., CVPR 2016 (CAM)", "fixed τ = 0.2 of the map max, largest connected component",
        rule=("\"we first segment the regions of which the value is above 20% of the max value of the CAM. "
              "Then we take the bounding box that covers the largest connected component in the "
              "segmentation map\" (Sec. 3.1); a box is correct at IoU ≥ 0.5 (the ILSVRC rule)."),
        source=("zhoubolei/CAM generate_bbox.m l. 15 (`bbox_threshold = [20, 100, 110]`, thresholds on the "
                "0-255 heatmap) and bboxgenerator/dt_box.cpp `getBBox` / `mergeBBox`; the released binary adds "
                "a distance transform and merges the boxes of three thresholds, so the profile follows the "
                "paper's text (20%, one component) with camloc's map post-processing"),
        tau_rule="fixed", fixed_tau={OTHER: 0.2}, box_rule="largest_component", v2_box_rule="largest_component",
    ),
    ProtocolCard(
        TSCAM2021, "Gao et al., ICCV 2021 (TS-CAM)", "bilinear min–max, fixed τ 0.1 (0.12 on ImageNet), Top-1 IoU > 0.5",
        rule=("maps resized to the 224 crop and min–max normalised, boxes from the largest contour above "
              "CAM_THR·max (0.1 on CUB, 0.12 on ILSVRC); GT-known counts IoU ≥ 0.5, Top-1 / Top-5 Loc "
              "IoU > 0.5; test images resized straight to 224. Datasets other than ImageNet take the CUB "
              "value 0.1 (single-object, fine-grained: the closest of the two published settings). camloc "
              "keeps PROTOCOL §3's box ends (x + w clipped to S − 1; an empty mask is (0, 0, 0, 0)) where "
              "TS-CAM leaves x + w unclipped and returns (0, 0, 1, 1)."),
        source=("vasgaowei/TS-CAM lib/cams_deit.py: `resize_cam` l. 10 (cv2.resize default interpolation, "
                "min–max), `get_bboxes` l. 28 (uint8, int(thr·max), THRESH_TOZERO, RETR_TREE, max contourArea), "
                "`evaluate_cls_loc` (`iou >= 0.5` for GT-known), `cls_loc_err` (`max_iou > iou_th` for Top-k); "
                "configs/CUB/*.yaml and configs/ILSVRC/*.yaml MODEL.CAM_THR"),
        normalisation="bilinear_minmax", tau_rule="fixed", fixed_tau={OTHER: 0.1, IMAGENET: 0.12},
        v2_box_rule="largest_contour", top1_strict=True,
    ),
    ProtocolCard(
        TEST_TAU, "SAT (ICCV 2023) and many others", "ORACLE: τ chosen on the test split itself",
        rule=("τ swept on the evaluation split and the best Top-1 / GT-known Loc reported (each its own τ); "
              "Choe et al. call this an upper bound, not a result."),
        source=("clovaai/wsolevaluation evaluation.py `BoxEvaluator.compute` (max over τ on the split it is "
                "given); camloc's oracle twin of PROTOCOL §4's last rule"),
        tau_rule="test", oracle=True,
    ),
    ProtocolCard(
        PSEUDO_BOXES, "Murtaza et al., WACV 2025 (realistic protocol)", "τ chosen on val against pseudo-boxes, no GT",
        rule=("τ (and the model) are selected on a validation set whose boxes are pseudo-boxes (Selective "
              "Search, CLIP or an RPN) instead of human GT; the pseudo-box files use the reference's "
              "metadata layout."),
        source=("clovaai/wsolevaluation metadata/<DATASET>/val/localization.txt (`id,x0,y0,x1,y1`, one row per "
                "box) read as in pipeline/datasets/wsol.py; selection as in choe2020"),
        tau_rule="pseudo",
    ),
):
    PROTOCOLS.add(_card.name, _card)
