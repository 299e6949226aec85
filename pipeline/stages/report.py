"""The `report` stage: leaderboard (md/csv/tex/html) with bootstrap CIs and a paired test, breakdowns,
plots, CAM galleries and the explorer page under `reports/`, from the earlier stages' outputs only (read through
`pipeline.contracts`; every input folder is an option of its command in dvc.yaml). The leaderboard shows
localization (evaluate@B) and faithfulness (faithfulness@B) side by side.

Everything written is a deterministic function of those outputs and params.report (seeded resampling,
no dates), so deleting reports/ and re-running gives the same bytes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import contracts as C
from pipeline import faithcontracts as FC
from pipeline.atomic import atomic_path, write_text
from pipeline.params import arch_of
from pipeline.report import explorer, gallery, meanscores, perimage, plots, protocols, tables, writers, wsolvs
from pipeline.report.leaderboard import leaderboard_texts, paired_sentence
from pipeline.stages import bar

log = logging.getLogger(__name__)


def _load_backbone(paths: C.Paths, backbone: str, layout: C.Layout) -> perimage.BackboneEval:
    per_image = C.read_per_image(paths.eval_dir(backbone))
    source = str(paths.eval_dir(backbone) / "per_image.parquet")
    cubes = perimage.build_cubes(per_image, source, layout.scored_split)
    top1 = {}
    for (_, kind, _), cube in cubes.items():
        if kind == layout.loc_kind and cube.split not in top1:
            index = C.read_cams_index(paths.cams_dir(backbone), cube.split)
            top1[cube.split] = perimage.top1_correct(index, cube.image_ids, str(paths.cams_dir(backbone)))
    return perimage.BackboneEval(backbone, cubes, C.read_chosen(paths.eval_dir(backbone)), top1)


def _breakdown_scores(evals: list[perimage.BackboneEval], deltas: tuple[int, ...]) -> pd.DataFrame:
    """Long (backbone, method, kind, image_id, score): each image's MaxBoxAccV2 share at the chosen τ."""
    parts = []
    for ev in evals:
        for (method, kind, mode), cube in ev.cubes.items():
            if mode != "all" or kind not in ev.chosen.get(method, {}).get("oracle", {}):
                continue
            score = perimage.per_image_v2(cube, ev.chosen[method]["oracle"][kind], deltas)
            parts.append(pd.DataFrame({"backbone": ev.backbone, "method": method, "kind": kind,
                                       "image_id": cube.image_ids, "score": score}))
    cols = ["backbone", "method", "kind", "image_id", "score"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def _gallery_input(paths: C.Paths, ev: perimage.BackboneEval, kind: str = "head") -> gallery.GalleryInput | None:
    heads = {m: c for (m, k, mode), c in ev.cubes.items() if k == kind and mode == "largest"
             and "v1" in ev.chosen.get(m, {}).get("oracle", {}).get(kind, {})}
    if not heads:
        log.warning("%s: no %s-box IoUs in largest-contour mode; its gallery page is skipped", ev.backbone, kind)
        return None
    first = next(iter(heads.values()))
    ious, taus = {}, {}
    for m, cube in sorted(heads.items()):
        taus[m] = float(ev.chosen[m]["oracle"][kind]["v1"])
        ious[m] = cube.iou[:, cube.column(taus[m], f"chosen.json {m}/oracle/{kind}/v1")]
    cams_dir = paths.cams_dir(ev.backbone)
    index = C.read_cams_index(cams_dir, first.split)
    row_of = {str(i): r for r, i in enumerate(index["image_id"])}
    preds = dict(zip(index["image_id"].astype(str), index["pred"].astype(int), strict=True))
    size = int(C.read_cams_meta(cams_dir)["image_size"])
    loaded: dict[str, np.ndarray] = {}

    def maps(method: str, image_id: str) -> np.ndarray:
        if method not in loaded:
            loaded[method] = C.open_maps(cams_dir, first.split, method, "gt")
        return np.asarray(loaded[method][row_of[image_id]])

    return gallery.GalleryInput(ev.backbone, size, first.image_ids, ious, taus, preds, maps, kind)


def _shared_gallery(paths: C.Paths, samples: pd.DataFrame) -> gallery.SharedInput:
    boxes = C.read_boxes(paths.prepared)
    grouped = {(str(i), str(k)): g[["x0", "y0", "x1", "y1"]].to_numpy(dtype=np.int64)
               for (i, k), g in boxes.groupby(["image_id", "kind"], sort=True)}
    return gallery.SharedInput(samples.set_index(samples["image_id"].astype(str)), grouped,
                               C.read_image_cache(paths.prepared), C.read_classes(paths.prepared))


def run(params, paths: C.Paths) -> str:
    """Write the whole report under `paths.reports` from the stage outputs `paths` names."""
    out_dir = Path(paths.reports)
    rp, deltas = params.report, tuple(params.evaluate.iou_thresholds)
    backbones = list(params.backbones)
    layout = C.read_layout(paths.prepared)  # the dataset's box kinds and masks: the columns follow them
    kinds, loc = layout.box_kinds, layout.loc_kind
    metrics = {b: C.read_metrics(paths.metrics_file(b)) | FC.read_faithfulness_metrics(paths.faithfulness_file(b))
               for b in backbones}
    board = tables.metrics_frame(metrics, tuple(params.cams.methods),
                                 tables.metrics_for(kinds, loc, layout.pixel_split is not None))
    entries = {b: wsolvs.Entry(arch_of(b, bp), bp.image_size, bp.wsol.method) for b, bp in params.backbones.items()}
    train_method = {b: e.train_method for b, e in entries.items()}
    board.insert(2, "train_method", board["backbone"].map(train_method))
    evals = [_load_backbone(paths, b, layout) for b in backbones]
    cis, boot = perimage.bootstrap_rows(evals, deltas, params.evaluate.fixed_tau, rp.bootstrap, rp.seed,
                                        perimage.specs_for(kinds, loc), loc)
    mean_rows = {b: meanscores.pointing_scores(C.read_pointing(paths.eval_dir(b)), layout.scored_split)
                 | meanscores.faithfulness_scores(FC.read_faithfulness(paths.faithfulness_dir(b)),
                                                  FC.read_road(paths.faithfulness_dir(b))) for b in backbones}
    mean_cis, mean_boot = meanscores.bootstrap_means(mean_rows, rp.bootstrap, rp.seed, loc)
    cis, boot = pd.concat([cis, mean_cis], ignore_index=True), boot | mean_boot
    board, dropped = tables.attach_cis(board, cis)
    for d in dropped:
        log.warning("CI dropped, re-computed point disagrees: %s", d)
    rank_by = f"maxboxacc_v2_{loc}" if loc in kinds else "pxap" if layout.pixel_split else "top1_acc"
    board = tables.rank(board, rank_by)
    sentence = paired_sentence(board, boot, {ev.backbone: ev for ev in evals}, loc)

    ids = {(ev.backbone, m): cube.image_ids for ev in evals for (m, k, mode), cube in ev.cubes.items()
           if k == loc and mode == "all"}
    versus = wsolvs.versus_cam(board, boot, ids, entries, f"maxboxacc_v2_{loc}")
    ptable = protocols.load_all(paths, backbones, layout, rp.bootstrap, rp.seed)
    sections = (wsolvs.section_markdown(versus, rp.bootstrap) + "\n\n" + protocols.section_markdown(ptable, rp.bootstrap),
                wsolvs.section_html(versus, rp.bootstrap) + "\n" + protocols.section_html(ptable, rp.bootstrap))
    texts = leaderboard_texts(board, sentence, rp.bootstrap, rp.seed, dropped, layout, sections)
    for ext, text in texts.items():
        write_text(out_dir / f"leaderboard.{ext}", text)

    samples = C.read_samples(paths.prepared, ("image_id", "class_name", "species"))
    scores = _breakdown_scores(evals, deltas)
    best = board.iloc[0]
    with atomic_path(out_dir / "breakdowns", kind="dir", owned=("*.csv", "*.md")) as tmp:
        tmp.mkdir()
        (tmp / "protocols.csv").write_text(writers.to_csv(ptable))
        if kinds:
            _write_breakdowns(tmp, scores, samples, board, str(best["backbone"]), str(best["method"]),
                              train_method, (loc, *[k for k in kinds if k != loc]))
        else:  # a masks-only dataset (OpenImages): per-class box accuracy does not apply
            (tmp / "README.md").write_text("# Breakdowns\n\nThis dataset has no boxes (pixel masks only): "
                                           "the per-class MaxBoxAccV2 breakdowns do not apply.\n")

    curves = {b: C.read_curves(paths.curves_file(b)) for b in backbones}
    histories = {b: h for b in backbones if (h := _history(paths, b)) is not None}
    methods = {b: board.loc[board["backbone"] == b, "method"].pipe(_in_order, params.cams.methods)
               for b in backbones}
    with atomic_path(out_dir / "plots", kind="dir", owned=("*.png",)) as tmp:
        tmp.mkdir()
        faith_curves = {b: FC.read_faithfulness_curves(paths.faithfulness_dir(b)) for b in backbones}
        plot_names = plots.write_plots(tmp, curves, board, histories, methods, rank_by, faith_curves)
        if not ptable.empty:
            plots.save_png(plots.inflation_figure(ptable, protocols.BASELINE, protocols.LABEL), tmp / "protocols.png")
            plot_names.append("protocols.png")

    shared = _shared_gallery(paths, samples)
    ginputs = [g for ev in evals if (g := _gallery_input(paths, ev, loc)) is not None]
    with atomic_path(out_dir / "gallery", kind="dir", owned=("*.html", "*.png")) as tmp:
        tmp.mkdir()
        n_thumbs, mismatched = gallery.write_gallery(tmp, ginputs, shared, rp.gallery_samples,
                                                     rp.gallery_extremes, rp.seed, bar, train_method)
    views = [v for ev in evals if (v := explorer.load_view(paths, ev.backbone, ev.chosen, layout)) is not None]
    with atomic_path(out_dir / "explorer", kind="dir", owned=("index.html",)) as tmp:
        tmp.mkdir()
        page_bytes = explorer.write_explorer(tmp, board, views, shared, params.evaluate.fixed_tau)
    return (f"report: {len(board)} leaderboard rows ({len(backbones)} backbones) → {out_dir}/leaderboard.*; "
            f"{len(plot_names)} plots, {n_thumbs} gallery thumbnails, explorer {page_bytes / 1e6:.1f} MB "
            f"({out_dir}/explorer/index.html); {len(dropped)} CIs dropped "
            f"(metric drift), {mismatched} gallery boxes off their evaluated IoU\n{sentence}")


def _history(paths: C.Paths, backbone: str) -> pd.DataFrame | None:
    history = C.read_history(paths.model_dir(backbone))
    if history is None:
        log.warning("no training history in %s (an epochs: 0 folder scores a checkpoint and has no training "
                    "loss): the training-curve plot leaves %s out", paths.model_dir(backbone), backbone)
    return history


def _in_order(methods: pd.Series, order) -> list[str]:
    present = set(methods)
    return [m for m in order if m in present] + sorted(present - set(order))


def _write_breakdowns(folder: Path, scores: pd.DataFrame, samples: pd.DataFrame, board: pd.DataFrame,
                      backbone: str, method: str, train_method: dict[str, str],
                      kinds: tuple[str, ...] = ("head", "body")) -> None:
    cols = [c for k in kinds for c in (writers.Column(f"n_{k}", f"n ({k})", 0),
                                       writers.Column(f"maxboxacc_v2_{k}", f"MaxBoxAccV2 {k}"))]
    species = tables.species_table(scores, samples, board, kinds)
    species.insert(2, "train_method", species["backbone"].map(train_method))
    breeds = tables.worst_breeds(scores, samples, backbone, method, kinds=kinds)
    breeds.insert(0, "train_method", train_method.get(backbone))
    spec_cols = [writers.Column("backbone", "backbone"), writers.Column("train_method", "training"),
                 writers.Column("method", "method"),
                 writers.Column("species", "species"), *cols]
    breed_cols = [writers.Column("train_method", "training"), writers.Column("class_name", "breed"), writers.Column("species", "species"), *cols]
    for name, df, columns, title in (
        ("species", species, spec_cols, "MaxBoxAccV2 per species (τ chosen on the whole split)"),
        ("breeds_worst10", breeds, breed_cols, f"Ten worst breeds for the best row: {backbone} / {method}"),
    ):
        (folder / f"{name}.csv").write_text(writers.to_csv(df))
        (folder / f"{name}.md").write_text(f"# {title}\n\n" + writers.to_markdown(writers.render_cells(df, columns)))
