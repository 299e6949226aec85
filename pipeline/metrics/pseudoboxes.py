"""The pseudo-box file of the `pseudo_boxes` protocol profile (`evaluate.pseudo_boxes`): a
`localization.txt` in the reference's metadata format, `id,x0,y0,x1,y1` one row per box, in the image's
original pixels (Murtaza et al., WACV 2025, ship theirs in this layout). Read for evaluate@B, which
chooses τ on val against these boxes instead of any GT box. numpy only.

Every id must be a val image and every box inside its image: x0, y0 ≥ 0 and x1 ≤ W, y1 ≤ H (the
reference's CUB rows write x1 = x + w, one past the last pixel, so W itself is allowed). A bad row is one
CamlocError naming the file, the line and the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import CamlocError


def read_pseudo_boxes(path: str | Path, sizes: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    """image id → (G, 4) int64 boxes (x0, y0, x1, y1, original pixels); ``sizes``: val id → (W, H)."""
    path = Path(path)
    if not path.is_file():
        raise CamlocError(f"evaluate.pseudo_boxes: {path} is not a file; point it at a localization.txt "
                          "(id,x0,y0,x1,y1 per line) of val pseudo-boxes")
    boxes: dict[str, list[tuple[int, ...]]] = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 5:
            raise CamlocError(f"{where}: expected 'id,x0,y0,x1,y1', got {line.strip()!r}")
        image_id = fields[0]
        if image_id not in sizes:
            raise CamlocError(f"{where}: image {image_id!r} is not in the val split; pseudo-boxes choose τ on "
                              "val only — remove the row or fix the id")
        try:
            x0, y0, x1, y1 = (int(float(v)) for v in fields[1:])
        except ValueError:
            raise CamlocError(f"{where}: box {fields[1:]} is not four numbers x0,y0,x1,y1") from None
        w, h = sizes[image_id]
        if not (0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h):
            raise CamlocError(f"{where}: box ({x0}, {y0}, {x1}, {y1}) of {image_id} lies outside its {w}×{h} "
                              "image (or has x1 < x0 / y1 < y0); fix the row")
        boxes.setdefault(image_id, []).append((x0, y0, x1, y1))
    if not boxes:
        raise CamlocError(f"evaluate.pseudo_boxes: {path} holds no box; it needs one row per val pseudo-box")
    return {k: np.asarray(v, dtype=np.int64) for k, v in boxes.items()}
