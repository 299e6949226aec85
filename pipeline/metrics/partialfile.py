"""The partial-state file of ``camloc evaluate-maps --shard K/N`` (docs/contracts.md): one ``numpy.savez``
per shard, read with ``allow_pickle=False``, checked before it is trusted.

``load`` refuses, each with one line naming the file: what is not a partial; a header whose claims do not
hold together (shard, world, image range, types); arrays inflating past the size its header allows (read
from the zip directory before any array is read); an array whose digest differs from the header's; rows
that disagree with each other (hit counts not those of the IoU rows, a dropped or added row, NaN scores).
What a partial claims about its inputs (the maps and CSV it read) is checked by ``metrics.partial``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_path
from pipeline.distributed import World, shard
from pipeline.errors import CamlocError
from pipeline.metrics.boxacc import DELTAS
from pipeline.metrics.boxes import taus
from pipeline.metrics.state import EvalState

FORMAT, VERSION = "camloc-eval-partial", 3  # v2: per-image pointing rows; v3: digests of inputs and arrays
HEADER_LIMIT = 1 << 20  # bytes of the header JSON
ID_CHARS = 4096  # the longest image_id (characters) a partial may hold
RERUN = "re-run its `camloc evaluate-maps --shard K/N`"


def array_digest(a: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes (C order): what the header's ``arrays_sha256`` holds."""
    a = np.ascontiguousarray(a)
    return hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()


def size_limit(header: dict) -> int:
    """The most uncompressed bytes a partial of this header may hold (its declared size limit): the arrays
    of its ``images`` rows at its τ grid, ids and file names of up to ID_CHARS characters, plus 1 MiB."""
    t = len(taus(float(header["fingerprint"]["interval"])))
    n = header["images"][1] - header["images"][0]
    per_image = 2 * t * 8 + 2 * 8 + 6 * 4 * ID_CHARS + 2 * 4 * 64  # ious, points, ids/reasons/files, digests
    return (1 << 20) + n * per_image + 2 * len(DELTAS) * t * 8 + 2 * (t + 3) * 8


def save(path: Path, state: EvalState, header: dict, reads: dict[str, str] | None = None) -> None:
    """Write ``state``, its ``header`` (shard, world, fingerprint) and the SHA-256 of every input file it
    read (``reads``: "maps/<name>" | "masks/<name>" → digest) as one .npz, atomically; the header also
    holds each array's digest (``arrays_sha256``)."""
    t = len(state.tau_grid)
    reads = dict(sorted((reads or {}).items()))
    arrays = {
        "tau_grid": state.tau_grid,
        "hits": state.hits,
        "ids": np.array(state.ids, dtype=str),
        "ious": np.stack(state.ious) if state.ious else np.zeros((0, 2, t)),
        "points": np.stack(state.points) if state.points else np.zeros((0, 2)),
        "pointing_tolerance": np.array(state.pointing_tolerance, np.float64),
        "skipped_ids": np.array([s["image_id"] for s in state.skipped], dtype=str),
        "skipped_reasons": np.array([s["reason"] for s in state.skipped], dtype=str),
        "n_unscored": np.array(state.n_unscored, np.int64),
        "read_files": np.array(list(reads), dtype=str),
        "read_sha256": np.array(list(reads.values()), dtype=str),
    }
    if state.pixel_hist is not None:
        arrays["pixel_hist"] = state.pixel_hist
    head = {"format": FORMAT, "version": VERSION, **header,
            "arrays_sha256": {k: array_digest(v) for k, v in arrays.items()}}
    arrays["header"] = np.array(json.dumps(head, sort_keys=True))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, kind="file") as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_header(path: Path, h: dict) -> None:
    """The header's own claims: types, 1 <= N <= images, 0 <= K < N, K's range of the CSV's images."""
    fp = h.get("fingerprint")
    if not (_int(h.get("shard")) and _int(h.get("world")) and _int(h.get("n_table")) and isinstance(fp, dict)
            and isinstance(h.get("images"), list) and len(h["images"]) == 2 and all(map(_int, h["images"]))
            and isinstance(fp.get("interval"), float) and isinstance(h.get("arrays_sha256"), dict)):
        raise CamlocError(f"{path}: its header lacks or mistypes shard, world, n_table, images, "
                          f"fingerprint.interval or arrays_sha256 (integers, a list, a number); {RERUN}")
    k, n, n_table = h["shard"], h["world"], h["n_table"]
    if not 1 <= n <= max(n_table, 1):
        raise CamlocError(f"{path}: claims {n} shards of {n_table} images; a run has 1 to {n_table} shards "
                          f"(no more shards than images); {RERUN}")
    if not 0 <= k < n:
        raise CamlocError(f"{path}: claims shard {k} of {n}; shards are 0 to {n - 1} (0 <= K < N); {RERUN}")
    part = shard(n_table, World(rank=k, size=n, local_rank=0))
    if h["images"] != [part.start, part.stop]:
        raise CamlocError(f"{path}: claims images {h['images']}, but shard {k}/{n} of {n_table} images is "
                          f"[{part.start}, {part.stop}); {RERUN}")
    taus(fp["interval"])  # the τ bound (interval >= 1e-4) before any size is derived from it


def _read_header(path: Path, z) -> tuple[dict, int]:
    info = {i.filename: i.file_size for i in z.zip.infolist()}
    if info.get("header.npy", HEADER_LIMIT + 1) > HEADER_LIMIT:
        raise CamlocError(f"{path}: no header, or one over {HEADER_LIMIT} bytes: not a {FORMAT} file; write "
                          "it with `camloc evaluate-maps --shard K/N`")
    header = json.loads(str(z["header"][()]))
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
        got = f"{header.get('format')!r} v{header.get('version')!r}" if isinstance(header, dict) else type(header)
        raise CamlocError(f"{path}: not a {FORMAT} v{VERSION} file (got {got}); write it with "
                          "`camloc evaluate-maps --shard K/N`")
    check_header(path, header)
    return header, sum(info.values())


def load(path: Path) -> tuple[EvalState, dict, dict[str, str]]:
    """(state, header, reads) of a partial-state file, each claim checked (see the module docstring)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            header, total = _read_header(path, z)
            if total > (limit := size_limit(header)):
                raise CamlocError(
                    f"{path}: its arrays inflate to {total} bytes, over the {limit} bytes a partial of "
                    f"{header['images'][1] - header['images'][0]} images may hold (docs/contracts.md); "
                    f"refused before reading them; {RERUN}")
            arrays = {k: z[k] for k in z.files if k != "header"}
    except CamlocError:
        raise
    except Exception as e:  # OSError, a corrupt zip (BadZipFile, bad CRC), a bad JSON header
        raise CamlocError(f"{path}: cannot read the partial state ({type(e).__name__}: {e}); {RERUN}") from e
    claimed = header["arrays_sha256"]
    if set(claimed) != set(arrays):
        raise CamlocError(f"{path}: holds arrays {sorted(arrays)}, its header lists {sorted(claimed)}; {RERUN}")
    for name, a in sorted(arrays.items()):
        if array_digest(a) != claimed[name]:
            raise CamlocError(f"{path}: array {name!r} differs from the digest in its header (changed after "
                              f"the shard wrote it); {RERUN}")
    return _state(path, header, arrays), header, dict(zip(arrays["read_files"].tolist(),
                                                          arrays["read_sha256"].tolist(), strict=True))


def _state(path: Path, header: dict, a: dict) -> EvalState:
    """The EvalState of checked arrays; refuses rows that disagree with each other or with the header."""
    grid = taus(header["fingerprint"]["interval"])
    t, n_ids = len(grid), len(a["ids"])
    shapes = {"tau_grid": (t,), "hits": (2, len(DELTAS), t), "ids": (n_ids,), "ious": (n_ids, 2, t),
              "points": (n_ids, 2), "pointing_tolerance": (), "n_unscored": (),
              "skipped_ids": (len(a["skipped_reasons"]),), "read_files": (len(a["read_sha256"]),)}
    for name, shape in shapes.items():
        if a[name].shape != shape:
            raise CamlocError(f"{path}: array {name!r} has shape {a[name].shape}, expected {shape} "
                              f"({n_ids} scored images, {t} thresholds); {RERUN}")
    if not np.array_equal(a["tau_grid"], grid):
        raise CamlocError(f"{path}: its τ grid is not np.arange(0, 1, {header['fingerprint']['interval']}); {RERUN}")
    ious, points = a["ious"].astype(np.float64), a["points"].astype(np.float64)
    if not (np.isfinite(ious).all() and np.isfinite(points).all()):
        bad = int((~np.isfinite(ious)).sum() + (~np.isfinite(points)).sum())
        raise CamlocError(f"{path}: {bad} IoU or pointing score(s) are NaN or infinite; {RERUN}")
    ids, skipped = a["ids"].tolist(), a["skipped_ids"].tolist()
    start, stop = header["images"]
    if len(ids) + len(skipped) != stop - start or len(set(ids + skipped)) != stop - start:
        raise CamlocError(f"{path}: holds {len(ids)} scored and {len(skipped)} skipped images, but shard "
                          f"{header['shard']}/{header['world']} covers {stop - start} distinct images; {RERUN}")
    state = EvalState.empty(grid, "pixel_hist" in a, float(a["pointing_tolerance"]))
    for image_id, row, point in zip(ids, ious, points, strict=True):
        state.add_image(image_id, row, point)
    if not np.array_equal(state.hits, a["hits"]):
        raise CamlocError(f"{path}: its per-τ hit counts are not those of its IoU rows; {RERUN}")
    if "pixel_hist" in a:
        hist = a["pixel_hist"]
        if hist.shape != state.pixel_hist.shape or hist.dtype.kind not in "iu" or (hist < 0).any():
            raise CamlocError(f"{path}: pixel_hist must be {state.pixel_hist.shape} counts >= 0; {RERUN}")
        state.pixel_hist = hist.astype(np.int64)
    if ids != sorted(ids) or int(a["n_unscored"]) < 0:
        raise CamlocError(f"{path}: its rows are not in image_id order or n_unscored < 0; {RERUN}")
    state.skipped = [{"image_id": i, "reason": r} for i, r in zip(skipped, a["skipped_reasons"].tolist(), strict=True)]
    state.n_unscored = int(a["n_unscored"])
    return state
