"""The `camloc` command: one thin command per stage.

Each command parses paths, loads params and calls its stage's `run()` (pipeline/stages/); heavy
modules (torch) are imported inside the command, so `--help` and `evaluate-maps` start fast. User errors (CamlocError)
print one message and exit with code 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from pipeline.contracts import Paths
from pipeline.errors import CamlocError

PARAMS = click.option(
    "--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True,
    help="params.yaml to read.",
)


TORCH_STAGES = ("train", "cams", "faithfulness")  # the commands that run torch work (evaluate and report never import it)


class _Group(click.Group):
    """Turns CamlocError into one line on stderr and exit code 2 (no traceback unless --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CamlocError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug logs).")
@click.version_option(package_name="camloc")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int) -> None:
    """camloc: do class activation maps point at the right place, and which backbone and map method
    localize best? Each command below is one stage of `dvc repro` (see dvc.yaml), runnable by hand."""
    ctx.obj = {"debug": debug}
    level = logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 or debug else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("pipeline").setLevel(min(level, logging.INFO))
    if ctx.invoked_subcommand in TORCH_STAGES:
        from pipeline import threads

        threads.apply()  # the one thread policy (pipeline/threads.py), before the stage starts any work


def _params(path: Path):
    from pipeline.params import load_params

    return load_params(path)


def _scale_out(params, backbone: str, argv: list[str]) -> None:
    """With `backbones.<B>.nproc` > 1 and not under torchrun yet (e.g. `dvc repro`), run this same command
    (`argv`, after `python -m pipeline`) as nproc processes through torchrun's own entry point on this
    node, and stop here; otherwise do nothing (the command runs in this process, as one rank or alone)."""
    from pipeline import distributed

    nproc = params.backbone(backbone).nproc
    if nproc > 1 and not distributed.under_torchrun():
        root = click.get_current_context().find_root().params
        flags = (["--debug"] if root.get("debug") else []) + ["-v"] * int(root.get("verbose") or 0)
        distributed.relaunch(nproc, [*flags, *argv], f"{argv[0]} {backbone}")
        sys.exit(0)


def _echo_root(summary: str) -> None:
    """The stage summary, once: from rank 0 under torchrun."""
    from pipeline.distributed import world_from_env

    if world_from_env().is_root:
        click.echo(summary)


def _dir(name: str, default: Path, help: str):
    return click.option(f"--{name}", name, type=click.Path(path_type=Path), default=default, show_default=True,
                        help=help)


D = Paths()
RAW = _dir("raw", D.raw, "The raw dataset tree (download's output).")
PREPARED = _dir("prepared", D.prepared, "Manifests and image cache (prepare's output).")
MODELS = _dir("models", D.models, "Trained models, one folder per backbone (train's output).")
CAMS = _dir("cams", D.cams, "Dumped maps, one folder per backbone (cams' output).")
EVAL = _dir("eval", D.eval, "Per-image IoUs, one folder per backbone (evaluate's output).")
METRICS = _dir("metrics", D.metrics, "Metrics JSON, one file per backbone (evaluate's output).")
CURVES = _dir("curves", D.curves, "Curves CSV, one file per backbone (evaluate's output).")


@cli.command()
@PARAMS
@_dir("out", D.raw, "Where the raw tree goes.")
@click.option("--archives", type=click.Path(path_type=Path), default=None,
              help="Folder holding images.tar.gz and annotations.tar.gz (offline Pets; overrides params).")
def download(params_path: Path, out: Path, archives: Path | None) -> None:
    """Fetch Oxford-IIIT Pet (verified, resumable) or generate its synthetic twin `synthpets`."""
    from pipeline.stages.download import run

    click.echo(run(_params(params_path), Paths(raw=out), archives=archives))


@cli.command()
@PARAMS
@RAW
@_dir("out", D.prepared, "Where the prepared manifests and cache go.")
def prepare(params_path: Path, raw: Path, out: Path) -> None:
    """Parse the raw Pets-layout tree into samples/boxes manifests, splits and an image cache."""
    from pipeline.stages.prepare import run

    click.echo(run(_params(params_path), Paths(raw=raw, prepared=out)))


@cli.command()
@click.argument("backbone")
@PARAMS
@PREPARED
@MODELS
def train(backbone: str, params_path: Path, prepared: Path, models: Path) -> None:
    """Train the GAP classifier of one `backbones` entry from image labels only (into MODELS/BACKBONE).

    Runs under torchrun as is; `backbones.<B>.nproc` > 1 relaunches it through torchrun."""
    params = _params(params_path)
    _scale_out(params, backbone, ["train", backbone, "--params", str(params_path), "--prepared", str(prepared),
                                  "--models", str(models)])
    from pipeline.stages.train import run

    _echo_root(run(params, Paths(prepared=prepared, models=models), backbone))


@cli.command()
@click.argument("backbone", required=False)
@PARAMS
@PREPARED
@MODELS
@CAMS
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Your own model folder (model.pt + meta.json); use with --images and --method.")
@click.option("--images", type=click.Path(path_type=Path), default=None, help="Folder of your images.")
@click.option("--method", "methods", multiple=True, help="Map method(s) for --images mode (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder for --images mode.")
@click.option("--overlay", is_flag=True, help="--images mode: also <image_id>.png, the map over the image at its "
              "original size, with the predicted class and probability.")
@click.option("--tau", type=float, default=None, help="With --overlay: draw the predicted box at this τ.")
def cams(backbone, params_path, prepared, models, cams, checkpoint, images, methods, out, overlay, tau) -> None:
    """Dump raw score maps (CAM, Grad-CAM, ...) for val/test splits (into CAMS/BACKBONE), or for your own
    images (--checkpoint, --images, --method, --out)."""
    if checkpoint or images:
        if not (checkpoint and images and methods and out):
            raise click.UsageError("--checkpoint, --images, --method and --out go together")
        from pipeline.stages import cams as stage

        summary = stage.run_folder(checkpoint, images, list(methods), out, overlay=overlay, tau=tau)
    else:
        if not backbone:
            raise click.UsageError("give a BACKBONE (a key of params.yaml backbones) or --checkpoint/--images")
        params = _params(params_path)
        _scale_out(params, backbone, ["cams", backbone, "--params", str(params_path), "--prepared", str(prepared),
                                      "--models", str(models), "--cams", str(cams)])
        from pipeline.stages import cams as stage

        summary = stage.run(params, Paths(prepared=prepared, models=models, cams=cams), backbone)
    _echo_root(summary)


@cli.command()
@click.argument("backbone")
@PARAMS
@PREPARED
@CAMS
@EVAL
@METRICS
@CURVES
def evaluate(backbone, params_path, prepared, cams, eval, metrics, curves) -> None:
    """Score one backbone's maps: MaxBoxAcc(V2), Top-1/5 Loc, PxAP, box AP, with test-oracle and val tau.

    Also runs under torchrun (`torchrun --nproc_per_node N -m pipeline evaluate B`, gloo on CPU): each
    rank scores a shard of the images, rank 0 writes outputs identical to a one-process run. With
    `backbones.B.nproc` > 1 it relaunches itself that way (as train and cams do).
    """
    from pipeline.stages.evaluate import run

    params = _params(params_path)
    _scale_out(params, backbone, ["evaluate", backbone, "--params", str(params_path), "--prepared", str(prepared),
                                  "--cams", str(cams), "--eval", str(eval), "--metrics", str(metrics),
                                  "--curves", str(curves)])
    paths = Paths(prepared=prepared, cams=cams, eval=eval, metrics=metrics, curves=curves)
    click.echo(run(params, paths, backbone))  # every rank: the root's summary, the others' one line each


@cli.command()
@click.argument("backbone")
@PARAMS
@PREPARED
@MODELS
@CAMS
@_dir("out", D.faithfulness, "Where <BACKBONE>.json (the metrics) goes.")
@_dir("data", D.faithfulness_data, "Where <BACKBONE>/ (per-image scores, mean curves) goes.")
def faithfulness(backbone, params_path, prepared, models, cams, out, data) -> None:
    """Do one backbone's maps explain its decisions? Average Drop, Increase in Confidence, deletion and
    insertion AUC on a seeded subset (faithfulness.max_images per split)."""
    from pipeline.stages.faithfulness import run

    paths = Paths(prepared=prepared, models=models, cams=cams, faithfulness=out, faithfulness_data=data)
    click.echo(run(_params(params_path), paths, backbone))


@cli.command("evaluate-maps")
@click.option("--maps", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True,
              help="Folder of <image_id>.npy maps (2-D float).")
@click.option("--boxes", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True,
              help="CSV: image_id,x0,y0,x1,y1,width,height (one row per GT box, original pixels).")
@click.option("--masks", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Folder of <image_id>.png masks: 0 background, 1 foreground, 255 ignore (adds PxAP).")
@click.option("--interval", type=float, default=0.01, show_default=True, help="Tau grid step.")
@click.option("--raw", is_flag=True, help="Maps are raw (any size and range): post-process per PROTOCOL "
              "section 1 (bicubic upsampling in float64, min-max) to each image's own size, or to SxS with --size.")
@click.option("--size", type=click.IntRange(min=1), default=None, metavar="S",
              help="Score in the SxS frame, as paper numbers are (S = 224 there): with --raw, maps are "
                   "upsampled to SxS, boxes rescaled to SxS (int(x*S/W), int(y*S/H)) and masks resized "
                   "nearest to SxS. Without --raw, every map must already be SxS.")
@click.option("--pointing-tolerance", type=click.FloatRange(min=0), default=15.0, show_default=True,
              help="Pointing game: a hit when the map's argmax is within this many pixels of a GT box "
                   "(pixels of the scoring frame).")
@click.option("--skip-bad", is_flag=True, help="Count and report bad images instead of stopping.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write the JSON here (with --shard: the partial state, required).")
@click.option("--per-image", type=click.Path(path_type=Path), default=None, help="Per-image CSV.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes scoring images (default: 2 with >= 64 images and 2 CPUs, else 1).")
@click.option("--shard", "shard_spec", default=None, metavar="K/N",
              help="Score only the K-th (0-based) of N contiguous shards of the CSV's images and write "
                   "the partial state (.npz, docs/contracts.md) to --out; combine with `camloc merge-eval`.")
def evaluate_maps(maps, boxes, masks, interval, raw, size, pointing_tolerance, skip_bad, out, per_image, workers,
                  shard_spec) -> None:
    """Score your own maps with the reference protocol (no torch needed).

    Maps in --maps without a row in --boxes are not scored: a warning names them and the JSON counts
    them in n_unscored_maps. Many jobs: run `--shard K/N --out part_K.npz` for K = 0..N-1, then
    `camloc merge-eval part_*.npz --out result.json` (the same JSON as one run, byte for byte).
    """
    from pipeline.stages import bar

    if shard_spec is not None:
        if out is None or per_image is not None:
            raise click.UsageError("--shard K/N writes the partial state to --out (required); pass --per-image "
                                   "to `camloc merge-eval` instead")
        from pipeline.metrics.partial import run_shard

        click.echo(run_shard(maps, boxes, shard_spec, out, masks=masks, interval=interval, raw=raw,
                             skip_bad=skip_bad, workers=workers, bar=bar, size=size,
                             pointing_tolerance=pointing_tolerance))
        return
    from pipeline.metrics.folder import run

    result = run(maps, boxes, masks=masks, interval=interval, raw=raw, skip_bad=skip_bad,
                 out=out, per_image=per_image, bar=bar, size=size, workers=workers,
                 pointing_tolerance=pointing_tolerance)
    import json

    click.echo(json.dumps(result, indent=2, sort_keys=True))


@cli.command("merge-eval")
@click.argument("partials", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the JSON here.")
@click.option("--per-image", type=click.Path(path_type=Path), default=None, help="Per-image CSV.")
def merge_eval(partials, out, per_image) -> None:
    """Merge the partial states of `evaluate-maps --shard K/N` (every K of one N, same inputs and params)
    into the evaluate-maps JSON; refuses missing or duplicate shards and partials of different runs."""
    import json

    from pipeline.metrics.partial import merge_eval as merge

    click.echo(json.dumps(merge(list(partials), out=out, per_image=per_image), indent=2, sort_keys=True))


@cli.command()
@PARAMS
@PREPARED
@MODELS
@CAMS
@EVAL
@METRICS
@CURVES
@_dir("faithfulness", D.faithfulness, "Faithfulness metrics JSON, one file per backbone (faithfulness's output).")
@click.option("--faithfulness-data", "faithfulness_data", type=click.Path(path_type=Path), default=D.faithfulness_data,
              show_default=True, help="Per-image faithfulness scores, one folder per backbone (faithfulness's output).")
@_dir("out", D.reports, "Where the leaderboard, breakdowns, plots and gallery go.")
def report(params_path, prepared, models, cams, eval, metrics, curves, faithfulness, faithfulness_data, out) -> None:
    """Leaderboard (md/csv/tex/html) with CIs, breakdowns, plots and CAM galleries from stage outputs."""
    from pipeline.stages.report import run

    paths = Paths(prepared=prepared, models=models, cams=cams, eval=eval, metrics=metrics, curves=curves,
                  faithfulness=faithfulness, faithfulness_data=faithfulness_data, reports=out)
    click.echo(run(_params(params_path), paths))


@cli.command()
@click.option("--metric", default=None, help="Metric to compare (default: maxboxacc_v2_head, else the first "
              "maxboxacc_v2_<kind>).")
@click.option("--baseline", default=None, help="Experiment (name or rev) the differences are taken against "
              "(default: the workspace's HEAD commit).")
@click.option("--md", "--out", "md", type=click.Path(path_type=Path), default=None, help="Also write markdown here.")
@click.option("--csv", type=click.Path(path_type=Path), default=None, help="Also write CSV here.")
@click.option("--html", type=click.Path(path_type=Path), default=None, help="Also write a static HTML page here.")
def compare(metric: str | None, baseline: str | None, md: Path | None, csv: Path | None, html: Path | None) -> None:
    """One metric across `dvc exp` experiments (read through dvc.api.exp_show): a row per backbone ×
    (training method) × map method, a column per experiment and its difference to the baseline."""
    from pipeline.report.compare import run

    click.echo(run(md, metric=metric, baseline=baseline, csv=csv, html=html))


def _listing(name: str) -> None:
    from pipeline.catalog import listing

    for line in getattr(listing, name)():
        click.echo(line)


@cli.command()
def backbones() -> None:
    """List registered backbones."""
    _listing("backbones")


@cli.command("wsol-methods")
def wsol_methods() -> None:
    """List WSOL training methods (choose one per backbone: `wsol: {method: NAME, ...}` in params.yaml)."""
    _listing("wsol_methods")


@cli.command()
def methods() -> None:
    """List registered map methods."""
    _listing("methods")


@cli.command()
def datasets() -> None:
    """List registered datasets (`dataset.name` in params.yaml)."""
    _listing("datasets")


@cli.command()
def metrics() -> None:
    """List the metrics: name, direction (↑ higher / ↓ lower is better), family, boxes scored, label."""
    _listing("metrics")


@cli.command()
def layouts() -> None:
    """List the checkpoint layouts a backbone with `epochs: 0` scores (`weights_layout:`; else detected)."""
    _listing("layouts")


@cli.command()
def plugins() -> None:
    """List installed camloc plugins (entry points `camloc.plugins`): from where, and what each registers."""
    _listing("plugins")


def main() -> None:
    cli(prog_name="camloc")


if __name__ == "__main__":
    main()
