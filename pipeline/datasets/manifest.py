"""The prepared manifest: class table, seeded per-class splits and the samples/boxes tables.

Pure functions over parsed annotations, for the prepare stage (which does the file I/O).
Schemas: pipeline/contracts.py and docs/contracts.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.contracts import BOX_COLUMNS, SAMPLE_COLUMNS, SPLITS
from pipeline.datasets.pets import ListEntry, breed_of
from pipeline.errors import CamlocError, ParamsError
from pipeline.params import SplitParams


@dataclass(frozen=True)
class ClassTable:
    class_ids: tuple[int, ...]  # list.txt class ids, sorted; label = position here
    names: tuple[str, ...]
    species: tuple[str, ...]

    def label(self, class_id: int) -> int:
        return self.class_ids.index(class_id)


def class_table(entries: list[ListEntry], source: str) -> ClassTable:
    """Class id → breed and species, checked consistent across every entry (label = class id − 1
    when the ids are 1..C, as in both datasets)."""
    seen: dict[int, tuple[str, str]] = {}
    for e in entries:
        got = (breed_of(e.image_id), e.species)
        if seen.setdefault(e.class_id, got) != got:
            raise CamlocError(
                f"{source}: class id {e.class_id} is given to both {seen[e.class_id]} and {got} "
                f"(at {e.image_id}); the split files disagree: re-run `camloc download`"
            )
    ids = tuple(sorted(seen))
    return ClassTable(ids, tuple(seen[i][0] for i in ids), tuple(seen[i][1] for i in ids))


def assign_splits(trainval: dict[int, list[str]], boxed: set[str], names: tuple[str, ...],
                  sp: SplitParams) -> dict[str, str]:
    """Official trainval per class (label → image ids) → {image_id: train|val|test}, seeded.

    val and test take `val_per_class` / `test_per_class` images that have a head box; the rest,
    boxed or not, is train. A class too small for the requested sizes is a ParamsError naming the key.
    """
    out: dict[str, str] = {}
    for label in sorted(trainval):
        ids = sorted(trainval[label])
        with_box = [i for i in ids if i in boxed]
        name = names[label]
        if len(with_box) < sp.val_per_class:
            raise ParamsError("split.val_per_class", sp.val_per_class,
                              f"at most {len(with_box)}: class {name} has {len(with_box)} boxed trainval images")
        if len(with_box) < sp.val_per_class + sp.test_per_class:
            room = len(with_box) - sp.val_per_class
            raise ParamsError("split.test_per_class", sp.test_per_class,
                              f"at most {room}: class {name} has {len(with_box)} boxed trainval images "
                              f"and val takes {sp.val_per_class}")
        if len(ids) <= sp.val_per_class + sp.test_per_class:
            raise ParamsError("split.test_per_class", sp.test_per_class,
                              f"less: val + test would leave class {name} ({len(ids)} trainval images) "
                              "with no training image")
        order = np.random.default_rng([sp.seed, label]).permutation(len(with_box))
        chosen = [with_box[k] for k in order]
        out.update({i: "train" for i in ids})
        out.update({i: "val" for i in chosen[: sp.val_per_class]})
        out.update({i: "test" for i in chosen[sp.val_per_class: sp.val_per_class + sp.test_per_class]})
    return out


def samples_table(rows: list[dict]) -> pd.DataFrame:
    """Rows (without cache_index) → the samples table, ordered by (split in SPLITS order, image_id)."""
    df = pd.DataFrame(rows, columns=[c for c in SAMPLE_COLUMNS if c != "cache_index"])
    df["split_order"] = df["split"].map({s: i for i, s in enumerate(SPLITS)})
    df = df.sort_values(["split_order", "image_id"], kind="stable").drop(columns="split_order")
    df = df.reset_index(drop=True)
    df["cache_index"] = np.arange(len(df), dtype=np.int64)
    for col in ("label", "width", "height"):
        df[col] = df[col].astype(np.int64)
    df["trimap_path"] = df["trimap_path"].astype(object).where(df["trimap_path"].notna(), None)
    return df[list(SAMPLE_COLUMNS)]


def boxes_table(boxes: list[tuple[str, str, int, int, int, int]], order: pd.Series) -> pd.DataFrame:
    """GT boxes → table ordered like the samples (then head before body)."""
    df = pd.DataFrame(boxes, columns=list(BOX_COLUMNS))
    rank = {image_id: i for i, image_id in enumerate(order)}
    df = df[df["image_id"].isin(rank)]
    df = df.assign(_r=df["image_id"].map(rank), _k=df["kind"].map({"head": 0, "body": 1, "object": 2}))
    df = df.sort_values(["_r", "_k", "x0", "y0"], kind="stable").drop(columns=["_r", "_k"])
    for col in ("x0", "y0", "x1", "y1"):
        df[col] = df[col].astype(np.int64)
    return df.reset_index(drop=True)


def counts(samples: pd.DataFrame, names: tuple[str, ...]) -> dict:
    """Images per split and per (split, class) for report.json."""
    per = samples.groupby(["split", "class_name"]).size()
    return {
        "per_split": {s: int((samples["split"] == s).sum()) for s in SPLITS},
        "per_class": {s: {n: int(per.get((s, n), 0)) for n in names} for s in SPLITS},
        "total": int(len(samples)),
    }
