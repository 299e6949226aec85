"""The `camloc` command: one thin command per stage.

Each command parses paths, loads params and calls its stage's `run()`; heavy modules (torch) are
imported inside the command, so `--help` and `evaluate-maps` start fast. User errors (CamlocError)
print one message and exit with code 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from pipeline.errors import CamlocError

PARAMS = click.option(
    "--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True,
    help="params.yaml to read.",
)


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


def _params(path: Path):
    from pipeline.params import load_params

    return load_params(path)


@cli.command()
@PARAMS
@click.option("--out", type=click.Path(path_type=Path), default="data/raw", show_default=True)
@click.option("--archives", type=click.Path(path_type=Path), default=None,
              help="Folder holding images.tar.gz and annotations.tar.gz (offline Pets; overrides params).")
def download(params_path: Path, out: Path, archives: Path | None) -> None:
    """Fetch Oxford-IIIT Pet (verified, resumable) or generate its synthetic twin `synthpets`."""
    from pipeline.datasets.download import run

    summary = run(_params(params_path), out, archives=archives)
    click.echo(summary)


@cli.command()
@PARAMS
@click.option("--raw", type=click.Path(path_type=Path), default="data/raw", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default="data/prepared", show_default=True)
def prepare(params_path: Path, raw: Path, out: Path) -> None:
    """Parse the raw Pets-layout tree into samples/boxes manifests, splits and an image cache."""
    from pipeline.datasets.prepare import run

    summary = run(_params(params_path), raw, out)
    click.echo(summary)


@cli.command()
@click.argument("backbone")
@PARAMS
@click.option("--prepared", type=click.Path(path_type=Path), default="data/prepared", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Default: data/models/BACKBONE.")
def train(backbone: str, params_path: Path, prepared: Path, out: Path | None) -> None:
    """Train the GAP classifier of one `backbones` entry from image labels only."""
    from pipeline.train import run

    summary = run(_params(params_path), backbone, prepared, out or Path("data/models") / backbone)
    click.echo(summary)


@cli.command()
@click.argument("backbone", required=False)
@PARAMS
@click.option("--prepared", type=click.Path(path_type=Path), default="data/prepared", show_default=True)
@click.option("--model", type=click.Path(path_type=Path), default=None, help="Default: data/models/BACKBONE.")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Your own model folder (model.pt + meta.json); use with --images and --method.")
@click.option("--images", type=click.Path(path_type=Path), default=None, help="Folder of your images.")
@click.option("--method", "methods", multiple=True, help="Map method(s) for --images mode (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Default: data/cams/BACKBONE.")
def cams(backbone, params_path, prepared, model, checkpoint, images, methods, out) -> None:
    """Dump raw score maps (CAM, Grad-CAM, ...) for val/test splits, or for your own images."""
    from pipeline.cams import dump

    if checkpoint or images:
        if not (checkpoint and images and methods and out):
            raise click.UsageError("--checkpoint, --images, --method and --out go together")
        summary = dump.run_folder(checkpoint, images, list(methods), out)
    else:
        if not backbone:
            raise click.UsageError("give a BACKBONE (a key of params.yaml backbones) or --checkpoint/--images")
        summary = dump.run(_params(params_path), backbone, prepared,
                           model or Path("data/models") / backbone, out or Path("data/cams") / backbone)
    click.echo(summary)


@cli.command()
@click.argument("backbone")
@PARAMS
@click.option("--prepared", type=click.Path(path_type=Path), default="data/prepared", show_default=True)
@click.option("--cams", "cams_dir", type=click.Path(path_type=Path), default=None,
              help="Default: data/cams/BACKBONE.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None,
              help="Default: reports/metrics/BACKBONE.json.")
@click.option("--curves", type=click.Path(path_type=Path), default=None,
              help="Default: reports/curves/BACKBONE.csv.")
@click.option("--per-image", type=click.Path(path_type=Path), default=None,
              help="Default: data/eval/BACKBONE.")
def evaluate(backbone, params_path, prepared, cams_dir, metrics, curves, per_image) -> None:
    """Score one backbone's maps: MaxBoxAcc(V2), Top-1/5 Loc, PxAP, box AP, with test-oracle and val tau."""
    from pipeline.evaluate import run

    summary = run(
        _params(params_path), backbone, prepared,
        cams_dir or Path("data/cams") / backbone,
        metrics or Path("reports/metrics") / f"{backbone}.json",
        curves or Path("reports/curves") / f"{backbone}.csv",
        per_image or Path("data/eval") / backbone,
    )
    click.echo(summary)


@cli.command("evaluate-maps")
@click.option("--maps", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True,
              help="Folder of <image_id>.npy maps (2-D float).")
@click.option("--boxes", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True,
              help="CSV: image_id,x0,y0,x1,y1,width,height (one row per GT box, original pixels).")
@click.option("--masks", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Folder of <image_id>.png masks: 0 background, 1 foreground, 255 ignore (adds PxAP).")
@click.option("--interval", type=float, default=0.01, show_default=True, help="Tau grid step.")
@click.option("--raw", is_flag=True, help="Maps are raw (any size): post-process per PROTOCOL section 1.")
@click.option("--skip-bad", is_flag=True, help="Count and report bad images instead of stopping.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the JSON here.")
@click.option("--per-image", type=click.Path(path_type=Path), default=None, help="Per-image CSV.")
def evaluate_maps(maps, boxes, masks, interval, raw, skip_bad, out, per_image) -> None:
    """Score your own maps with the reference protocol (no torch needed)."""
    from pipeline.evaluate_maps import run

    result = run(maps, boxes, masks=masks, interval=interval, raw=raw, skip_bad=skip_bad,
                 out=out, per_image=per_image)
    import json

    click.echo(json.dumps(result, indent=2, sort_keys=True))


@cli.command()
@PARAMS
@click.option("--out", type=click.Path(path_type=Path), default="reports", show_default=True)
def report(params_path: Path, out: Path) -> None:
    """Leaderboard (md/csv/tex/html) with CIs, breakdowns, plots and CAM galleries from stage outputs."""
    from pipeline.report import run

    summary = run(_params(params_path), out)
    click.echo(summary)


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Also write the markdown here.")
def compare(out: Path | None) -> None:
    """Leaderboard across `dvc exp` experiments (read through dvc.api.exp_show)."""
    from pipeline.report.compare import run

    click.echo(run(out))


@cli.command()
def backbones() -> None:
    """List registered backbones."""
    from pipeline.models import BACKBONES

    for name in BACKBONES.names():
        click.echo(f"{name:22s} {BACKBONES.get(name).summary}")


@cli.command()
def methods() -> None:
    """List registered map methods."""
    from pipeline.cams import METHODS

    for name in METHODS.names():
        doc = (METHODS.get(name).__doc__ or "").strip().splitlines()
        click.echo(f"{name:12s} {doc[0] if doc else ''}")


def main() -> None:
    cli(prog_name="camloc")


if __name__ == "__main__":
    main()
