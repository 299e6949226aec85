"""Matplotlib PNGs for the report stage: BoxAcc vs τ, PR curves, training curves, the leaderboard heatmap,
localization against faithfulness per method, and the mean deletion / insertion curves.

Figures are built with the object API on the Agg canvas (no pyplot state, no GUI backend) and saved
without the "Software" tag; Agg PNGs carry no date, so the same inputs give the same bytes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
PNG_METADATA = {"Software": None}
KIND_STYLE = {"head": "-", "body": "--", "object": "-"}
DELTA_COLORS = {"30": "C0", "50": "C1", "70": "C2"}


def save_png(fig: Figure, path: Path) -> None:
    """Deterministic PNG: fixed DPI, no metadata that changes between runs."""
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=DPI, metadata=PNG_METADATA)


def boxacc_figure(curves: pd.DataFrame, backbone: str, methods: list[str]) -> Figure:
    """One panel per method: BoxAcc(τ, δ) for head boxes (solid) and whole-pet boxes (dashed)."""
    ncols = min(4, max(1, len(methods)))
    nrows = math.ceil(len(methods) / ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.6 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    for ax, method in zip(axes.ravel(), methods, strict=False):
        sub = curves[(curves["method"] == method) & curves["curve"].str.startswith("boxacc_")]
        for curve, g in sub.groupby("curve", sort=True):
            _, kind, delta = str(curve).split("_")
            color = DELTA_COLORS.get(delta[1:], "C3")
            ax.plot(g["x"], g["y"], KIND_STYLE.get(kind, ":"), color=color, lw=1.2, label=f"{kind} δ={delta[1:]}")
        ax.set_title(method, fontsize=10)
        ax.set_ylim(0, 100)
        ax.set_xlim(0, 1)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(methods):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("τ (threshold, fraction of the map max)")
    for ax in axes[:, 0]:
        ax.set_ylabel("BoxAcc (%)")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(6, len(labels)), fontsize=8)
    fig.suptitle(f"{backbone}: BoxAcc vs τ per IoU threshold δ", fontsize=11)
    return fig


def pr_figure(curves: pd.DataFrame, backbone: str, methods: list[str], pxap: dict[str, float]) -> Figure:
    """Pixel precision–recall curves (whole-pet trimaps), one line per method, PxAP in the legend."""
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    for method in methods:
        g = curves[(curves["method"] == method) & (curves["curve"] == "pr")]
        if len(g):
            ap = pxap.get(method, float("nan"))
            ax.plot(g["x"], g["y"], lw=1.2, label=f"{method} (PxAP {ap:.1f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"{backbone}: pixel PR curves")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8, loc="lower left")
    return fig


def training_figure(histories: dict[str, pd.DataFrame]) -> Figure:
    """Loss and accuracy per epoch for every trained backbone (train solid, val dashed)."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for i, (backbone, h) in enumerate(histories.items()):
        color = f"C{i % 10}"
        ax_loss.plot(h["epoch"], h["train_loss"], "-o", ms=3, color=color, label=f"{backbone} train")
        ax_loss.plot(h["epoch"], h["val_loss"], "--o", ms=3, color=color, label=f"{backbone} val")
        ax_acc.plot(h["epoch"], h["train_acc"], "-o", ms=3, color=color, label=f"{backbone} train")
        ax_acc.plot(h["epoch"], h["val_acc"], "--o", ms=3, color=color, label=f"{backbone} val")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="classification accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    return fig


def heatmap_figure(board: pd.DataFrame, metric: str, backbones: list[str], methods: list[str]) -> Figure:
    """Backbone × method grid of one metric, each cell annotated with its value."""
    grid = board.pivot_table(index="backbone", columns="method", values=metric, sort=False)
    grid = grid.reindex(index=backbones, columns=methods)
    values = grid.to_numpy(dtype=float)  # (backbones, methods)
    fig = Figure(figsize=(3.0 + 0.8 * len(methods), 1.8 + 0.5 * len(backbones)), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right")
    ax.set_yticks(range(len(backbones)), backbones)
    for (r, c), v in np.ndenumerate(values):
        text = "–" if math.isnan(v) else f"{v:.1f}"
        ax.text(c, r, text, ha="center", va="center", fontsize=8, color="white" if v < 60 else "black")
    fig.colorbar(im, ax=ax, label="%")
    ax.set_title(f"{metric} by backbone × map method", fontsize=10)
    return fig


FAITHFULNESS_AXES = (("deletion_auc", "deletion AUC (lower: the map's pixels matter)"),
                     ("insertion_auc", "insertion AUC (higher: the map's pixels suffice)"))
MARKERS = "osD^v<>pP*X"


def localization_vs_faithfulness_figure(board: pd.DataFrame, backbones: list[str], methods: list[str],
                                        x: str = "maxboxacc_v2_head") -> Figure:
    """Does the method that localizes best also explain best? One panel per faithfulness AUC against
    the loc metric x (MaxBoxAccV2 of the dataset's loc kind), a point per (backbone, method): colour = method, marker = backbone, 95% CI bars."""
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    axes = fig.subplots(1, len(FAITHFULNESS_AXES), squeeze=False)[0]
    for ax, (y, label) in zip(axes, FAITHFULNESS_AXES, strict=True):
        for bi, backbone in enumerate(backbones):
            for mi, method in enumerate(methods):
                row = board[(board["backbone"] == backbone) & (board["method"] == method)]
                if row.empty or pd.isna(row[x].iloc[0]) or pd.isna(row[y].iloc[0]):
                    continue
                r = row.iloc[0]
                err = [[_gap(r, x, "low")], [_gap(r, x, "high")]], [[_gap(r, y, "low")], [_gap(r, y, "high")]]
                ax.errorbar(r[x], r[y], xerr=err[0], yerr=err[1], fmt=MARKERS[bi % len(MARKERS)],
                            color=f"C{mi % 10}", ms=6, lw=0.8, capsize=2,
                            label=f"{method}" if bi == 0 else None)
        ax.set(xlabel=f"{x} (%)", ylabel=label, ylim=(0, 1))
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    shapes = ", ".join(f"{MARKERS[i % len(MARKERS)]} {b}" for i, b in enumerate(backbones))
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="method (colour)")
    fig.suptitle(f"Localization vs faithfulness per map method\nmarkers: {shapes}", fontsize=9)
    return fig


def _gap(row: pd.Series, metric: str, side: str) -> float:
    """Distance from the point to its CI end (0 without a CI), for error bars."""
    bound = row.get(f"{metric}_ci_{side}")
    if bound is None or pd.isna(bound):
        return 0.0
    return max(0.0, float(bound) - float(row[metric]) if side == "high" else float(row[metric]) - float(bound))


def faithfulness_curves_figure(curves: pd.DataFrame, backbone: str, methods: list[str]) -> Figure:
    """Mean deletion and insertion curves, a line per method."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    for ax, name in zip(fig.subplots(1, 2), ("deletion", "insertion"), strict=True):
        for mi, method in enumerate(methods):
            g = curves[(curves["method"] == method) & (curves["curve"] == name)]
            if len(g):
                ax.plot(g["fraction"], g["score"], lw=1.2, color=f"C{mi % 10}", label=method)
        ax.set(xlabel=f"fraction of pixels {'deleted' if name == 'deletion' else 'inserted'}",
               ylabel="GT-class softmax score", xlim=(0, 1), ylim=(0, 1.02), title=f"{backbone}: {name}")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    return fig


def write_plots(folder: Path, curves: dict[str, pd.DataFrame], board: pd.DataFrame,
                histories: dict[str, pd.DataFrame], methods: dict[str, list[str]],
                heatmap: str = "maxboxacc_v2_head",
                faithfulness_curves: dict[str, pd.DataFrame] | None = None) -> list[str]:
    """Write every plot under `folder`; returns the file names written, in order."""
    names = []
    for backbone, c in curves.items():
        sub = board[board["backbone"] == backbone]
        pxap = dict(zip(sub["method"], sub["pxap"], strict=True)) if "pxap" in sub else {}
        if (c["curve"] != "pr").any() or "pxap" not in sub:  # box curves (a masks-only dataset has none)
            save_png(boxacc_figure(c, backbone, methods[backbone]), folder / f"boxacc_tau_{backbone}.png")
            names.append(f"boxacc_tau_{backbone}.png")
        if "pxap" in sub:  # datasets with pixel masks (Pets trimaps, OpenImages masks)
            save_png(pr_figure(c, backbone, methods[backbone], pxap), folder / f"pr_{backbone}.png")
            names.append(f"pr_{backbone}.png")
    if histories:
        save_png(training_figure(histories), folder / "training.png")
        names.append("training.png")
    all_methods = list(dict.fromkeys(m for ms in methods.values() for m in ms))
    save_png(heatmap_figure(board, heatmap, list(curves), all_methods), folder / f"heatmap_{heatmap}.png")
    names.append(f"heatmap_{heatmap}.png")
    if faithfulness_curves is not None and {"deletion_auc", "insertion_auc", heatmap} <= set(board.columns):
        save_png(localization_vs_faithfulness_figure(board, list(curves), all_methods, heatmap),
                 folder / "localization_vs_faithfulness.png")
        names.append("localization_vs_faithfulness.png")
        for backbone, fc in faithfulness_curves.items():
            save_png(faithfulness_curves_figure(fc, backbone, methods[backbone]),
                     folder / f"faithfulness_curves_{backbone}.png")
            names.append(f"faithfulness_curves_{backbone}.png")
    return names


def inflation_figure(table: pd.DataFrame, baseline: str, metrics: dict[str, str]) -> Figure:
    """Per protocol profile, each backbone × method row's Loc minus the baseline profile's (points, with the
    paired-bootstrap 95% CI as a bar), one colour per Loc metric (`metrics`: column → label); 0 = no inflation."""
    profiles = [p for p in dict.fromkeys(table["profile"]) if p != baseline]
    fig = Figure(figsize=(1.8 * max(2, len(profiles)) + 1.5, 3.6), layout="constrained")
    ax = fig.subplots()
    rng = np.random.default_rng(0)  # fixed jitter: the same table gives the same bytes
    for j, (col, label) in enumerate(metrics.items()):
        for i, profile in enumerate(profiles):
            sub = table[table["profile"] == profile]
            x = i + (j - (len(metrics) - 1) / 2) * 0.3 + rng.uniform(-0.06, 0.06, len(sub))
            y = sub[f"{col}_diff"].to_numpy(dtype=float)
            lo, hi = sub[f"{col}_diff_ci_low"].to_numpy(dtype=float), sub[f"{col}_diff_ci_high"].to_numpy(dtype=float)
            ax.errorbar(x, y, yerr=np.vstack([np.nan_to_num(y - lo), np.nan_to_num(hi - y)]), fmt="o", ms=3,
                        color=f"C{j}", alpha=0.7, elinewidth=0.8, label=label if i == 0 else None)
    ax.axhline(0, color="k", lw=0.8)
    oracle = dict(zip(table["profile"], table["oracle"], strict=False))
    ax.set_xticks(range(len(profiles)), [f"{p}\n(ORACLE)" if oracle.get(p) else p for p in profiles], fontsize=8)
    ax.set_ylabel(f"Loc − {baseline} (points)")
    ax.grid(alpha=0.3, axis="y")
    if profiles:
        ax.legend(fontsize=8)
    ax.set_title(f"Inflation over {baseline} per protocol profile (same maps; 95% paired CIs)", fontsize=10)
    return fig
