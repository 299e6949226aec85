"""The on-disk layout between stages, in one place (docs/contracts.md): every stage output's path, the
map file names, the column sets, which split scores which box kind, and checked readers whose error
names the missing file and the stage that writes it. Every stage and the report read through here.

Torch-free (json, numpy; pandas only inside the table readers), so the data stages, evaluate and the
report never load torch, and the metric core that imports the split constants never loads pandas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.atomic import bad_name, child
from pipeline.catalog.metrics import json_names
from pipeline.errors import CamlocError

if TYPE_CHECKING:
    import pandas as pd

# ---------------------------------------------------------------------------------------------------
# Splits and what each one scores

SPLITS = ("train", "val", "test", "test_official")  # samples.parquet order
HOLDOUT = "val"  # a few boxed images per class: τ is chosen here for the honest numbers
BOX_KINDS = ("head", "body")  # Pets
OBJECT_KIND = "object"  # the one box kind of the reference-layout datasets (cub, wsol)
ALL_BOX_KINDS = (*BOX_KINDS, OBJECT_KIND)
SCORED_SPLIT = {"head": "test", "body": "test_official"}  # Pets: the split each box kind is scored on
PIXEL_SPLIT = "test_official"  # Pets: trimap PxAP / PxIoU
CONTOUR_MODES = ("largest", "all")  # MaxBoxAcc v1 / MaxBoxAccV2 candidate boxes
MAP_KINDS = ("gt", "pred")  # maps for the ground-truth class and for the top-1 predicted class


def box_kinds_of(split: str, scored: dict[str, str] | None = None) -> list[str]:
    """The box kinds scored on `split` (the holdout scores every kind, to choose its τ); `scored` is a
    dataset's `Layout.scored_split` (default: the Pets one)."""
    return [k for k, s in (SCORED_SPLIT if scored is None else scored).items() if split in (HOLDOUT, s)]


@dataclass(frozen=True)
class Layout:
    """What a prepared dataset holds (prepared/layout.json): its box kinds and where each is scored,
    and whether pixel masks exist. The evaluator and the report read it, so their metrics and columns
    follow the dataset instead of assuming Pets."""

    dataset: str
    scored_split: dict[str, str]  # box kind → the split it is scored on (val scores it too, for τ)
    loc_kind: str  # the kind of top-1 / GT-known Loc, MaxBoxAcc v1 and box AP (head | object)
    pixel_split: str | None  # the split scored by PxAP / PxIoU, None without masks
    pixel_gt: str | None  # trimap (Pets) | masks (masks.parquet: instance masks + ignore mask)
    classification_split: str  # the split of classification.top1 / top5

    @property
    def box_kinds(self) -> tuple[str, ...]:
        return tuple(self.scored_split)

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits this dataset fills, in SPLITS order."""
        used = {HOLDOUT, "train", *self.scored_split.values(), self.classification_split}
        return tuple(s for s in SPLITS if s in used or s == self.pixel_split)

    def to_json(self) -> dict:
        return {"dataset": self.dataset, "scored_split": dict(self.scored_split), "loc_kind": self.loc_kind,
                "pixel_split": self.pixel_split, "pixel_gt": self.pixel_gt,
                "classification_split": self.classification_split}


PETS_LAYOUT = Layout("pets", dict(SCORED_SPLIT), "head", PIXEL_SPLIT, "trimap", "test_official")


def wsol_layout(dataset: str, boxes: bool, masks: bool) -> Layout:
    """The reference's layout: train / val (τ) / test (scored), object boxes and/or masks on test."""
    return Layout(dataset, {OBJECT_KIND: "test"} if boxes else {}, OBJECT_KIND, "test" if masks else None,
                  "masks" if masks else None, "test")


# ---------------------------------------------------------------------------------------------------
# Files and columns

# Pets: images/, annotations/; cub: the archive's CUB_200_2011/ and attributes.txt; wsol: a copy of the
# user's metadata/ folder and source.json (where its images live).
RAW_ENTRIES = ("images", "annotations", "CUB_200_2011", "attributes.txt", "metadata", "source.json")
PREPARED_FILES = ("samples.parquet", "boxes.parquet", "classes.json", "report.json", "images.npy",
                  "layout.json", "masks.parquet")
MASK_COLUMNS = ("image_id", "mask_path", "ignore_path")  # masks.parquet: one row per instance mask
SAMPLE_COLUMNS = ("image_id", "path", "label", "class_name", "species", "split", "width", "height",
                  "trimap_path", "cache_index")
BOX_COLUMNS = ("image_id", "kind", "x0", "y0", "x1", "y1")
MODEL_FILES = ("model.pt", "meta.json", "history.csv", "metrics.json")
HISTORY_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc")
LIVE_PLOTS = "dvclive/plots/metrics"  # train@B's dvclive step files, one <metric>.tsv each (training/live.py)
INDEX_COLUMNS = ("image_id", "label", "pred", "top5", "top5_prob")  # cams/<split>/index.parquet
PER_IMAGE_COLUMNS = ("image_id", "split", "method", "kind", "mode", "tau_index", "tau", "iou", "correct")
PIXEL_COLUMNS = ("method", "threshold", "precision", "recall")  # eval/<B>/pixels.parquet
CURVE_COLUMNS = ("method", "curve", "x", "y")
# eval/<B>/tau_boxes.parquet: the explorer's predicted box (largest contour, GT-class map) and its IoU with
# the loc kind's boxes per scored image × method × τ of the slider grid (box in the S×S frame, 0-based inclusive)
TAU_BOXES_FILE = "tau_boxes.parquet"
TAU_BOXES_COLUMNS = ("image_id", "method", "tau_index", "tau", "x0", "y0", "x1", "y1", "iou")
PROTOCOLS_FILE = "protocols.parquet"  # eval/<B>/: per profile × method × scored image, its τ and IoU
PROTOCOLS_KEY = "protocols"  # the metrics JSON's nested section: protocols[profile][method]
PROTOCOL_COLUMNS = ("profile", "method", "image_id", "tau", "iou")
EVAL_FILES = ("per_image.parquet", "pixels.parquet", "chosen.json", "pointing.parquet", TAU_BOXES_FILE,
              PROTOCOLS_FILE)
POINTING_COLUMNS = ("image_id", "split", "method", "kind", "hit", "energy")  # eval/<B>/pointing.parquet
CLASSIFICATION = "classification"  # metrics JSON prefix of the per-backbone accuracies
# Metric names after `<method>.` in reports/metrics/<B>.json (tau_v2_* are the chosen τ, not scores), from
# the metric cards (pipeline/catalog/metrics.py): a Pets-layout dataset's (head and body boxes) ...
METRIC_NAMES = json_names("evaluate", ("head", "body"))
# ... and a reference-layout dataset's (cub, wsol: object boxes; pxap/pxiou with masks).
OBJECT_METRIC_NAMES = json_names("evaluate", ("object",))


def map_file(split_dir: str | Path, method: str, kind: str) -> Path:
    """`<split_dir>/<method>_<kind>.npy`: one method's raw maps (N, h, w) for one split."""
    if kind not in MAP_KINDS:
        raise ValueError(f"kind must be one of {MAP_KINDS}, got {kind!r}")
    return Path(split_dir) / f"{method}_{kind}.npy"


@dataclass(frozen=True)
class Paths:
    """Where each stage reads and writes. The defaults are dvc.yaml's; each folder is a CLI option."""

    raw: Path = Path("data/raw")
    prepared: Path = Path("data/prepared")
    models: Path = Path("data/models")
    cams: Path = Path("data/cams")
    eval: Path = Path("data/eval")
    metrics: Path = Path("reports/metrics")
    curves: Path = Path("reports/curves")
    reports: Path = Path("reports")
    faithfulness: Path = Path("reports/faithfulness")  # <B>.json, the DVC metrics of faithfulness@B
    faithfulness_data: Path = Path("data/faithfulness")  # <B>/ per-image scores and mean curves

    # Every path below is checked to stay inside its folder (atomic.child): a backbone key is one name.
    def model_dir(self, backbone: str) -> Path:
        return child(self.models, backbone, "backbone key")

    def cams_dir(self, backbone: str) -> Path:
        return child(self.cams, backbone, "backbone key")

    def eval_dir(self, backbone: str) -> Path:
        return child(self.eval, backbone, "backbone key")

    def metrics_file(self, backbone: str) -> Path:
        return child(self.metrics, f"{_key(backbone)}.json", "backbone key")

    def curves_file(self, backbone: str) -> Path:
        return child(self.curves, f"{_key(backbone)}.csv", "backbone key")

    def faithfulness_file(self, backbone: str) -> Path:
        return child(self.faithfulness, f"{_key(backbone)}.json", "backbone key")

    def faithfulness_dir(self, backbone: str) -> Path:
        return child(self.faithfulness_data, backbone, "backbone key")


def _key(backbone: str) -> str:
    if (why := bad_name(backbone)) is not None:
        raise CamlocError(f"backbone key {backbone!r} cannot name a file: use {why}")
    return backbone


def downloads_dir(raw: str | Path) -> Path:
    """Downloaded archives live beside the raw tree (not a DVC output), so a rerun reuses them."""
    return Path(raw).parent / "downloads"


def resume_dir(model_dir: str | Path) -> Path:
    """`data/.resume/<B>` for `data/models/<B>`: outside the DVC output, which DVC deletes first."""
    model_dir = Path(model_dir)
    return model_dir.parent.parent / ".resume" / model_dir.name


# ---------------------------------------------------------------------------------------------------
# Checked readers: a missing or foreign file is one clear error naming the stage that writes it


def _require(path: Path, stage: str) -> Path:
    if not path.is_file():
        raise CamlocError(f"{path} is missing: run `dvc repro {stage}` first "
                          f"(or `python -m pipeline {stage.replace('@', ' ')}`)")
    return path


def _columns(df: pd.DataFrame, columns, path: Path, stage: str) -> pd.DataFrame:
    absent = [c for c in columns if c not in df.columns]
    if absent:
        raise CamlocError(f"{path} lacks columns {absent} (has {list(df.columns)}); it does not follow "
                          f"docs/contracts.md: re-run `dvc repro {stage}` with the current code")
    return df


def checked_parquet(path: Path, stage: str, columns=()) -> pd.DataFrame:
    import pandas as pd

    _require(path, stage)
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several unrelated types for a damaged file
        raise CamlocError(f"{path} is not a readable parquet file ({e}): re-run `dvc repro {stage}`") from None
    return _columns(df, columns, path, stage)


def _json(path: Path, stage: str):
    _require(path, stage)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CamlocError(f"{path} is not valid JSON ({e}): re-run `dvc repro {stage}`") from None


def backbone_stage(stage: str, folder: str | Path) -> str:
    return f"{stage}@{Path(folder).name}"


def read_samples(prepared: str | Path, columns=("image_id", "label", "split", "cache_index")) -> pd.DataFrame:
    """samples.parquet (every split, manifest order), checked for `columns`."""
    return checked_parquet(Path(prepared) / "samples.parquet", "prepare", columns)


def read_boxes(prepared: str | Path) -> pd.DataFrame:
    """boxes.parquet: one row per GT box, 0-based inclusive, original pixels."""
    return checked_parquet(Path(prepared) / "boxes.parquet", "prepare", BOX_COLUMNS)


def boxes_by_kind(boxes: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """kind → image_id → (G, 4) int64 boxes, images in first-appearance order, boxes in file order.

    One stable sort per kind instead of a pandas group per image (~4 s per evaluate@ on 2,000 images)."""
    out = {}
    for k in ALL_BOX_KINDS:
        sub = boxes[boxes["kind"] == k]
        codes, ids = sub["image_id"].astype(str).factorize(sort=False)  # (B,), (I,)
        order = np.argsort(codes, kind="stable")
        coords = sub[["x0", "y0", "x1", "y1"]].to_numpy(np.int64)[order]  # (B, 4) grouped by image
        counts = np.bincount(codes, minlength=len(ids))  # (I,) boxes per image
        ends = np.cumsum(counts)
        out[k] = {str(i): coords[e - n:e] for i, e, n in zip(ids, ends, counts, strict=True)}
    return out


def read_layout(prepared: str | Path) -> Layout:
    """layout.json: the dataset's box kinds, scored splits and pixel ground truth. Without one (a
    prepared folder from before layouts, when every dataset had the Pets layout) it is PETS_LAYOUT;
    the readers of the other prepared files still name a missing folder."""
    path = Path(prepared) / "layout.json"
    if not path.is_file():
        return PETS_LAYOUT
    data = _json(path, "prepare")
    try:
        layout = Layout(str(data["dataset"]), {str(k): str(v) for k, v in data["scored_split"].items()},
                        str(data["loc_kind"]), data["pixel_split"], data["pixel_gt"],
                        str(data["classification_split"]))
    except (KeyError, TypeError, AttributeError) as e:
        raise CamlocError(f"{path} is not a camloc layout ({e}): re-run `dvc repro prepare`") from None
    unknown = [k for k in layout.scored_split if k not in ALL_BOX_KINDS]
    if unknown or layout.pixel_split not in (None, *SPLITS):
        raise CamlocError(f"{path}: unknown box kinds {unknown} or pixel split {layout.pixel_split!r}: "
                          "re-run `dvc repro prepare` with the current code")
    return layout


def read_masks(prepared: str | Path) -> pd.DataFrame:
    """masks.parquet: one row per GT instance mask (`mask_path`, and the image's `ignore_path` or None),
    absolute paths; empty for datasets without masks."""
    return checked_parquet(Path(prepared) / "masks.parquet", "prepare", MASK_COLUMNS)


def masks_by_image(masks: pd.DataFrame) -> dict[str, tuple[tuple[str, ...], str | None]]:
    """image_id → (its instance mask files, its ignore mask file or None)."""
    out = {}
    for image_id, g in masks.groupby("image_id", sort=False):
        ignore = [p for p in g["ignore_path"] if isinstance(p, str) and p]
        out[str(image_id)] = (tuple(str(p) for p in g["mask_path"]), ignore[0] if ignore else None)
    return out


def read_classes(prepared: str | Path) -> list[str]:
    """Class names indexed by label, from classes.json."""
    path = Path(prepared) / "classes.json"
    data = _json(path, "prepare")
    names = data.get("class_names") if isinstance(data, dict) else None
    if not isinstance(names, list):
        raise CamlocError(f"{path} has no 'class_names' list: re-run `dvc repro prepare`")
    return [str(n) for n in names]


def read_image_cache(prepared: str | Path) -> np.ndarray:
    """images.npy, uint8 (N, S, S, 3), memory-mapped (nothing is read until indexed)."""
    path = _require(Path(prepared) / "images.npy", "prepare")
    try:
        images = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise CamlocError(f"{path} is not a readable .npy array ({e}): re-run `dvc repro prepare`") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]:
        raise CamlocError(f"{path} holds {images.dtype} {images.shape}, expected uint8 N×S×S×3: "
                          "re-run `dvc repro prepare`")
    return images


def read_history(model_dir: str | Path) -> pd.DataFrame | None:
    """The per-epoch training curves: dvclive's files (`dvclive/plots/metrics/<name>.tsv`, step = epoch)
    where train@B logged them, else history.csv (fsl, older folders); None when never trained (no folder,
    or an epochs: 0 folder, whose history.csv is its header only)."""
    import pandas as pd

    live = Path(model_dir) / LIVE_PLOTS
    if all((live / f"{c}.tsv").is_file() for c in HISTORY_COLUMNS[1:]):
        cols = [pd.read_csv(live / f"{c}.tsv", sep="\t").set_index("step")[c] for c in HISTORY_COLUMNS[1:]]
        return pd.concat(cols, axis=1).rename_axis("epoch").reset_index()
    path = Path(model_dir) / "history.csv"
    if not path.is_file():
        return None
    history = _columns(pd.read_csv(path), HISTORY_COLUMNS, path, backbone_stage("train", model_dir))
    return history if len(history) else None  # an epochs: 0 folder scores a checkpoint: no epoch was trained


def read_cams_meta(cams_dir: str | Path) -> dict:
    return _json(Path(cams_dir) / "meta.json", backbone_stage("cams", cams_dir))


def read_cams_index(cams_dir: str | Path, split: str) -> pd.DataFrame:
    """cams/<B>/<split>/index.parquet: row i ↔ map i of that split's map files."""
    return checked_parquet(Path(cams_dir) / split / "index.parquet", backbone_stage("cams", cams_dir), INDEX_COLUMNS)


def open_maps(cams_dir: str | Path, split: str, method: str, kind: str = "gt") -> np.ndarray:
    """Memory-map one dumped map file (N, h, w)."""
    path = map_file(Path(cams_dir) / split, method, kind)
    if not path.is_file():
        raise CamlocError(f"{path} is missing: run `dvc repro {backbone_stage('cams', cams_dir)}` "
                          "(and check cams.methods / cams.splits in params.yaml)")
    return np.load(path, mmap_mode="r", allow_pickle=False)


def read_metrics(path: str | Path, stage: str = "evaluate") -> dict[str, float]:
    """The flat `<method>.<metric>` dict of reports/metrics/<B>.json (or of another stage's metrics JSON)."""
    path = Path(path)
    data = _json(path, f"{stage}@{path.stem}")
    data = {k: v for k, v in data.items() if k != PROTOCOLS_KEY} if isinstance(data, dict) else data
    if not isinstance(data, dict) or not all(isinstance(v, int | float) for v in data.values()):
        raise CamlocError(f"{path} must be a flat JSON object of numbers keyed '<method>.<metric>'")
    return {str(k): float(v) for k, v in data.items()}


def read_curves(path: str | Path) -> pd.DataFrame:
    import pandas as pd

    path = Path(path)
    _require(path, f"evaluate@{path.stem}")
    return _columns(pd.read_csv(path), CURVE_COLUMNS, path, f"evaluate@{path.stem}")


def read_per_image(eval_dir: str | Path) -> pd.DataFrame:
    """eval/<B>/per_image.parquet, long format (every image × method × kind × mode × τ)."""
    path = Path(eval_dir) / "per_image.parquet"
    stage = backbone_stage("evaluate", eval_dir)
    _require(path, stage)
    import pandas as pd

    df = pd.read_parquet(path, columns=[c for c in PER_IMAGE_COLUMNS if c != "correct"])
    return _columns(df, PER_IMAGE_COLUMNS[:-1], path, stage)


def read_tau_boxes(eval_dir: str | Path) -> pd.DataFrame:
    """eval/<B>/tau_boxes.parquet: the explorer's precomputed boxes and IoUs on its τ grid."""
    path = Path(eval_dir) / TAU_BOXES_FILE
    return checked_parquet(path, backbone_stage("evaluate", eval_dir), TAU_BOXES_COLUMNS)
def read_pointing(eval_dir: str | Path) -> pd.DataFrame:
    """eval/<B>/pointing.parquet: per scored image, method and box kind, the pointing hit and energy share."""
    return checked_parquet(Path(eval_dir) / "pointing.parquet", backbone_stage("evaluate", eval_dir), POINTING_COLUMNS)


def read_chosen(eval_dir: str | Path) -> dict:
    """eval/<B>/chosen.json: method → {"oracle"|"val": {kind: {"v1"|δ: τ}}}."""
    return _json(Path(eval_dir) / "chosen.json", backbone_stage("evaluate", eval_dir))
