"""evaluate@B's protocol profiles (`evaluate.protocols`): each dumped method's GT-class maps re-scored under
every listed paper's rules (cards: `pipeline.catalog.protocols`, arithmetic: `pipeline.metrics.protocols`).

The IoUs evaluate already has are reused where a profile keeps PROTOCOL §1's normalisation and a contour
box on the τ grid (choe2020, test_tau; pseudo_boxes on the scored split); another normalisation or box rule
(zhou2016's largest component, TS-CAM's bilinear resize) or a fixed τ off the grid gets one more pass over
the scored split's maps; pseudo_boxes one pass over val against the pseudo-boxes (no GT box of val is read).
Runs on rank 0 only (after the gather). Writes nothing itself: evaluate puts the section in the metrics JSON
and the rows in eval/<B>/protocols.parquet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import contracts as C
from pipeline import metrics as M
from pipeline.catalog.protocols import ProtocolCard
from pipeline.errors import CamlocError
from pipeline.metrics import protocols as P
from pipeline.metrics.pseudoboxes import read_pseudo_boxes
from pipeline.protocolparams import cards, dataset_family

log = logging.getLogger(__name__)
DEFAULT_NORM = "bicubic_minmax"
CONTOUR_ROWS = {"largest_contour": 0, "all_contours": 1}  # rows of evaluate's (N, 2, T) IoUs


@dataclass(frozen=True)
class Context:
    """What every method of one backbone shares: the cards, the τs, the pseudo-boxes in the S×S frame."""

    cards: tuple[ProtocolCard, ...]
    family: str
    taus: np.ndarray  # the τ grid, plus any fixed τ of a card that is not on it
    on_grid: bool  # taus is the evaluation grid itself (its IoUs can be reused)
    loc: str
    split: str  # the loc kind's scored split
    pseudo: list[np.ndarray | None] | None  # per val image (cams index order): its pseudo-boxes, S×S frame


def context(params, prepared: Path, splits: dict, size: int, layout: C.Layout, tau_grid: np.ndarray) -> Context | None:
    """The backbone's Context, or None when the dataset has no loc boxes (masks only: no box protocol)."""
    ep = params.evaluate
    loc = layout.loc_kind
    if loc not in layout.box_kinds or layout.scored_split.get(loc) not in splits:
        return None
    family = dataset_family(params.dataset.name, params.dataset.wsol.metadata)
    chosen = cards(ep.protocols)
    fixed = [c.tau_for(family) for c in chosen if c.tau_rule == "fixed"]
    off = [t for t in fixed if np.min(np.abs(tau_grid - t)) > P.TAU_MATCH]
    taus = np.union1d(tau_grid, off) if off else tau_grid
    pseudo = None
    if ep.pseudo_boxes:
        if C.HOLDOUT not in splits:
            raise CamlocError(f"evaluate.pseudo_boxes is set but cams@ dumped no {C.HOLDOUT} split to choose τ on; "
                              f"add {C.HOLDOUT} to cams.splits")
        index = splits[C.HOLDOUT].index
        samples = C.read_samples(prepared, ("image_id", "width", "height")).set_index("image_id")
        wh = samples.loc[index.image_id, ["width", "height"]].to_numpy(np.int64)
        ids = [str(i) for i in index.image_id]
        boxes = read_pseudo_boxes(ep.pseudo_boxes, {i: (int(w), int(h)) for i, (w, h) in zip(ids, wh, strict=True)})
        pseudo = [M.rescale_boxes(boxes[i], tuple(s), (size, size)) if i in boxes else None
                  for i, s in zip(ids, wh, strict=True)]
        log.info("pseudo-boxes: %d of %d val images have one (%s)", len(boxes), len(ids), ep.pseudo_boxes)
    return Context(chosen, family, taus, not off, loc, layout.scored_split[loc], pseudo)


def _job(args) -> np.ndarray:
    raw, size, gt, taus, normalisation, rules = args
    return P.profile_ious(raw, size, gt, taus, normalisation, rules)


def _pass(pool, sm, method: str, size: int, boxes: list, taus, normalisation: str, rules: tuple[str, ...]):
    """(N', R, T) IoUs of the images that have boxes, and their row numbers (N',)."""
    maps = sm.maps(method)
    rows = [i for i, b in enumerate(boxes) if b is not None]
    jobs = [(np.asarray(maps[i], np.float64), size, boxes[i], taus, normalisation, rules) for i in rows]
    out = list(pool.imap(_job, jobs, chunksize=16))
    return (np.stack(out) if out else np.empty((0, len(rules), len(taus)))), np.asarray(rows, dtype=np.int64)


def score_method(ctx: Context, pool, splits: dict, method: str, size: int, scores,
                 deltas: tuple[float, ...]) -> tuple[dict, pd.DataFrame]:
    """({profile: numbers}, rows of contracts.PROTOCOL_COLUMNS) of one method from evaluate's MethodScores."""
    sm = splits[ctx.split]
    base = scores.boxes[(ctx.split, ctx.loc)][0]  # (N, 2, T): every scored image has loc boxes
    top1_ok = sm.index["pred"].to_numpy() == sm.index["label"].to_numpy()
    cubes: dict[tuple[str, str], np.ndarray] = {}
    need: dict[str, set[str]] = {}
    for card in ctx.cards:
        for rule in (card.box_rule, card.v2_box_rule):
            if ctx.on_grid and card.normalisation == DEFAULT_NORM and rule in CONTOUR_ROWS:
                cubes[(DEFAULT_NORM, rule)] = base[:, CONTOUR_ROWS[rule]]
            else:
                need.setdefault(card.normalisation, set()).add(rule)
    for norm, rules in sorted(need.items()):
        ious, _ = _pass(pool, sm, method, size, sm.boxes[ctx.loc], ctx.taus, norm, tuple(sorted(rules)))
        cubes.update({(norm, r): ious[:, j] for j, r in enumerate(sorted(rules))})
    select = {"val": _val_select(ctx, pool, splits, method, size, scores)} if any(
        c.tau_rule == "val" for c in ctx.cards) else {}
    if ctx.pseudo is not None:
        select["pseudo"] = _pass(pool, splits[C.HOLDOUT], method, size, ctx.pseudo, ctx.taus, DEFAULT_NORM,
                                 ("largest_contour",))[0][:, 0]
    section, frames = {}, []
    ids = sm.index["image_id"].astype(str).to_numpy()
    for card in ctx.cards:
        if card.tau_rule in ("val", "pseudo") and select.get(card.tau_rule) is None:
            log.warning("%s: no %s boxes to choose τ on; profile %s left out", method, C.HOLDOUT, card.name)
            continue
        inp = P.ProfileInputs(ctx.taus, cubes[(card.normalisation, card.box_rule)],
                              cubes[(card.normalisation, card.v2_box_rule)], top1_ok, select.get(card.tau_rule))
        res = P.score_profile(card, inp, deltas, ctx.family)
        section[card.name] = {k: round(v, 6) for k, v in res.values.items()}
        loc = inp.loc[:, res.columns]  # (N, K)
        k = len(res.columns)
        frames.append(pd.DataFrame({"profile": card.name, "method": method, "image_id": np.repeat(ids, k),
                                    "tau": np.tile(ctx.taus[res.columns].astype(np.float32), len(ids)),
                                    "iou": loc.astype(np.float32).ravel()}))
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(C.PROTOCOL_COLUMNS))
    return section, rows


def _val_select(ctx: Context, pool, splits, method: str, size: int, scores) -> np.ndarray | None:
    """(M, T) largest-contour IoUs on val against its GT boxes (evaluate's, or a pass when τs are extended)."""
    if (C.HOLDOUT, ctx.loc) not in scores.boxes:
        return None
    if ctx.on_grid:
        return scores.boxes[(C.HOLDOUT, ctx.loc)][0][:, 0]
    sm = splits[C.HOLDOUT]
    return _pass(pool, sm, method, size, sm.boxes[ctx.loc], ctx.taus, DEFAULT_NORM, ("largest_contour",))[0][:, 0]


class Collector:
    """The backbone's `protocols` section and rows, method by method (a no-op without loc boxes)."""

    def __init__(self, params, prepared: Path, splits: dict, size: int, layout: C.Layout, tau_grid: np.ndarray):
        self.ctx = context(params, prepared, splits, size, layout, tau_grid)
        self.section: dict[str, dict[str, dict[str, float]]] = {}
        self.rows: list[pd.DataFrame] = []

    def add(self, pool, splits: dict, method: str, size: int, scores, deltas: tuple[float, ...]) -> None:
        if self.ctx is None:
            return
        section, rows = score_method(self.ctx, pool, splits, method, size, scores, deltas)
        for name, values in section.items():
            self.section.setdefault(name, {})[method] = values
        self.rows.append(rows)

    def json(self) -> dict:
        """The metrics JSON's nested section ({} without loc boxes)."""
        return {C.PROTOCOLS_KEY: self.section} if self.ctx is not None else {}

    def frame(self) -> pd.DataFrame:
        return (pd.concat(self.rows, ignore_index=True) if self.rows
                else pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
                    C.PROTOCOL_COLUMNS, ("object", "object", "object", "float32", "float32"), strict=True)}))
