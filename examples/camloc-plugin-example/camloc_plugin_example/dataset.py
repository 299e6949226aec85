"""`csv_folder`: a dataset adapter for the most common layout, a folder of images with a CSV of boxes.

`<dataset.archives>/boxes.csv`, one row per box: `image,label,split,x0,y0,x1,y1` (image relative to
`<dataset.archives>/images/`, label a class name, split train | val | test; a train row may leave the
box empty). The fetch function writes the reference's metadata layout (what `raw_layout:
reference_metadata` tells camloc's prepare stage to read) and leaves the images where they are.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

from PIL import Image

from pipeline.datasets.wsol import fetch_wsol
from pipeline.errors import CamlocError

SPLITS = ("train", "val", "test")


def fetch(params, out_dir: Path, archives: Path | None = None, bar=None) -> str:
    folder = Path(archives or params.dataset.archives)
    table = folder / "boxes.csv"
    if not table.is_file():
        raise CamlocError(f"{table} is missing: dataset csv_folder reads <dataset.archives>/boxes.csv")
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    classes = sorted({r["label"] for r in rows})
    with tempfile.TemporaryDirectory() as tmp:
        meta = Path(tmp)
        for split in SPLITS:
            mine = [r for r in rows if r["split"] == split]
            images = list(dict.fromkeys(r["image"] for r in mine))
            label = {r["image"]: classes.index(r["label"]) for r in mine}
            (meta / split).mkdir()
            (meta / split / "image_ids.txt").write_text("".join(f"{i}\n" for i in images))
            (meta / split / "class_labels.txt").write_text("".join(f"{i},{label[i]}\n" for i in images))
            sizes = []
            for i in images:
                with Image.open(folder / "images" / i) as im:
                    sizes.append(f"{i},{im.width},{im.height}\n")
            (meta / split / "image_sizes.txt").write_text("".join(sizes))
            boxes = [f"{r['image']},{r['x0']},{r['y0']},{r['x1']},{r['y1']}\n" for r in mine if r["x0"] != ""]
            if split != "train":
                (meta / split / "localization.txt").write_text("".join(boxes))
        summary = fetch_wsol(meta, folder / "images", None, Path(out_dir))
    return f"csv_folder ({len(classes)} classes from {table}): {summary}"
