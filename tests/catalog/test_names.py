"""No registered name as a string literal outside its card, its implementation and params.yaml: a name
is written once, in pipeline/catalog/, and read from there (ast scan of every pipeline module).

KNOWN lists each remaining place by (file, name) with why it is there; a literal anywhere else fails,
so the list can only shrink. Most are a different namespace that happens to share a registered word
(params/meta key `wsol`, torchvision's arch `resnet50`, the parquet columns of contracts.py); the rest
are report choices still spelled by name (the baselines, the ranking metric), each a card field to be."""

from __future__ import annotations

import ast
from pathlib import Path

from pipeline.catalog.backbones import BACKBONES
from pipeline.catalog.datasets import DATASETS
from pipeline.catalog.layouts import LAYOUTS
from pipeline.catalog.methods import METHODS
from pipeline.catalog.metrics import METRICS
from pipeline.catalog.protocols import PROTOCOLS
from pipeline.catalog.wsol import WSOL_METHODS

ROOT = Path(__file__).resolve().parents[2]
REGISTRIES = (BACKBONES, METHODS, WSOL_METHODS, DATASETS, METRICS, LAYOUTS, PROTOCOLS)
_KEY = "the params.yaml / meta.json key `wsol`, not the dataset"
_COLUMNS = "a column of a parquet contract (docs/contracts.md) named like the metric it feeds"
_DEFAULTS = "a params default mirroring params.yaml"
_REPORT = "a report choice spelled by name (baselines, ranking metric, plotted metric): a card field to be"
KNOWN = {
    ("pipeline/cams/dump.py", "scorecam"): "its chunk option, passed by name (a card option field to be)",
    ("pipeline/faithcontracts.py", "deletion_auc"): _COLUMNS, ("pipeline/faithcontracts.py", "insertion_auc"): _COLUMNS,
    ("pipeline/contracts.py", "pets"): "PETS_LAYOUT's dataset field (layout.json)",
    ("pipeline/datasets/cub.py", "cub"): "the index's dataset field, written by the cub reader itself",
    ("pipeline/datasets/synthpets.py", "synthpets"): "the generator's own progress-bar label",
    ("pipeline/datasets/wsol.py", "wsol"): "the index's dataset field, written by the wsol reader itself",
    ("pipeline/metrics/folder.py", "pxap"): "evaluate-maps' JSON keys (the folder evaluator computes them)",
    ("pipeline/metrics/folder.py", "pxiou"): "evaluate-maps' JSON keys (the folder evaluator computes them)",
    ("pipeline/models/checkpoint.py", "fsl"): "meta.json's `fsl` entry (the fold layout), not the method name",
    ("pipeline/models/checkpoint.py", "wsol"): _KEY, ("pipeline/wsol/build.py", "wsol"): _KEY,
    ("pipeline/wsol/fsl.py", "wsol"): _KEY, ("pipeline/wsol/rebuild.py", "wsol"): _KEY,
    ("pipeline/stages/train.py", "wsol"): _KEY,
    ("pipeline/wsol/oof.py", "fsl"): "meta.json's `fsl` entry (the fold layout), not the method name",
    ("pipeline/models/wsol_weights.py", "resnet50"): "torchvision's architecture name, not the backbone",
    ("pipeline/stages/train.py", "torchvision"): "meta.json's versions key (the package), not the layout",
    ("pipeline/wsol/fsl.py", "torchvision"): "meta.json's versions key (the package), not the layout",
    ("pipeline/camsparams.py", "cam"): _DEFAULTS, ("pipeline/camsparams.py", "center"): _DEFAULTS,
    ("pipeline/camsparams.py", "full"): _DEFAULTS, ("pipeline/camsparams.py", "gradcam"): _DEFAULTS,
    ("pipeline/params.py", "synthpets"): _DEFAULTS,
    ("pipeline/report/meanscores.py", "avg_drop"): "the per-image values behind the metric's CI",
    ("pipeline/report/meanscores.py", "increase_in_confidence"): "the per-image values behind the metric's CI",
    ("pipeline/report/meanscores.py", "avg_drop_pixel"): "the per-image values behind the metric's CI",
    ("pipeline/report/meanscores.py", "increase_in_confidence_pixel"): "the per-image values behind the metric's CI",
    ("pipeline/report/meanscores.py", "deletion_auc"): _COLUMNS, ("pipeline/report/meanscores.py", "insertion_auc"): _COLUMNS,
    ("pipeline/stages/faithfulness.py", "deletion_auc"): _COLUMNS,
    ("pipeline/stages/faithfulness.py", "insertion_auc"): _COLUMNS,
    ("pipeline/report/perimage.py", "gt_known_loc"): "the re-computation behind the metric's CI",
    ("pipeline/report/perimage.py", "top1_loc"): "the re-computation behind the metric's CI",
    ("pipeline/report/tables.py", "top1_acc"): "the classification column filled from classification.top1",
    ("pipeline/stages/report.py", "top1_acc"): "the classification column filled from classification.top1",
    ("pipeline/stages/evaluate.py", "pxap"): _REPORT, ("pipeline/stages/report.py", "pxap"): _REPORT,
    ("pipeline/report/compare.py", "cam"): _REPORT, ("pipeline/report/gallery.py", "cam"): _REPORT,
    ("pipeline/report/wsolvs.py", "cam"): _REPORT, ("pipeline/report/wsolvs.py", "center"): _REPORT,
    ("pipeline/report/wsolvs.py", "full"): _REPORT, ("pipeline/report/wsolvs.py", "maxboxacc_v2_head"): _REPORT,
    ("pipeline/report/plots.py", "center"): _REPORT, ("pipeline/report/plots.py", "deletion_auc"): _REPORT,
    ("pipeline/report/plots.py", "insertion_auc"): _REPORT, ("pipeline/report/plots.py", "maxboxacc_v2_head"): _REPORT,
    ("pipeline/report/plots.py", "pxap"): _REPORT,
}


def _owners() -> dict[str, set[str]]:
    """Registered name → the modules allowed to spell it (its cards' implementation modules)."""
    out: dict[str, set[str]] = {}
    for reg in REGISTRIES:
        for name in reg.names():
            impl = getattr(reg.get(name), "impl", "") or ""
            out.setdefault(name, set()).add(impl.split(":")[0])
    return out


def literal_uses() -> set[tuple[str, str]]:
    owners = _owners()
    found = set()
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[1] == "catalog":
            continue
        module = ".".join(rel.with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in owners
                    and module not in owners[node.value]):
                found.add((rel.as_posix(), node.value))
    return found


def test_no_registered_name_is_spelled_outside_its_card_and_implementation():
    new = sorted(literal_uses() - set(KNOWN))
    assert not new, f"registered names written as literals (read them from pipeline/catalog/ instead): {new}"


def test_the_known_list_only_shrinks():
    stale = sorted(set(KNOWN) - literal_uses())
    assert not stale, f"these KNOWN entries are gone from the code; remove them from the list: {stale}"
